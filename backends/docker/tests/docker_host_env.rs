//! `Docker::connect` honours `DOCKER_HOST`. Its own test binary: it sets the variable, which
//! must not race with other tests reading the environment.

use bottle_backend_docker::Docker;
use bottle_core::backend::BackendError;

#[tokio::test]
async fn docker_host_pointing_nowhere_is_unavailable() {
    std::env::set_var("DOCKER_HOST", "unix:///nonexistent.sock");
    let err = Docker::connect().await.unwrap_err();
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(message.contains("/nonexistent.sock"), "{message}");
    assert!(hint.contains("DOCKER_HOST"), "{hint}");
    assert!(hint.contains("systemctl start docker"), "{hint}");
}

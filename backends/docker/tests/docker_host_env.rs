//! `Docker::connect` honours `DOCKER_HOST` and `DOCKER_CONTEXT`. Its own test binary, one
//! test: it sets the variables, which must not race with other tests reading the
//! environment.

use bottle_backend_docker::Docker;
use bottle_core::backend::BackendError;

#[tokio::test]
async fn docker_host_or_context_pointing_nowhere_is_unavailable() {
    std::env::set_var("DOCKER_HOST", "unix:///nonexistent.sock");
    let err = Docker::connect().await.unwrap_err();
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(message.contains("/nonexistent.sock"), "{message}");
    assert!(hint.contains("DOCKER_HOST"), "{hint}");
    assert!(hint.contains("systemctl start docker"), "{hint}");

    // DOCKER_CONTEXT (with DOCKER_HOST unset) names a context whose engine is not there:
    // the error names its address and the context.
    let home = tempfile::tempdir().unwrap();
    let meta = home.path().join(
        ".docker/contexts/meta/b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a",
    );
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        r#"{"Name":"remote","Endpoints":{"docker":{"Host":"unix:///nonexistent-ctx.sock"}}}"#,
    )
    .unwrap();
    std::env::remove_var("DOCKER_HOST");
    std::env::remove_var("DOCKER_CONFIG");
    std::env::set_var("HOME", home.path());
    std::env::set_var("DOCKER_CONTEXT", "remote");
    let err = Docker::connect().await.unwrap_err();
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(
        message.contains("/nonexistent-ctx.sock")
            && message.contains("docker context 'remote' (named by DOCKER_CONTEXT)"),
        "{message}"
    );
    assert!(hint.contains("DOCKER_CONTEXT"), "{hint}");
}

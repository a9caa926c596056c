//! `Podman::connect` honours `CONTAINER_HOST` before the caller's setting and the
//! defaults. Its own test binary: it sets the variable, which must not race with other
//! tests reading the environment.

use bottle_backend_podman::Podman;
use bottle_core::backend::BackendError;

#[tokio::test]
async fn container_host_pointing_nowhere_is_unavailable_with_how_to_start_a_service() {
    std::env::set_var("CONTAINER_HOST", "unix:///nonexistent/podman.sock");
    // CONTAINER_HOST wins over the setting, even when the setting would work.
    let err = Podman::connect(Some("unix:///run/podman/podman.sock"))
        .await
        .unwrap_err();
    eprintln!("{err}");
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(message.contains("/nonexistent/podman.sock"), "{message}");
    assert!(message.contains("CONTAINER_HOST"), "{message}");
    assert!(
        hint.contains("podman system service --time=0 unix:///nonexistent/podman.sock"),
        "{hint}"
    );
    assert!(hint.contains("podman.socket"), "{hint}");

    std::env::set_var(
        "CONTAINER_HOST",
        "ssh://core@example.invalid/run/podman/podman.sock",
    );
    let err = Podman::connect(None).await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("ssh://"), "{err}");

    // Empty: not set. The setting is next.
    std::env::set_var("CONTAINER_HOST", "");
    let err = Podman::connect(Some("/nonexistent/setting.sock"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/setting.sock")
            && err.to_string().contains("setting"),
        "{err}"
    );
}

//! Connecting: a missing socket, a refused port, an unusable address, the API version.

use bottle_backend_podman::Podman;
use bottle_core::backend::BackendError;

#[tokio::test]
async fn a_missing_socket_is_unavailable_with_a_hint() {
    let err = Podman::connect_to("unix:///nonexistent.sock")
        .await
        .unwrap_err();
    eprintln!("{err}");
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(
        message.contains("no podman API socket at /nonexistent.sock"),
        "{message}"
    );
    assert!(
        hint.contains("podman system service --time=0 unix:///nonexistent.sock"),
        "{hint}"
    );
    assert!(hint.contains("enable --now podman.socket"), "{hint}");
    assert!(hint.contains("CONTAINER_HOST"), "{hint}");
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = Podman::connect_to(&format!("unix://{}", path.display()))
        .await
        .unwrap_err();
    eprintln!("{err}");
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(message.contains("cannot reach podman"), "{message}");
    assert!(hint.contains("podman system service"), "{hint}");
}

#[tokio::test]
async fn a_refused_tcp_port_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let err = Podman::connect_to("tcp://127.0.0.1:1").await.unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("tcp://127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn an_unsupported_address_is_unavailable() {
    for address in ["gopher://x", "relative.sock", "unix://relative.sock"] {
        let err = Podman::connect_to(address).await.unwrap_err();
        assert!(
            matches!(err, BackendError::Unavailable { .. }),
            "{address}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_api_version_is_one_the_service_speaks() {
    let Some(crate::common::Under(p)) = crate::common::podman().await else {
        return;
    };
    let ping = p.client().ping().await.unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    assert!(
        parse(p.api_version()) <= parse(&ping.libpod_api_version),
        "client {} > service {}",
        p.api_version(),
        ping.libpod_api_version
    );
    eprintln!(
        "podman at {} ({:?}): API {}, rootless {}, cgroups {}",
        p.address(),
        p.source(),
        p.api_version(),
        p.rootless(),
        p.cgroup_version()
    );
    assert_eq!(
        p.rootless(),
        rustix_uid() != 0 || p.address().contains("/run/user/")
    );
}

fn rustix_uid() -> u32 {
    // The tests run as root (rootful) or as an ordinary user (rootless).
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

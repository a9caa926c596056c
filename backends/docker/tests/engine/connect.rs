//! Connecting: unix and tcp addresses, version negotiation, an unreachable engine.

use bottle_backend_docker::Docker;
use bottle_core::backend::BackendError;

#[tokio::test]
async fn a_missing_socket_is_unavailable_with_a_hint() {
    let err = Docker::connect_to("unix:///nonexistent.sock")
        .await
        .unwrap_err();
    eprintln!("{err}");
    let BackendError::Unavailable { message, hint } = &err else {
        panic!("want Unavailable, got {err:?}");
    };
    assert!(message.contains("unix:///nonexistent.sock"), "{message}");
    assert!(hint.contains("systemctl start docker"), "{hint}");
    assert!(hint.contains("DOCKER_HOST"), "{hint}");
}

#[tokio::test]
async fn a_refused_tcp_port_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let err = Docker::connect_to("tcp://127.0.0.1:1").await.unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("tcp://127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn an_unsupported_address_is_unavailable() {
    let err = Docker::connect_to("gopher://x").await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn the_api_version_is_one_the_engine_speaks() {
    let Some(crate::common::Under(d)) = crate::common::docker().await else {
        return;
    };
    let version = d.client().version().await.unwrap();
    let engine_api = version.api_version.unwrap();
    let ours = d.api_version();
    let parse = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    assert!(
        parse(&ours) <= parse(&engine_api),
        "client {ours} > engine {engine_api}"
    );
}

/// tcp works as well as unix: a loopback TCP port forwarded to the engine's unix socket.
#[tokio::test]
async fn tcp_addresses_work() {
    let Some(crate::common::Under(d)) = crate::common::docker().await else {
        return;
    };
    let Some(socket) = d.host().strip_prefix("unix://").map(str::to_owned) else {
        eprintln!("SKIP tcp_addresses_work: the engine is not on a unix socket");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    let over_tcp = Docker::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(over_tcp.api_version(), d.api_version());
    use bottle_core::backend::Backend;
    over_tcp
        .ps(&bottle_core::backend::Scope::bottle(
            "bottle-test",
            "no-such-bottle-xyz",
        ))
        .await
        .unwrap();
    proxy.abort();
}

//! The agent reaches nothing on the host: not the host side of its own internal network, not
//! that of the bottle's egress network, not that of a network the test makes itself, and
//! not another bottle's containers.
//!
//! Every probe goes to a listener of the test's own (in this process, on a free port) at
//! an address of a network this scenario made (its bottle's, or its own third one), and is
//! bounded by a few seconds. Each probe that must fail has a twin that must succeed (the
//! same listener, reached from the host itself or from a sidecar on that network), so a
//! "not reached" cannot come from a dead listener or a wrong address.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::harness::{expect_ok, run, said, show, Harness, Options};
use super::super::Engine;

/// What a connection attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Met {
    /// Something accepted the connection.
    Answer,
    /// The peer's stack refused it (RST): the packet reached a host that had no listener.
    Refused,
    /// Nothing answered: no route, network unreachable, no IPv6, or the time ran out.
    Nothing,
}

/// Reads what `bash -c 'exec 3<>/dev/tcp/ADDR/PORT'` under `timeout` said (see [`probe`]).
fn met(out: &Output) -> Met {
    let text = said(out);
    if out.status.success() && text.contains("probe=0") {
        Met::Answer
    } else if text.contains("Connection refused") {
        Met::Refused
    } else if text.contains("probe=") {
        Met::Nothing
    } else {
        panic!("the probe did not run\n{}", show(out))
    }
}

/// A shell command that tries one TCP connection to `ip:port` for at most 3 s, and says how
/// it ended (`probe=<status>`, bash's message on stderr).
fn probe(ip: &str, port: u16) -> String {
    format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}'; echo \"probe=$?\"")
}

/// A listener of the test's own on every address of this host (`0.0.0.0`, a free port),
/// counting whom it accepted, until dropped.
struct Listener {
    port: u16,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("0.0.0.0:0").expect("bind a listener on 0.0.0.0");
        l.set_nonblocking(true).expect("non-blocking listener");
        let port = l.local_addr().expect("local address").port();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peers.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((_conn, peer)) => p.lock().expect("peers").push(peer),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Listener {
            port,
            peers,
            stop,
            thread: Some(thread),
        }
    }

    fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().expect("peers").clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A network the test makes itself (a plain bridge: the host has an address on it) with a
/// container on it (netavark makes a bridge only when a container joins), both labelled
/// with the bottle's slug so `bottle down`/`cleanup` would find them; removed on drop, also
/// when the test fails.
struct Third<'a> {
    h: &'a Harness,
    network: String,
    container: String,
}

impl<'a> Third<'a> {
    fn create(h: &'a Harness) -> Third<'a> {
        let network = h.name("third");
        let container = h.name("thirdbox");
        let third = Third {
            h,
            network: network.clone(),
            container: container.clone(),
        };
        let slug_label = format!("bottle.slug={}", h.slug);
        h.engine_ok(&[
            "network",
            "create",
            "--label",
            "bottle.managed=e2e",
            "--label",
            &slug_label,
            &network,
        ]);
        h.engine_ok(&[
            "run",
            "-d",
            "--name",
            &container,
            "--label",
            "bottle.managed=e2e",
            "--label",
            &slug_label,
            "--network",
            &network,
            "--entrypoint",
            "sleep",
            "bottle-agent:latest",
            "600",
        ]);
        third
    }
}

impl Drop for Third<'_> {
    fn drop(&mut self) {
        let _ = self.h.engine(&["rm", "-f", &self.container]);
        let _ = self.h.engine(&["network", "rm", &self.network]);
    }
}

/// The host's address on `network` (its gateway), as the engine reports it; `None` when the
/// engine gives the network none (netavark's internal networks).
fn gateway(h: &Harness, network: &str) -> Option<String> {
    let format = if h.engine.cli == "docker" {
        "{{range .IPAM.Config}}{{.Gateway}} {{end}}"
    } else {
        "{{range .Subnets}}{{.Gateway}} {{end}}"
    };
    let out = h.engine_ok(&["network", "inspect", "--format", format, network]);
    out.split_whitespace()
        .find(|g| !g.is_empty() && *g != "<nil>")
        .map(str::to_owned)
}

/// The name of `network`'s bridge interface on the host (rootful engines).
fn bridge(h: &Harness, network: &str) -> String {
    if h.engine.cli == "docker" {
        let named = h.engine_ok(&[
            "network",
            "inspect",
            "--format",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            network,
        ]);
        if !named.is_empty() && named != "<no value>" {
            return named;
        }
        let id = h.engine_ok(&["network", "inspect", "--format", "{{.Id}}", network]);
        format!("br-{}", &id[..12])
    } else {
        h.engine_ok(&[
            "network",
            "inspect",
            "--format",
            "{{.NetworkInterface}}",
            network,
        ])
    }
}

/// The IPv4 addresses the host holds on interface `dev`.
fn host_ipv4(dev: &str) -> String {
    let out = run(std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", dev]));
    expect_ok(out, &format!("ip -4 addr show dev {dev}"))
}

/// 22. The agent reaches nothing on the host: a listener of the test's own, on every
///     address of the host, does not answer the agent at the host's address on the
///     bottle's internal network, on its egress network, nor on a third network the test
///     makes; the host holds no IPv4 address on the internal bridge, and the agent has no
///     IPv6 address (a bridge's link-local one would reach the host). The same listener
///     answers the host itself and a sidecar on the egress network, so the agent's failures
///     are the bottle's doing. On docker also: the agent does not reach another bottle's
///     gate or agent, while that bottle's own agent does reach its gate.
pub fn the_agent_reaches_nothing_on_the_host(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("host")) else {
        return;
    };
    let listener = Listener::start();
    let port = listener.port;
    let third = Third::create(&h);
    let internal = h.name("internal");
    let egress = h.name("egress");

    // The host's side of each network. Rootless podman's bridges live in the user's
    // rootless network namespace (slirp4netns gives that namespace a way out, but no way
    // to the host's own addresses, loopback included, unless asked to), not in the host's:
    // there the listener in this process cannot be reached from any container, so the
    // controls below probe that namespace's stack instead (a refusal from it proves the
    // path) and the host-side interface checks are skipped.
    let gw_internal = gateway(&h, &internal);
    let gw_egress = gateway(&h, &egress).expect("the egress network has a gateway");
    let gw_third = gateway(&h, &third.network).expect("the third network has a gateway");
    let mut failures = Vec::new();

    if !engine.rootless {
        // The mechanism itself: no IPv4 address of the host on the internal bridge (docker:
        // inhibit_ipv4; netavark: an internal bridge gets none), one on the others.
        // (Collected, not asserted at once: the probes below must show what it opens.)
        let dev = bridge(&h, &internal);
        let on_internal = host_ipv4(&dev);
        if !on_internal.is_empty() {
            failures.push(format!(
                "the host holds an address on the internal bridge {dev}: {on_internal}"
            ));
        }
        for network in [&egress, &third.network] {
            let dev = bridge(&h, network);
            assert!(
                !host_ipv4(&dev).is_empty(),
                "control: the host holds no address on {network}'s bridge {dev}"
            );
        }
        // Controls: the listener answers at the host's address on the egress and the
        // third network, from the host itself.
        for gw in [&gw_egress, &gw_third] {
            let at: SocketAddr = format!("{gw}:{port}").parse().expect("an address");
            TcpStream::connect_timeout(&at, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("control: the test's listener at {at}: {e}"));
        }
    }

    // Control from inside: a sidecar on the egress network reaches the host's side of it
    // (rootful: the listener answers; rootless: the rootless namespace's stack refuses).
    let from_gate = h.engine(&["exec", &h.gate(), "bash", "-c", &probe(&gw_egress, port)]);
    let want = if engine.rootless {
        Met::Refused
    } else {
        Met::Answer
    };
    assert_eq!(
        met(&from_gate),
        want,
        "control: the gate probing the host's side of {egress} at {gw_egress}:{port}\n{}",
        show(&from_gate)
    );

    // The agent has no IPv6 address at all, not even a link-local one.
    let v6 = h.agent_ok("cat /proc/net/if_inet6 2>/dev/null; true");
    assert!(v6.is_empty(), "the agent has IPv6 addresses:\n{v6}");

    // The agent, to every host-side address: nothing answers, nothing even refuses.
    let mut targets = vec![
        (format!("the host's side of {egress}"), gw_egress.clone()),
        (
            format!("the host's side of {}", third.network),
            gw_third.clone(),
        ),
    ];
    match &gw_internal {
        Some(gw) => targets.push((format!("the host's side of {internal}"), gw.clone())),
        // netavark's internal network has no gateway: probe where one would be, unless a
        // container of the bottle holds that address (rootless podman hands it out).
        None => {
            let subnet = h.engine_ok(&[
                "network",
                "inspect",
                "--format",
                "{{range .Subnets}}{{.Subnet}} {{end}}",
                &internal,
            ]);
            let net = subnet.split_whitespace().next().expect("a subnet");
            let base = net.split('/').next().expect("an address");
            let mut octets: Vec<u8> = base.split('.').map(|o| o.parse().expect("IPv4")).collect();
            octets[3] += 1;
            let first = octets
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(".");
            let taken = [h.gate(), h.agent(), h.name("proxy")]
                .iter()
                .any(|c| h.address(c, &internal) == first);
            if !taken {
                targets.push((format!("the first address of {internal}"), first));
            }
        }
    }
    let results: Vec<(String, String, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(what, ip)| {
                let script = probe(ip, port);
                let h = &h;
                (what, ip, s.spawn(move || h.agent_sh(&script)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(what, ip, t)| (what.clone(), ip.clone(), t.join().expect("probe thread")))
            .collect()
    });
    for (what, ip, out) in &results {
        let got = met(out);
        if got != Met::Nothing {
            failures.push(format!("{what} ({ip}:{port}): {got:?}\n{}", show(out)));
        }
    }
    assert!(
        failures.is_empty(),
        "the agent is not cut off from the host:\n{}",
        failures.join("\n")
    );
    let agent_ip = h.address(&h.agent(), &internal);
    let from_agent: Vec<_> = listener
        .peers()
        .into_iter()
        .filter(|p| p.ip().to_string() == agent_ip)
        .collect();
    assert!(
        from_agent.is_empty(),
        "the listener accepted the agent: {from_agent:?}"
    );

    // Another bottle's gate and agent. Two bottles at once in one scenario take two of the
    // engine's bottle slots; podman allows one (Engine::max_bottles: aardvark-dns 1.4 drops
    // lookups while another bottle's networks change), so this part runs where two fit.
    if engine.max_bottles < 2 {
        eprintln!(
            "note: {}: another bottle's reach not checked here (one bottle at a time on this engine)",
            engine.name
        );
        return;
    }
    let other = Harness::prepare(engine, Options::new("host2")).expect("the engine runs");
    expect_ok(
        run(other.bottle().arg("up").arg(&other.slug)),
        "bottle up (the second bottle)",
    );
    let other_internal = other.name("internal");
    let other_gate = other.address(&other.gate(), &other_internal);
    let other_agent = other.address(&other.agent(), &other_internal);
    // Control: the other bottle's agent reaches its own gate.
    let own = other.agent_sh(&probe(&other_gate, 9418));
    assert_eq!(
        met(&own),
        Met::Answer,
        "control: the other bottle's agent to its gate\n{}",
        show(&own)
    );
    for (what, ip, port) in [
        ("the other bottle's gate", &other_gate, 9418),
        ("the other bottle's agent", &other_agent, 9418),
    ] {
        let out = h.agent_sh(&probe(ip, port));
        assert_eq!(
            met(&out),
            Met::Nothing,
            "the agent reached {what} at {ip}:{port}\n{}",
            show(&out)
        );
    }
    drop(other);
}

/// 31. The gate listens only where the agent is: git daemon binds the gate's address on the
///     bottle's internal network, so from the egress network (here the upstream fixture,
///     which sits on it) the gate's port is refused at its egress address: the packet
///     reaches the gate and no listener is there, which rules out a dead address. Controls:
///     the gate's port answers at its internal address, and the agent clones through it.
///     The same for the egress proxy's port.
pub fn the_gate_listens_only_where_the_agent_is(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("listen")) else {
        return;
    };
    super::clone_matches(&h);
    let on_internal = h.address(&h.gate(), &h.name("internal"));
    let on_egress = h.address(&h.gate(), &h.name("egress"));
    let from_egress = h.engine(&["exec", &h.fixture(), "bash", "-c", &probe(&on_egress, 9418)]);
    assert_eq!(
        met(&from_egress),
        Met::Refused,
        "the upstream, on the egress network, probing the gate's port at {on_egress}\n{}",
        show(&from_egress)
    );
    let at_internal = h.engine(&["exec", &h.gate(), "bash", "-c", &probe(&on_internal, 9418)]);
    assert_eq!(
        met(&at_internal),
        Met::Answer,
        "control: the gate's port at its internal address {on_internal}\n{}",
        show(&at_internal)
    );

    // The egress proxy likewise (bottle-proxy --listen-internal, as the cred sidecar).
    let proxy = h.name("proxy");
    let on_internal = h.address(&proxy, &h.name("internal"));
    let on_egress = h.address(&proxy, &h.name("egress"));
    let from_egress = h.engine(&["exec", &h.fixture(), "bash", "-c", &probe(&on_egress, 3128)]);
    assert_eq!(
        met(&from_egress),
        Met::Refused,
        "the upstream probing the proxy's port at {on_egress}\n{}",
        show(&from_egress)
    );
    let at_internal = h.engine(&["exec", &proxy, "bash", "-c", &probe(&on_internal, 3128)]);
    assert_eq!(
        met(&at_internal),
        Met::Answer,
        "control: the proxy's port at its internal address {on_internal}\n{}",
        show(&at_internal)
    );
}

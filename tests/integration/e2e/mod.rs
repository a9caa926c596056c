//! End-to-end tests: the real `bottle` binary against a real container engine.
//!
//! Each scenario brings up a real bottle (networks, git-gate, agent), starts the upstream
//! fixture (`bottle-upstream-fixture:latest`: sshd + git, `tests/fixtures/upstream-image/`)
//! on the bottle's egress network as `bottle-<slug>-upstream`, and drives git inside the
//! agent with `bottle exec`, exactly as a user would. The engine's own CLI is used only to
//! manage the fixture and to inspect what bottle created (refs in the gate's mirror, networks,
//! container files).
//!
//! # Written once, run per engine
//!
//! The scenarios ([`scenarios`]) are plain functions taking an [`Engine`]. The `suite!` macro
//! instantiates every one of them as a `#[test]` inside a module per engine (like ripgrep's
//! one-body-per-matcher tests), so `e2e::docker::clone_matches_upstream` is the docker run of
//! the scenario `clone_matches_upstream`. A podman backend adds one line:
//! `mod podman { suite!(super::PODMAN); }` with a `PODMAN` [`Engine`].
//!
//! # Isolation and cleanup
//!
//! - Every scenario has its own bottle (slug `e2e-<scenario>-<pid>-<random>`), its own
//!   temporary directory with freshly generated keys (the gate's identity, the fixture's host
//!   key) and manifest. Its [`harness::Harness`] removes the fixture and runs `bottle down` and
//!   `bottle cleanup <slug>` on drop, also when the test panics (then printing the gate's and
//!   the fixture's logs first). `BOTTLE_TEST_KEEP=1` keeps everything and prints how to
//!   remove it.
//! - At most `BOTTLE_E2E_JOBS` (default 3) bottles exist at once, whatever the test threads:
//!   each brings three containers, and the machines this runs on have two cores.
//! - Every command runs under a time limit, and every wait is a bounded poll.
//!   `BOTTLE_E2E_TRACE=1` prints each command with its start time and duration.
//! - Traffic goes only to the scenario's own containers (and the engine's resolver inside
//!   the agent); nothing targets any other address.
//!
//! # Running
//!
//! `cargo test --test integration e2e` (about a minute on a 2-core machine: libtest runs two
//! scenarios at a time there; `-- --test-threads 3` is a little faster, more is not).
//! One scenario: `cargo test --test integration e2e::docker::clean_push_arrives_upstream`.
//!
//! # Skipping
//!
//! When the engine is unreachable (`<cli> info` fails) or one of bottle's images is missing,
//! every scenario prints a loud SKIP and passes, except under `CI=true`, where it fails. Once
//! per run, before the first bottle, `bottle image build` refreshes stale images so that
//! concurrent `bottle up`s never race to build them.

mod harness;
mod scenarios;

/// A container engine the scenarios run on.
#[derive(Debug)]
pub struct Engine {
    /// The `--backend` value that drives it.
    pub backend: &'static str,
    /// The dry-run backend printing scripts for its CLI.
    pub dry_run: &'static str,
    /// Its CLI (`docker` or `podman`), for the fixture and for inspections.
    pub cli: &'static str,
}

/// Docker, through the docker backend (bollard) and the `docker` CLI.
pub const DOCKER: Engine = Engine {
    backend: "docker",
    dry_run: "dry-run",
    cli: "docker",
};

/// Instantiates every scenario of [`scenarios`] as a `#[test]` for one engine.
macro_rules! suite {
    ($engine:expr) => {
        suite!(@tests $engine;
            clone_matches_upstream,
            upstream_commit_is_seen_by_the_next_fetch,
            clean_push_arrives_upstream,
            pushes_holding_secrets_are_rejected,
            a_push_of_two_refs_with_one_secret_forwards_nothing,
            a_stopped_upstream_fails_fetch_and_clone,
            clone_follows_default_branch_main,
            clone_follows_default_branch_trunk,
            clone_follows_default_branch_trunk_beside_master,
            without_a_host_key_fetch_and_push_are_refused,
            the_identity_key_is_only_in_the_gate,
            the_agent_reaches_nothing_but_the_gate,
            leftovers_make_up_fail_fast_until_cleanup,
            down_removes_everything_and_is_idempotent,
            the_dry_run_script_makes_a_working_bottle,
        );
    };
    (@tests $engine:expr; $($(#[$attr:meta])* $name:ident,)+) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                crate::e2e::scenarios::$name(&$engine);
            }
        )+
    };
}

/// The scenarios on Docker.
mod docker {
    suite!(super::DOCKER);
}

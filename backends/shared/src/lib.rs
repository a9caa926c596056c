//! What bottle's engine backends (docker, podman) share, kept once.
//!
//! Each engine backend turns a [`Plan`](bottle_core::plan::Plan) into its engine's API
//! calls; everything that does not depend on the engine lives here, so that the two apply
//! plans the same way and speak with the same words:
//!
//! - [`engine`]: the [`Engine`](engine::Engine) trait of engine primitives (create a
//!   network, copy a tar in, inspect an image, start an exec, ...) that each backend
//!   implements as a thin translation to its API, and the orchestration written once over
//!   it: `up` (leftover probe, images, concurrent create, start in order, rollback or keep),
//!   `down`, `ps`, `cleanup`, image ensure/build/import, `exec`.
//! - [`archive`]: the tar archive of a container's files (exact mode, numeric uid/gid) and
//!   of a build context.
//! - [`images`]: the built-in images as data: their build contexts, embedded in the binary
//!   by this crate's `build.rs`; [`BuildSpec`](images::BuildSpec) and the digest of its
//!   inputs (the `bottle.inputs` label that decides fresh or stale); the pinned gitleaks
//!   (its lock and how it is found on the host); [`BuildOptions`](images::BuildOptions).
//! - [`fixture`]: the upstream fixture (sshd + git) of the demo, the bench and the e2e
//!   tests, as one container spec.
//! - [`base`]: where the base image's root filesystem comes from: a tarball prepared once
//!   (what rootless podman imports without root), or `make-base.sh` run now as root.
//! - [`term`]: the terminal side of `exec` (raw mode, window size, a standard-input reader
//!   that never holds up the runtime's shutdown) and [`ExecOutput`](term::ExecOutput).
//! - [`resources`]: label filters, resources found by label and grouped per bottle, and
//!   the errors of a leftover probe, a failed `up` (rolled back or kept) and a removal.
//! - `testkit` (feature `testkit`, for the backends' test binaries): the engine tests
//!   written once, instantiated per engine by `engine_suite!`.
//!
//! # Design decisions
//!
//! - **Orchestration here, engine calls there.** This crate depends on no engine client
//!   (no bollard, no podman-api): it decides what happens in which order, concurrently or
//!   not, what is rolled back and how every error reads, and reaches an engine only through
//!   [`Engine`](engine::Engine), whose methods are single API steps. A backend is that
//!   trait's implementation plus how to connect, which is what makes a third one cheap.
//! - **A trait of primitives, not a trait of operations.** A trait with `up`, `down`, ...
//!   (core's `Backend`) would leave each backend to write the order and the rollback again.
//!   The primitives are small enough that an implementation has nothing to decide, and
//!   [`Backend`](bottle_core::backend::Backend) stays a one-line delegation per method in
//!   each backend (the orphan rule keeps that `impl` in the backend crates).
//! - **The tests too.** The engine tests are written once (`testkit`) and run by each
//!   backend's test binary against its engine (podman: rootful and rootless), so the two
//!   backends are held to the same behaviour by the same code.
//! - **One embedded copy of the image inputs.** The contexts are compiled into this crate
//!   only, so both backends build byte-identical contexts with the same digest: an image
//!   built by one engine's backend is judged by the same rule as by the other's.

#![deny(missing_docs)]

pub mod archive;
pub mod base;
pub mod engine;
pub mod fixture;
pub mod images;
pub mod resources;
pub mod term;
#[cfg(feature = "testkit")]
pub mod testkit;

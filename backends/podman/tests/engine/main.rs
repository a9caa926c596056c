//! Tests of the podman backend against real podman API services, compiled into one binary.
//!
//! The scenarios are the shared engine tests of `bottle-backend-shared` (feature
//! `testkit`): written once, run in the docker crate on docker and here on podman, twice
//! (see `bottle_backend_shared::testkit` for isolation, cleanup, `BOTTLE_TEST_KEEP=1`, the
//! loud SKIP without a service and the failure under `CI=true`, and the tiny test image):
//!
//! - `podman::*`: the service found as `bottle` finds it: `CONTAINER_HOST`, else
//!   `$XDG_RUNTIME_DIR/podman/podman.sock` for an ordinary user (rootless), else
//!   `/run/podman/podman.sock` for root (rootful).
//! - `rootless::*`: run as root, the rootless service of the user `bottle-rl` (or
//!   `BOTTLE_TEST_ROOTLESS_USER`), which `scripts/setup-podman.sh --rootless bottle-rl`
//!   prepares, through its socket: the same bodies in that user's own image store. Skipped
//!   loudly when there is no such user or socket, or when not run as root. (Running the
//!   whole binary as the user, e.g. `runuser -u bottle-rl -- env
//!   XDG_RUNTIME_DIR=/run/user/UID HOME=/home/bottle-rl target/debug/deps/engine-*`, tests
//!   it as its own caller through `podman::*`.)
//!
//! [`common`] says how podman is reached and inspected; `connect` holds what only podman
//! has (socket discovery, its hints, the libpod API version).

mod common;
mod connect;

/// The scenarios on the service found as `bottle` finds it.
mod podman {
    bottle_backend_shared::engine_suite!(crate::common::podman());
}

/// The scenarios on `bottle-rl`'s rootless service.
mod rootless {
    bottle_backend_shared::engine_suite!(crate::common::rootless());
}

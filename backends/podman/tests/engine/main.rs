//! Tests of the podman backend against a real podman API service, compiled into one binary
//! with one module per area, mirroring the docker crate's engine tests.
//!
//! - The service is found as `bottle` finds it: `CONTAINER_HOST`, else
//!   `$XDG_RUNTIME_DIR/podman/podman.sock` for an ordinary user (rootless), else
//!   `/run/podman/podman.sock` for root. `scripts/setup-podman.sh` prepares both; run the
//!   same test binary as an unprivileged user (e.g. `runuser -u USER -- env
//!   XDG_RUNTIME_DIR=/run/user/UID HOME=/home/USER target/debug/deps/engine-*`) for rootless.
//! - Each test works on its own bottle (a unique slug: test name, pid, counter) and removes
//!   it on drop (`common::Guard`, which calls `cleanup(slug)`); `BOTTLE_TEST_KEEP=1` keeps
//!   everything for debugging and prints how to remove it.
//! - Without a reachable service every engine test prints a loud SKIP and passes, except
//!   under `CI=true`, where it fails.
//! - The test image `bottle-test-tiny:latest` is made from the host's own `sh`, `sleep`,
//!   `stat`, `cat`, `getent` and `id` with their shared libraries (found with `ldd`), and
//!   imported through the API into the store of whoever runs the tests: no registry, no
//!   base image, a few MB. It is re-imported only when those binaries change.
//! - `images::the_builtin_images_build_from_the_embedded_contexts` builds the real agent
//!   and gate images under test tags when the base image exists or can be imported from a
//!   prepared rootfs (`scripts/setup-podman.sh --rootfs`) and gitleaks can be found.
//! - Tests send traffic only to their own containers and to loopback.

mod common;
mod connect;
mod images;
mod lifecycle;
mod network;

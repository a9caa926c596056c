//! Tests of the docker backend against the real engine (`DOCKER_HOST` or the default
//! socket), compiled into one binary with one module per area.
//!
//! - Each test works on its own bottle (a unique slug: test name, pid, counter) and removes
//!   it on drop (`common::Guard`, which calls `cleanup(slug)`); `BOTTLE_TEST_KEEP=1` keeps
//!   everything for debugging and prints how to remove it.
//! - Without a reachable engine every engine test prints a loud SKIP and passes, except
//!   under `CI=true`, where it fails.
//! - The test image `bottle-test-tiny:latest` is made from the host's own `sh`, `sleep`,
//!   `stat`, `cat`, `getent` and `id` with their shared libraries (found with `ldd`), and
//!   imported through the API: no registry, no base image, a few MB. It is rebuilt only when
//!   those binaries change, and kept between runs.
//! - `images::the_builtin_images_build_from_the_embedded_contexts` builds the real agent and
//!   gate images under test tags when `bottle-base:bookworm` exists and gitleaks can be
//!   found; `images::the_base_image_is_made_and_imported` (debootstrap, about a minute, needs
//!   the Debian mirror) runs only with `BOTTLE_TEST_MAKE_BASE=1`.
//! - Tests send traffic only to their own containers and to loopback.

mod common;
mod connect;
mod images;
mod lifecycle;
mod network;

//! Tests of the docker backend against the real engine (`DOCKER_HOST` or the default
//! socket), compiled into one binary.
//!
//! The scenarios are the shared engine tests of `bottle-backend-shared` (feature
//! `testkit`): written once, run here on docker and in the podman crate on podman (see
//! `bottle_backend_shared::testkit` for isolation, cleanup, `BOTTLE_TEST_KEEP=1`, the loud
//! SKIP without an engine and the failure under `CI=true`, and the tiny test image).
//! [`common`] says how docker is reached and inspected; `connect` holds what only docker
//! has (its addresses, its API version negotiation).
//!
//! `the_base_image_is_made_and_imported` (debootstrap, minutes, the Debian mirror) runs
//! only with `BOTTLE_TEST_MAKE_BASE=1`.

mod common;
mod connect;

bottle_backend_shared::engine_suite!(crate::common::docker());

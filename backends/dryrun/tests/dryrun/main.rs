//! Tests of the dry-run backend, compiled into one binary with one module per area.
//!
//! Scripts are checked four ways: snapshots of the text (`insta`; regenerate with
//! `INSTA_UPDATE=always cargo test -p bottle-backend-dryrun`), `sh -n` and `shellcheck`,
//! and by running them under a fake `docker`/`podman` (a shell script in [`support`] that
//! records every call and keeps the archives it is fed) to compare what the engine would
//! receive with the plan, byte for byte.

mod backend;
mod failure;
mod lint;
mod quoting;
mod secrets;
mod snapshots;
mod staging;
mod support;
mod toy;

//! What bottle's engine backends (docker, podman) share, kept once.
//!
//! Each engine backend turns a [`Plan`](bottle_core::plan::Plan) into its engine's API
//! calls; everything that does not depend on the engine lives here, so that the two apply
//! plans the same way and speak with the same words:
//!
//! - [`archive`]: the tar archive of a container's files (exact mode, numeric uid/gid) and
//!   of a build context.
//! - [`images`]: the built-in images as data: their build contexts, embedded in the binary
//!   by this crate's `build.rs`; [`BuildSpec`](images::BuildSpec) and the digest of its
//!   inputs (the `bottle.inputs` label that decides fresh or stale); the pinned gitleaks
//!   (its lock and how it is found on the host); [`BuildOptions`](images::BuildOptions).
//! - [`base`]: where the base image's root filesystem comes from: a tarball prepared once
//!   (what rootless podman imports without root), or `make-base.sh` run now as root.
//! - [`term`]: the terminal side of `exec` (raw mode, window size, a standard-input reader
//!   that never holds up the runtime's shutdown) and [`ExecOutput`](term::ExecOutput).
//! - [`resources`]: label filters, resources found by label and grouped per bottle, and
//!   the errors of a leftover probe, a failed `up` (rolled back or kept) and a removal.
//!
//! # Design decisions
//!
//! - **Data and words here, engine calls there.** This crate makes no engine call and
//!   depends on no engine client (no bollard, no podman-api). A backend stays a thin
//!   translation of plan data into its API, which is what makes a third one cheap.
//! - **One embedded copy of the image inputs.** The contexts are compiled into this crate
//!   only, so both backends build byte-identical contexts with the same digest: an image
//!   built by one engine's backend is judged by the same rule as by the other's.

#![deny(missing_docs)]

pub mod archive;
pub mod base;
pub mod images;
pub mod resources;
pub mod term;

//! Images: bottle's built-in images, built through the engine API, and the local base image.
//!
//! What is built and when it is fresh is shared with the podman backend and lives in
//! [`bottle_backend_shared::images`], re-exported here ([`BuildSpec`], [`BuildOptions`],
//! [`builtin_spec`], the `bottle.inputs` label, ...): see its documentation for where the
//! build inputs come from (embedded in the binary), the digest that decides fresh or stale,
//! and the pinned gitleaks. How an image is ensured, built or imported is written once in
//! [`bottle_backend_shared::engine`] ([`ensure_image`](bottle_backend_shared::engine::ensure_image),
//! [`import_rootfs`](bottle_backend_shared::engine::import_rootfs), ...) over this crate's
//! [`Engine`](crate::Engine) primitives: inspect, build (the classic builder's JSON
//! stream), import (`POST /images/create?fromSrc=-`, streamed from the file), remove.
//!
//! # The base image
//!
//! The Dockerfiles build `FROM ${BASE_IMAGE}`, by default [`DEFAULT_BASE_IMAGE`], a local
//! image made from Debian packages (no registry needed). When that default is missing,
//! bottle imports its root filesystem through the API: a tarball prepared once in
//! `BOTTLE_ROOTFS_DIR`, else one made now by the embedded `make-base.sh --tar-out` (root and
//! debootstrap required); see [`bottle_backend_shared::base`]. Another base (e.g.
//! `debian:bookworm-slim` with a registry) is chosen with `BOTTLE_BASE_IMAGE` or
//! [`BuildOptions::base_image`]; the engine pulls it if needed.

pub use bottle_backend_shared::images::*;

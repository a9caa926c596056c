//! Images in podman's store: bottle's built-in images, built through the API, and the
//! local base image, imported through the API.
//!
//! What is built and when it is fresh is shared with the docker backend and lives in
//! [`bottle_backend_shared::images`], re-exported here ([`BuildSpec`], [`BuildOptions`],
//! [`builtin_spec`], the `bottle.inputs` label, ...): the contexts are embedded in the
//! binary, and an image is rebuilt when the digest of its inputs changes.
//!
//! Podman has its own image store, and rootless podman one per user: each store gets its
//! images through its own API service. A missing built-in base ([`DEFAULT_BASE_IMAGE`],
//! [`SSHD_BASE_IMAGE`]) is imported from a rootfs tarball: one prepared once in
//! `BOTTLE_ROOTFS_DIR` (default `/var/lib/bottle/rootfs`, written by
//! `sudo scripts/setup-podman.sh --rootfs`, readable by every user), else one made now by
//! `make-base.sh` (root only); see [`bottle_backend_shared::base`]. So a rootless user
//! needs no root at run time once the host is set up.
//!
//! How an image is ensured, built or imported is written once in
//! [`bottle_backend_shared::engine`] over this crate's [`Engine`](crate::Engine)
//! primitives: inspect, build (`POST /libpod/build` from the in-memory context), import
//! (`POST /libpod/images/import`, streamed from the file), remove.
//!
//! Podman names local images `localhost/NAME:TAG`; the short names bottle uses
//! (`bottle-gate:latest`) resolve to them.

pub use bottle_backend_shared::images::*;

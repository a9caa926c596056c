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
//! Podman names local images `localhost/NAME:TAG`; the short names bottle uses
//! (`bottle-gate:latest`) resolve to them.

use bottle_backend_shared::base;
use bottle_core::backend::BackendError;
use bottle_core::plan::{BuiltinImage, Plan};

pub use bottle_backend_shared::images::*;

use crate::raw::{self, RawError};
use crate::{engine_err, is_not_found, raw_err, Podman};

impl Podman {
    /// Whether podman has image `name`.
    pub async fn image_exists(&self, name: &str) -> Result<bool, BackendError> {
        self.api
            .images()
            .get(name)
            .exists()
            .await
            .map_err(|e| engine_err(format!("inspect image {name}"), &e))
    }

    /// The [`LABEL_INPUTS`] label of image `name`: `None` when the image is missing,
    /// `Some("")` when it has no such label.
    pub async fn image_inputs(&self, name: &str) -> Result<Option<String>, BackendError> {
        match self.api.images().get(name).inspect().await {
            Ok(i) => Ok(Some(
                i.labels
                    .and_then(|l| l.get(LABEL_INPUTS).cloned())
                    .unwrap_or_default(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(format!("inspect image {name}"), &e)),
        }
    }

    async fn image_id(&self, name: &str) -> Option<String> {
        self.api.images().get(name).inspect().await.ok()?.id
    }

    /// Builds `spec` unless the image exists with the same inputs (or `force`).
    pub async fn ensure_image(
        &self,
        spec: &BuildSpec,
        force: bool,
    ) -> Result<ImageStatus, BackendError> {
        let digest = spec.inputs_digest()?;
        let have = self.image_inputs(&spec.tag).await?;
        let Some(why) = build_reason(have.as_deref(), &digest, force) else {
            return Ok(ImageStatus::Fresh);
        };
        self.progress(&format!("bottle: building image {} ({why})", spec.tag));
        if let Some(base) = spec.build_args.get(BASE_IMAGE_ARG) {
            self.ensure_base_image(base).await?;
        }
        self.build_with_digest(spec, &digest).await?;
        Ok(ImageStatus::Built)
    }

    /// Builds `spec` unconditionally, labelled with its inputs digest. Build output goes to
    /// the progress sink; a failed build is [`BackendError::Engine`] with podman's message.
    pub async fn build_image(&self, spec: &BuildSpec) -> Result<(), BackendError> {
        let digest = spec.inputs_digest()?;
        self.build_with_digest(spec, &digest).await
    }

    async fn build_with_digest(&self, spec: &BuildSpec, digest: &str) -> Result<(), BackendError> {
        let previous = self.image_id(&spec.tag).await;
        self.build_context(spec, digest).await?;
        // The image the tag pointed at before is now untagged: remove it, unless a
        // container still uses it (then podman refuses, which is fine).
        if let Some(old) = previous {
            if self.image_id(&spec.tag).await.as_deref() != Some(old.as_str()) {
                let _ = self.api.images().get(old).delete().await;
            }
        }
        Ok(())
    }

    async fn build_context(&self, spec: &BuildSpec, digest: &str) -> Result<(), BackendError> {
        let action = || format!("build image {}", spec.tag);
        let tar = spec.context_tar()?;
        let mut labels = spec.labels.clone();
        labels.insert(LABEL_INPUTS.to_owned(), digest.to_owned());
        let query = raw::query([
            ("t", spec.tag.clone()),
            ("dockerfile", "Dockerfile".to_owned()),
            ("rm", "true".to_owned()),
            ("forcerm", "true".to_owned()),
            (
                "buildargs",
                serde_json::to_string(&spec.build_args).expect("JSON"),
            ),
            ("labels", serde_json::to_string(&labels).expect("JSON")),
        ]);
        let response = self
            .raw
            .call(
                hyper::Method::POST,
                &format!("/libpod/build?{query}"),
                "application/x-tar",
                raw::full(tar),
            )
            .await
            .map_err(|e| raw_err(action(), &e))?;
        let mut last_lines: Vec<String> = Vec::new();
        let mut error: Option<String> = None;
        raw::for_each_line(response, |line| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                return;
            };
            if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                error = Some(e.trim().to_owned());
            }
            if let Some(text) = v.get("stream").and_then(|s| s.as_str()) {
                for l in text.lines().filter(|l| !l.trim().is_empty()) {
                    self.progress(l);
                    last_lines.push(l.to_owned());
                    if last_lines.len() > 10 {
                        last_lines.remove(0);
                    }
                }
            }
        })
        .await
        .map_err(|e| raw_err(action(), &e))?;
        if let Some(message) = error {
            let message = if last_lines.is_empty() {
                message
            } else {
                format!(
                    "{message}\n  last build output:\n    {}",
                    last_lines.join("\n    ")
                )
            };
            return Err(BackendError::Engine {
                action: action(),
                message,
            });
        }
        match self.image_inputs(&spec.tag).await? {
            Some(have) if have == digest => Ok(()),
            _ => Err(BackendError::Engine {
                action: action(),
                message: format!(
                    "the build ended without producing {} (last output: {})",
                    spec.tag,
                    last_lines.join(" | ")
                ),
            }),
        }
    }

    /// Builds the built-in image `which` as `tag` when missing or stale.
    pub async fn ensure_builtin(
        &self,
        which: BuiltinImage,
        tag: &str,
        opts: &BuildOptions,
    ) -> Result<ImageStatus, BackendError> {
        let spec = builtin_spec(which, tag, opts)?;
        self.ensure_image(&spec, opts.force).await
    }

    /// Builds the built-in image `which` under its standard tag when missing or stale, or
    /// always with `opts.force`.
    pub async fn build_builtin(
        &self,
        which: BuiltinImage,
        opts: &BuildOptions,
    ) -> Result<ImageStatus, BackendError> {
        self.ensure_builtin(which, which.tag(), opts).await
    }

    /// Makes sure the base image `name` exists: when it is missing and is one bottle makes,
    /// imports its root filesystem (prepared, else made now as root). Any other missing
    /// base is left to podman (it pulls it when it builds).
    pub async fn ensure_base_image(&self, name: &str) -> Result<ImageStatus, BackendError> {
        if self.image_exists(name).await? || !base::is_builtin_base(name) {
            return Ok(ImageStatus::Fresh);
        }
        let progress = |line: &str| self.progress(line);
        let rootfs = base::base_rootfs(name, &progress).await?;
        self.progress(&format!(
            "bottle: importing base image {name} from {}",
            rootfs.origin
        ));
        self.import_rootfs(rootfs.source.clone(), name, &rootfs.changes)
            .await?;
        Ok(ImageStatus::Built)
    }

    /// Makes the base image `name` from Debian packages now: runs the embedded
    /// `make-base.sh --tar-out` (root and debootstrap required) and imports the rootfs.
    pub async fn make_base_image(&self, name: &str) -> Result<(), BackendError> {
        let progress = |line: &str| self.progress(line);
        let rootfs = base::make_rootfs(name, &progress).await?;
        self.import_rootfs(rootfs.source.clone(), name, &rootfs.changes)
            .await
    }

    /// Imports a root filesystem tarball as image `image` (like `podman import`), applying
    /// Dockerfile `changes` such as `ENV PATH=...`, `LABEL k=v`, `CMD ["/bin/sh"]`. A file
    /// is streamed, not read into memory.
    pub async fn import_rootfs(
        &self,
        source: RootfsSource,
        image: &str,
        changes: &[String],
    ) -> Result<(), BackendError> {
        let action = || format!("import image {image}");
        let body = match source {
            RootfsSource::Bytes(b) => raw::full(b),
            RootfsSource::File(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| {
                    BackendError::Other(format!("cannot open {}: {e}", path.display()))
                })?;
                raw::file(file)
            }
        };
        let query = raw::query(
            std::iter::once(("reference", image.to_owned()))
                .chain(changes.iter().map(|c| ("changes", c.clone()))),
        );
        let response = self
            .raw
            .call(
                hyper::Method::POST,
                &format!("/libpod/images/import?{query}"),
                "application/x-tar",
                body,
            )
            .await
            .map_err(|e: RawError| raw_err(action(), &e))?;
        raw::for_each_line(response, |_| {})
            .await
            .map_err(|e| raw_err(action(), &e))?;
        if self.image_exists(image).await? {
            self.progress(&format!("bottle: imported {image}"));
            Ok(())
        } else {
            Err(BackendError::Engine {
                action: action(),
                message: "the import ended without producing the image".to_owned(),
            })
        }
    }

    /// Checks, before anything is created, that every image of `plan` exists, building the
    /// built-in ones that are missing or stale.
    pub(crate) async fn ensure_plan_images(&self, plan: &Plan) -> Result<(), BackendError> {
        let mut seen = std::collections::BTreeSet::new();
        let opts = &self.build;
        for c in &plan.containers {
            if !seen.insert(c.image.name.as_str()) {
                continue;
            }
            match c.image.builtin {
                Some(which) => {
                    self.ensure_builtin(which, &c.image.name, opts).await?;
                }
                None => {
                    if !self.image_exists(&c.image.name).await? {
                        return Err(BackendError::Other(format!(
                            "image {} (for container {}) does not exist in podman's store at {}; nothing was created\n  hint: build it (`podman build -t {} DIR`) or pull it (`podman pull {}`) as the same user bottle runs as (rootless podman has one store per user), or set the bottle's `image` to one you have",
                            c.image.name, c.name, self.address, c.image.name, c.image.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

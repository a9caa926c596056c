//! Images: bottle's built-in images, built through the engine API, and the local base image.
//!
//! What is built and when it is fresh is shared with the podman backend and lives in
//! [`bottle_backend_shared::images`], re-exported here ([`BuildSpec`], [`BuildOptions`],
//! [`builtin_spec`], the `bottle.inputs` label, ...): see its documentation for where the
//! build inputs come from (embedded in the binary), the digest that decides fresh or stale,
//! and the pinned gitleaks. This module holds the engine calls: inspect, build, import.
//!
//! # The base image
//!
//! The Dockerfiles build `FROM ${BASE_IMAGE}`, by default [`DEFAULT_BASE_IMAGE`], a local
//! image made from Debian packages (no registry needed). When that default is missing,
//! bottle imports its root filesystem through the API ([`Docker::import_rootfs`]): a
//! tarball prepared once in `BOTTLE_ROOTFS_DIR`, else one made now by the embedded
//! `make-base.sh --tar-out` (root and debootstrap required); see
//! [`bottle_backend_shared::base`]. Another base (e.g. `debian:bookworm-slim` with a
//! registry) is chosen with `BOTTLE_BASE_IMAGE` or [`BuildOptions::base_image`]; the engine
//! pulls it if needed.

use std::collections::HashMap;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use bottle_backend_shared::base;
use bottle_core::backend::BackendError;
use bottle_core::plan::{BuiltinImage, Plan};
use futures_util::StreamExt;

pub use bottle_backend_shared::images::*;

use crate::{engine_err, error_text, is_not_found, Docker};

impl Docker {
    /// Whether the engine has image `name`.
    pub async fn image_exists(&self, name: &str) -> Result<bool, BackendError> {
        match self.client.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine_err(format!("inspect image {name}"), &e)),
        }
    }

    /// The [`LABEL_INPUTS`] label of image `name`: `None` when the image is missing,
    /// `Some("")` when it has no such label.
    pub async fn image_inputs(&self, name: &str) -> Result<Option<String>, BackendError> {
        match self.client.inspect_image(name).await {
            Ok(i) => Ok(Some(
                i.config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(LABEL_INPUTS).cloned())
                    .unwrap_or_default(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(format!("inspect image {name}"), &e)),
        }
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
    /// the progress sink; a failed build is [`BackendError::Engine`] with the engine's
    /// message.
    pub async fn build_image(&self, spec: &BuildSpec) -> Result<(), BackendError> {
        let digest = spec.inputs_digest()?;
        self.build_with_digest(spec, &digest).await
    }

    async fn build_with_digest(&self, spec: &BuildSpec, digest: &str) -> Result<(), BackendError> {
        let previous = self
            .client
            .inspect_image(&spec.tag)
            .await
            .ok()
            .and_then(|i| i.id);
        self.build_context(spec, digest).await?;
        // The image the tag pointed at before is now dangling: remove it, unless a
        // container still uses it (then the engine refuses, which is fine).
        if let Some(old) = previous {
            let now = self
                .client
                .inspect_image(&spec.tag)
                .await
                .ok()
                .and_then(|i| i.id);
            if now.as_deref() != Some(old.as_str()) {
                let _ = self
                    .client
                    .remove_image(
                        &old,
                        None::<bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            }
        }
        Ok(())
    }

    async fn build_context(&self, spec: &BuildSpec, digest: &str) -> Result<(), BackendError> {
        let action = || format!("build image {}", spec.tag);
        let tar = spec.context_tar()?;
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_INPUTS.to_owned(), digest.to_owned());
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_owned(),
            t: Some(spec.tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args.clone().into_iter().collect()),
            labels: Some(labels),
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let text = info.stream.or(info.status).unwrap_or_default();
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        self.progress(line);
                        last_lines.push(line.to_owned());
                        if last_lines.len() > 10 {
                            last_lines.remove(0);
                        }
                    }
                }
                Err(e) => {
                    let mut message = error_text(&e);
                    if !last_lines.is_empty() {
                        message = format!(
                            "{message}\n  last build output:\n    {}",
                            last_lines.join("\n    ")
                        );
                    }
                    return Err(BackendError::Engine {
                        action: action(),
                        message,
                    });
                }
            }
        }
        // The classic builder reports some failures only by not tagging.
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

    /// Builds the built-in image `which` under its standard tag (`bottle-gate:latest`,
    /// `bottle-agent:latest`) when missing or stale, or always with `opts.force`.
    pub async fn build_builtin(
        &self,
        which: BuiltinImage,
        opts: &BuildOptions,
    ) -> Result<ImageStatus, BackendError> {
        self.ensure_builtin(which, which.tag(), opts).await
    }

    /// Makes sure the base image `name` exists: when it is missing and is one bottle makes
    /// ([`DEFAULT_BASE_IMAGE`], [`SSHD_BASE_IMAGE`]), imports its root filesystem (prepared,
    /// else made now; see [`bottle_backend_shared::base`]). Any other missing base is left
    /// to the engine (it pulls it when it builds).
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

    /// Makes the base image `name` from Debian packages: runs the embedded
    /// `make-base.sh --tar-out` (root and debootstrap required; takes minutes and reaches
    /// the Debian mirror) and imports the rootfs through the API with the changes the
    /// script prints. Replaces an existing image of that name.
    pub async fn make_base_image(&self, name: &str) -> Result<(), BackendError> {
        let progress = |line: &str| self.progress(line);
        let rootfs = base::make_rootfs(name, &progress).await?;
        self.import_rootfs(rootfs.source.clone(), name, &rootfs.changes)
            .await
    }

    /// Imports a root filesystem tarball as image `image` (like `docker import`), applying
    /// Dockerfile `changes` such as `ENV PATH=...`, `LABEL k=v`, `CMD ["/bin/sh"]`.
    pub async fn import_rootfs(
        &self,
        source: RootfsSource,
        image: &str,
        changes: &[String],
    ) -> Result<(), BackendError> {
        let action = || format!("import image {image}");
        let (repo, tag) = split_reference(image);
        let body = match source {
            RootfsSource::Bytes(b) => bollard::body_full(b.into()),
            RootfsSource::File(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| {
                    BackendError::Other(format!("cannot open {}: {e}", path.display()))
                })?;
                bollard::body_try_stream(tokio_util::io::ReaderStream::new(file))
            }
        };
        let options = CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            changes: changes.to_vec(),
            ..Default::default()
        };
        let mut stream = self.client.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status.filter(|s| !s.trim().is_empty()) {
                        self.progress(&format!("import {image}: {}", status.trim()));
                    }
                }
                Err(e) => return Err(engine_err(action(), &e)),
            }
        }
        if self.image_exists(image).await? {
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
                            "image {} (for container {}) does not exist on the engine at {}; nothing was created\n  hint: build it (`docker build -t {} DIR`) or pull it (`docker pull {}`), or set the bottle's `image` to one you have",
                            c.image.name, c.name, self.host, c.image.name, c.image.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

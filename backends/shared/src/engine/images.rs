//! Images through an engine: fresh or stale by the digest of their inputs, builds, the
//! base image imported from a root filesystem tarball.

use std::collections::BTreeSet;

use bottle_core::backend::BackendError;
use bottle_core::images::{self, Base, ImageRecipe};
use bottle_core::plan::Plan;

use super::{BuildEvent, Engine, ImportBody};
use crate::base;
use crate::images::{
    build_reason, recipe_spec, BuildOptions, BuildSpec, ImageStatus, RootfsSource, BASE_IMAGE_ARG,
    LABEL_INPUTS,
};

/// Whether the engine has image `name`.
pub async fn image_exists<E: Engine>(e: &E, name: &str) -> Result<bool, BackendError> {
    e.inspect_image(name)
        .await
        .map(|i| i.is_some())
        .map_err(|err| err.at(format!("inspect image {name}")))
}

/// The [`LABEL_INPUTS`] label of image `name`: `None` when the image is missing,
/// `Some("")` when it has no such label.
pub async fn image_inputs<E: Engine>(e: &E, name: &str) -> Result<Option<String>, BackendError> {
    match e.inspect_image(name).await {
        Ok(i) => Ok(i.map(|i| i.labels.get(LABEL_INPUTS).cloned().unwrap_or_default())),
        Err(err) => Err(err.at(format!("inspect image {name}"))),
    }
}

/// [`Backend::image_command`](bottle_core::backend::Backend::image_command): what image
/// `name` runs when given no command (its entrypoint, then its command).
pub async fn image_command<E: Engine>(e: &E, name: &str) -> Result<Vec<String>, BackendError> {
    let info = e
        .inspect_image(name)
        .await
        .map_err(|err| err.at(format!("inspect image {name}")))?
        .ok_or_else(|| {
            BackendError::Other(format!(
                "image {name} does not exist, so its command cannot be read\n  hint: build or pull it, or name the command after `--`"
            ))
        })?;
    let command: Vec<String> = info
        .entrypoint
        .unwrap_or_default()
        .into_iter()
        .chain(info.cmd.unwrap_or_default())
        .collect();
    if command.is_empty() {
        return Err(BackendError::Other(format!(
            "image {name} has no command of its own\n  hint: name the command after `--`, e.g. `bottle run -- sh`"
        )));
    }
    Ok(command)
}

async fn image_id<E: Engine>(e: &E, name: &str) -> Option<String> {
    e.inspect_image(name).await.ok().flatten()?.id
}

/// Builds `spec` unless the image exists with the same inputs (or `force`), making its
/// base image first when that is one bottle makes.
pub async fn ensure_image<E: Engine>(
    e: &E,
    spec: &BuildSpec,
    force: bool,
) -> Result<ImageStatus, BackendError> {
    let digest = spec.inputs_digest()?;
    let have = image_inputs(e, &spec.tag).await?;
    let Some(why) = build_reason(have.as_deref(), &digest, force) else {
        return Ok(ImageStatus::Fresh);
    };
    e.progress(&format!("bottle: building image {} ({why})", spec.tag));
    if let Some(base) = spec.build_args.get(BASE_IMAGE_ARG) {
        ensure_base_image(e, base).await?;
    }
    build_with_digest(e, spec, &digest).await?;
    Ok(ImageStatus::Built)
}

/// Builds `spec` unconditionally, labelled with its inputs digest. Build output goes to
/// the progress sink; a failed build is [`BackendError::Engine`] with the engine's message
/// and the last lines of output.
pub async fn build_image<E: Engine>(e: &E, spec: &BuildSpec) -> Result<(), BackendError> {
    let digest = spec.inputs_digest()?;
    build_with_digest(e, spec, &digest).await
}

async fn build_with_digest<E: Engine>(
    e: &E,
    spec: &BuildSpec,
    digest: &str,
) -> Result<(), BackendError> {
    let previous = image_id(e, &spec.tag).await;
    build_context(e, spec, digest).await?;
    // The image the tag pointed at before is now dangling: remove it, unless a container
    // still uses it (then the engine refuses, which is fine).
    if let Some(old) = previous {
        if image_id(e, &spec.tag).await.as_deref() != Some(old.as_str()) {
            let _ = e.remove_image(&old).await;
        }
    }
    Ok(())
}

async fn build_context<E: Engine>(
    e: &E,
    spec: &BuildSpec,
    digest: &str,
) -> Result<(), BackendError> {
    let action = || format!("build image {}", spec.tag);
    let tar = spec.context_tar()?;
    let mut labels = spec.labels.clone();
    labels.insert(LABEL_INPUTS.to_owned(), digest.to_owned());
    let mut last_lines: Vec<String> = Vec::new();
    let mut error: Option<String> = None;
    let mut on_event = |event: BuildEvent<'_>| match event {
        BuildEvent::Error(message) => error = Some(message.trim().to_owned()),
        BuildEvent::Output(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                e.progress(line);
                last_lines.push(line.to_owned());
                if last_lines.len() > 10 {
                    last_lines.remove(0);
                }
            }
        }
    };
    let streamed = e.build(spec, &labels, tar, &mut on_event).await;
    if let Some(message) = streamed.err().map(|err| err.message().to_owned()).or(error) {
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
    // Some builders report a failure only by not tagging.
    match image_inputs(e, &spec.tag).await? {
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

/// Builds the image of `recipe` as `tag` when missing or stale; first the image of the
/// recipe it builds from, if any ([`Base::Recipe`], under its standard tag, when missing
/// or stale: `opts.force` forces only `recipe`'s own build).
pub async fn ensure_recipe<E: Engine>(
    e: &E,
    recipe: &ImageRecipe,
    tag: &str,
    opts: &BuildOptions,
) -> Result<ImageStatus, BackendError> {
    if let Base::Recipe(parent) = recipe.base {
        let parent_opts = BuildOptions {
            force: false,
            ..opts.clone()
        };
        Box::pin(ensure_recipe(e, parent, parent.tag, &parent_opts)).await?;
    }
    let spec = recipe_spec(recipe, tag, opts)?;
    ensure_image(e, &spec, opts.force).await
}

/// [`Backend::image_states`](bottle_core::backend::Backend::image_states): each recipe's
/// image under its standard tag, compared with its inputs as `build_images` would.
pub async fn image_states<E: Engine>(
    e: &E,
    which: &[&'static ImageRecipe],
) -> Result<Vec<(&'static str, bottle_core::backend::ImageState)>, BackendError> {
    use bottle_core::backend::ImageState;
    let opts = e.build_options().clone();
    let mut out = Vec::new();
    for recipe in which {
        // Without its build inputs (a sidecar program not found) an image can still be
        // told present or missing, not whether it is current.
        let digest = recipe_spec(recipe, recipe.tag, &opts)
            .and_then(|spec| spec.inputs_digest())
            .ok();
        let state = match (image_inputs(e, recipe.tag).await?, digest) {
            (None, _) => ImageState::Missing,
            (Some(_), None) => ImageState::Present,
            (Some(have), Some(digest)) if build_reason(Some(&have), &digest, false).is_some() => {
                ImageState::Stale
            }
            (Some(_), Some(_)) => ImageState::Fresh,
        };
        out.push((recipe.tag, state));
    }
    Ok(out)
}

/// [`Backend::build_images`](bottle_core::backend::Backend::build_images): the images of
/// the recipes `which` under their standard tags (`bottle-gate:latest`, ...), when missing
/// or stale, or always with `force`; says what it did on the progress sink.
pub async fn build_images<E: Engine>(
    e: &E,
    which: &[&'static ImageRecipe],
    force: bool,
) -> Result<(), BackendError> {
    let opts = BuildOptions {
        force,
        ..e.build_options().clone()
    };
    for recipe in which {
        let status = ensure_recipe(e, recipe, recipe.tag, &opts).await?;
        let what = match status {
            ImageStatus::Fresh => "up to date",
            ImageStatus::Built => "built",
        };
        e.progress(&format!("bottle: image {} {what}", recipe.tag));
    }
    Ok(())
}

/// Makes sure the base image `name` exists: when it is missing and is one bottle makes
/// ([`DEFAULT_BASE_IMAGE`](crate::images::DEFAULT_BASE_IMAGE),
/// [`SSHD_BASE_IMAGE`](crate::images::SSHD_BASE_IMAGE)), imports its root filesystem
/// (prepared, else made now; see [`crate::base`]). Any other missing base is left to the
/// engine (it pulls it when it builds).
pub async fn ensure_base_image<E: Engine>(e: &E, name: &str) -> Result<ImageStatus, BackendError> {
    if image_exists(e, name).await? || !base::is_builtin_base(name) {
        return Ok(ImageStatus::Fresh);
    }
    let progress = |line: &str| e.progress(line);
    let rootfs = base::base_rootfs(name, &progress).await?;
    e.progress(&format!(
        "bottle: importing base image {name} from {}",
        rootfs.origin
    ));
    import_rootfs(e, rootfs.source.clone(), name, &rootfs.changes).await?;
    Ok(ImageStatus::Built)
}

/// Makes the base image `name` from Debian packages now: runs the embedded
/// `make-base.sh --tar-out` (root and debootstrap required; takes minutes and reaches the
/// Debian mirror) and imports the rootfs. Replaces an existing image of that name.
pub async fn make_base_image<E: Engine>(e: &E, name: &str) -> Result<(), BackendError> {
    let progress = |line: &str| e.progress(line);
    let rootfs = base::make_rootfs(name, &progress).await?;
    import_rootfs(e, rootfs.source.clone(), name, &rootfs.changes).await
}

/// Imports a root filesystem tarball as image `image` (like `docker import`), applying
/// Dockerfile `changes` such as `ENV PATH=...`, `LABEL k=v`, `CMD ["/bin/sh"]`. A file is
/// streamed, not read into memory.
pub async fn import_rootfs<E: Engine>(
    e: &E,
    source: RootfsSource,
    image: &str,
    changes: &[String],
) -> Result<(), BackendError> {
    let action = || format!("import image {image}");
    let body = match source {
        RootfsSource::Bytes(b) => ImportBody::Bytes(b),
        RootfsSource::File(path) => {
            ImportBody::File(tokio::fs::File::open(&path).await.map_err(|err| {
                BackendError::Other(format!("cannot open {}: {err}", path.display()))
            })?)
        }
    };
    e.import(body, image, changes)
        .await
        .map_err(|err| err.at(action()))?;
    if image_exists(e, image).await? {
        e.progress(&format!("bottle: imported {image}"));
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
pub async fn ensure_plan_images<E: Engine>(e: &E, plan: &Plan) -> Result<(), BackendError> {
    let mut seen = BTreeSet::new();
    let opts = e.build_options();
    for c in &plan.containers {
        if !seen.insert(c.image.name.as_str()) {
            continue;
        }
        match c.image.recipe.as_deref() {
            Some(name) => {
                let recipe = images::recipe(name).ok_or_else(|| {
                    BackendError::Other(format!(
                        "container {} names the image recipe '{name}', which this bottle does not have (it has: {})",
                        c.name,
                        images::names()
                    ))
                })?;
                ensure_recipe(e, recipe, &c.image.name, opts).await?;
            }
            None => {
                if !image_exists(e, &c.image.name).await? {
                    return Err(BackendError::Other(e.missing_image(&c.image.name, &c.name)));
                }
            }
        }
    }
    Ok(())
}

//! Image builds and imports through the API: fresh/stale, build errors, the base image
//! from a prepared rootfs, the built-in images.

use std::path::PathBuf;

use bottle_backend_podman::images::{
    BuildOptions, BuildSpec, ImageStatus, DEFAULT_BASE_IMAGE, LABEL_INPUTS,
};
use bottle_backend_podman::Podman;
use bottle_backend_shared::base;
use bottle_core::backend::{Backend, BackendError, UpOptions};
use bottle_core::plan::BuiltinImage;

use crate::common::{self, engine, unique_slug, Guard};

/// Removes the listed images on drop (unless `BOTTLE_TEST_KEEP=1`).
struct ImageGuard {
    host: String,
    tags: Vec<String>,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        if std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1") {
            return;
        }
        let host = self.host.clone();
        let tags = std::mem::take(&mut self.tags);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let Ok(p) = Podman::connect_to(&host).await else {
                        return;
                    };
                    for t in tags {
                        let _ = p.client().images().get(t).remove().await;
                    }
                })
        })
        .join();
    }
}

#[tokio::test]
async fn builds_are_labelled_and_skipped_when_fresh() {
    let p = engine!();
    let base = common::tiny_image(&p).await;
    let tag = format!("bottle-test-build:{}", unique_slug("b"));
    let _g = ImageGuard {
        host: p.address(),
        tags: vec![tag.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG GREETING\nCOPY hello /hello\nRUN [\"/bin/sh\", \"-c\", \"echo \\\"$GREETING\\\" >> /hello\"]\n",
    )
    .unwrap();
    let extra = dir.path().join("outside");
    std::fs::write(&extra, "from the host\n").unwrap();
    let spec = BuildSpec::from_dir(&tag, dir.path())
        .unwrap()
        .extra_file("hello", &extra)
        .unwrap()
        .build_arg("BASE_IMAGE", &base)
        .build_arg("GREETING", "hi")
        .label("bottle.test", "1");

    assert_eq!(
        p.ensure_image(&spec, false).await.unwrap(),
        ImageStatus::Built
    );
    let info = p
        .client()
        .images()
        .get(tag.as_str())
        .inspect()
        .await
        .unwrap();
    let labels = info.labels.unwrap();
    assert_eq!(
        labels.get(LABEL_INPUTS),
        Some(&spec.inputs_digest().unwrap())
    );
    assert_eq!(labels.get("bottle.test").map(String::as_str), Some("1"));

    assert_eq!(
        p.ensure_image(&spec, false).await.unwrap(),
        ImageStatus::Fresh
    );
    assert_eq!(
        p.ensure_image(&spec, true).await.unwrap(),
        ImageStatus::Built
    );
    let changed = spec.clone().build_arg("GREETING", "hello");
    assert_eq!(
        p.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Built
    );
    std::fs::write(&extra, "changed\n").unwrap();
    assert_eq!(
        p.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Built
    );
    assert_eq!(
        p.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Fresh
    );
    // The build really ran with the build argument.
    let g = Guard::new(&p, "built");
    let plan = common::agent_only(&g.slug, &tag);
    p.up(&plan, &UpOptions::default()).await.unwrap();
    let out = p
        .exec_output(
            &plan.containers[0].name,
            &common::strings(&["cat", "/hello"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "changed\nhello\n");
}

#[tokio::test]
async fn a_failing_build_carries_the_engine_message() {
    let p = engine!();
    let base = common::tiny_image(&p).await;
    let tag = format!("bottle-test-fail:{}", unique_slug("f"));
    let _g = ImageGuard {
        host: p.address(),
        tags: vec![tag.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nRUN exit 3\n"),
    )
    .unwrap();
    let spec = BuildSpec::from_dir(&tag, dir.path()).unwrap();
    let err = p.ensure_image(&spec, false).await.unwrap_err();
    let BackendError::Engine { action, message } = &err else {
        panic!("want Engine, got {err:?}");
    };
    assert_eq!(action, &format!("build image {tag}"));
    assert!(message.contains("exit status 3"), "{message}");
    assert!(!p.image_exists(&tag).await.unwrap());
}

/// The base image imported through the API from the rootfs tarball prepared by
/// `scripts/setup-podman.sh --rootfs`: what a rootless user's store gets its base from.
#[tokio::test]
async fn the_base_image_is_imported_from_a_prepared_rootfs() {
    let p = engine!();
    let Some(rootfs) = base::prepared_rootfs(DEFAULT_BASE_IMAGE).unwrap() else {
        eprintln!(
            "\n*** SKIP the_base_image_is_imported...: no prepared rootfs in {} (sudo scripts/setup-podman.sh --rootfs) ***\n",
            base::rootfs_dir().display()
        );
        return;
    };
    let tag = format!("bottle-test-base:{}", unique_slug("base"));
    let _g = ImageGuard {
        host: p.address(),
        tags: vec![tag.clone()],
    };
    p.import_rootfs(rootfs.source.clone(), &tag, &rootfs.changes)
        .await
        .unwrap();
    let info = p
        .client()
        .images()
        .get(tag.as_str())
        .inspect()
        .await
        .unwrap();
    let labels = info.labels.unwrap();
    assert!(
        labels
            .get("bottle.base.recipe")
            .is_some_and(|r| r.starts_with("bookworm/")),
        "{labels:?}"
    );
    assert!(info
        .config
        .unwrap()
        .env
        .unwrap()
        .iter()
        .any(|e| e.starts_with("PATH=")));
}

fn gitleaks() -> Option<PathBuf> {
    if std::env::var_os("BOTTLE_GITLEAKS").is_some() {
        return None; // the builder finds it itself
    }
    let fallback = PathBuf::from("/usr/local/bin/gitleaks");
    fallback.is_file().then_some(fallback)
}

/// The real built-in images, from the embedded contexts, in this user's store. Needs the
/// base image (there already, or imported from a prepared rootfs) and gitleaks
/// (`BOTTLE_GITLEAKS`, PATH); skipped loudly otherwise.
#[tokio::test]
async fn the_builtin_images_build_from_the_embedded_contexts() {
    let p = engine!();
    let opts = BuildOptions {
        base_image: DEFAULT_BASE_IMAGE.into(),
        gitleaks: gitleaks(),
        ..Default::default()
    };
    if !p.image_exists(DEFAULT_BASE_IMAGE).await.unwrap()
        && base::prepared_rootfs(DEFAULT_BASE_IMAGE).unwrap().is_none()
    {
        eprintln!("\n*** SKIP the_builtin_images_build...: no {DEFAULT_BASE_IMAGE} and no prepared rootfs (sudo scripts/setup-podman.sh --rootfs) ***\n");
        return;
    }
    let have_gitleaks = opts.gitleaks.is_some()
        || std::env::var_os("BOTTLE_GITLEAKS").is_some()
        || std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|p| p.join("gitleaks").is_file());
    for which in [BuiltinImage::Agent, BuiltinImage::Gate] {
        if which == BuiltinImage::Gate && !have_gitleaks {
            eprintln!(
                "\n*** SKIP building the gate image: no gitleaks (set BOTTLE_GITLEAKS) ***\n"
            );
            continue;
        }
        // Under a test tag, so a developer's own images are left alone.
        let tag = format!("bottle-test-{which:?}:latest").to_lowercase();
        p.ensure_builtin(which, &tag, &opts).await.unwrap();
        assert_eq!(
            p.ensure_builtin(which, &tag, &opts).await.unwrap(),
            ImageStatus::Fresh
        );
        let info = p
            .client()
            .images()
            .get(tag.as_str())
            .inspect()
            .await
            .unwrap();
        let labels = info.labels.unwrap();
        assert_eq!(
            labels.get("bottle.image").map(String::as_str),
            Some(if which == BuiltinImage::Gate {
                "gate"
            } else {
                "agent"
            })
        );
    }

    // `up` ensures a built-in image itself (here: fresh, so no build) and runs it.
    let g = Guard::new(&p, "builtin");
    let mut plan = common::agent_only(&g.slug, "bottle-test-agent:latest");
    plan.containers[0].image.builtin = Some(BuiltinImage::Agent);
    plan.containers[0].command = None; // the image's own `sleep infinity`
    let p = p.with_build_options(opts);
    p.up(&plan, &UpOptions::default()).await.unwrap();
    let id = p
        .exec_output(&plan.containers[0].name, &common::strings(&["id", "-u"]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(id.stdout).unwrap().trim(), "1000");
}

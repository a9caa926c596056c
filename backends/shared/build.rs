//! Embeds the build inputs of bottle's built-in images into the crate.
//!
//! The files under `gate-image/` and `agent-image/` (and `gate-image/base/make-base.sh`,
//! `gate-image/gitleaks.lock`) are compiled into the library with `include_bytes!`, so a
//! `bottle` binary builds its images from any working directory, with exactly the inputs it
//! was built with, whichever backend builds them (docker and podman both take them from
//! here). Which files enter each context is documented in `src/images.rs`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

/// A context file: its name in the image directory and in the context, and its mode.
type Ctx = (&'static str, u32);

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..").join("..");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("embedded.rs");

    let mut code = String::new();
    // Exactly the files of each context, with the modes gate-image/build-context.sh gives
    // them (the classic builder copies modes into the image). The gate's `gitleaks` binary
    // is not here: it comes from the host at build time, verified against gitleaks.lock.
    let contexts: [(&str, &str, &[Ctx]); 3] = [
        ("GATE_CONTEXT", "gate-image", &[("Dockerfile", 0o644)]),
        ("AGENT_CONTEXT", "agent-image", &[("Dockerfile", 0o644)]),
        (
            "UPSTREAM_CONTEXT",
            "tests/fixtures/upstream-image",
            &[("Dockerfile", 0o644), ("entrypoint", 0o755)],
        ),
    ];
    for (name, dir, files) in contexts {
        writeln!(code, "pub(crate) static {name}: &[EmbeddedFile] = &[").unwrap();
        for (file, mode) in files {
            let path = root.join(dir).join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            if path.is_file() {
                let abs = path.canonicalize().expect("canonical path");
                writeln!(
                    code,
                    "    EmbeddedFile {{ path: {file:?}, mode: 0o{mode:o}, bytes: include_bytes!({:?}) }},",
                    abs.display().to_string()
                )
                .unwrap();
            }
        }
        writeln!(code, "];").unwrap();
    }
    for (name, path) in [
        (
            "GITLEAKS_LOCK",
            root.join("gate-image").join("gitleaks.lock"),
        ),
        (
            "MAKE_BASE_SCRIPT",
            root.join("gate-image").join("base").join("make-base.sh"),
        ),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_file() {
            let abs = path.canonicalize().expect("canonical path");
            writeln!(
                code,
                "pub(crate) static {name}: Option<&str> = Some(include_str!({:?}));",
                abs.display().to_string()
            )
            .unwrap();
        } else {
            writeln!(code, "pub(crate) static {name}: Option<&str> = None;").unwrap();
        }
    }
    fs::write(out, code).expect("write embedded.rs");
}

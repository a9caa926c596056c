//! `bottle-gate-scan`: the git-gate's push scan.
//!
//! The gate's pre-receive hook runs it in the bare repository with the hook's environment
//! (git's quarantine variables included) and the hook's `<old> <new> <ref>` lines on stdin.
//! It decides whether a push may be forwarded upstream: exit 0 clean, 1 findings, 2 refused
//! because a limit was reached or the scan could not be done. Anything but 0 refuses.
//!
//! # Decisions
//!
//! - **Objects, not a log.** `gitleaks git` reads `git log -p -U0`: added lines only, no
//!   merge resolutions, no messages, nothing for a ref to a tree or blob. Here every object
//!   the push brings that the gate lacks (`rev-list --objects --stdin --not --all`, tips of
//!   every ref kind) is read through one `cat-file --batch` stream and written once, by id,
//!   into a directory that one `gitleaks dir` run scans: every blob whole (every version of
//!   every file, merge results included), every commit and tag object (header and message),
//!   every tree's entry names, and the pushed ref names. Notes are commits and blobs too.
//!   See [`scan`].
//! - **Decoded as what it is.** `gitleaks dir` skips files whose first bytes look like an
//!   "application" type, and opens archives only by file name. So every file starts with a
//!   prefix line that defeats the skip, names never carry an archive extension, and gzip,
//!   zip and tar are opened here, by content, a bounded depth deep; UTF-16 is transcoded.
//!   See [`extract`].
//! - **The gate's own config.** Made from the pinned gitleaks binary's embedded default at
//!   image build time, without its global path allowlist, with its broken stopword regex
//!   fixed; passed with `--config`, gitleaks' environment emptied. See [`config`].
//! - **Nothing pushed changes the scan.** git runs with replace objects off and no
//!   attributes or system config (see [`git::command`]); files are named by object id, so no
//!   pushed `.gitleaks.toml`, `.gitleaksignore` or path can matter; `gitleaks:allow` is
//!   ignored. Accepted findings come from the manifest, as options.
//! - **Closed at every bound.** The new objects' total size, the bytes scanned after
//!   decoding (which bounds any decompression bomb), the time, and archive nesting are
//!   limited; over any, the push is refused with the limit named and how to raise it. A
//!   gitleaks run is trusted only when its exit status, log, report and byte count agree
//!   (see [`gitleaks`]).
//! - **Fast.** One rev-list, one batch-check, two cat-file streams and one gitleaks run,
//!   whatever the push's size; gitleaks scans files in parallel.
#![deny(missing_docs)]

pub mod config;
pub mod extract;
pub mod git;
pub mod gitleaks;
pub mod report;
pub mod scan;

pub use scan::{parse_updates, scan, Options, Outcome, ScanError, Update};

//! The push scan: from the pre-receive hook's update lines to a verdict.

use crate::extract::{ExtractError, Overrun, ScanDir, View};
use crate::git::{self, GitError, Kind, TreeEntry};
use crate::gitleaks::{self, GitleaksError};
use regex::Regex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One line the pre-receive hook reads: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The ref's value before (all zeros: created).
    pub old: String,
    /// Its value after (all zeros: deleted).
    pub new: String,
    /// The ref.
    pub name: String,
}

/// Parses the hook's stdin; blank lines are skipped.
pub fn parse_updates(input: &str) -> Result<Vec<Update>, ScanError> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(old), Some(new), Some(name), None)
                if git::is_oid(old) && git::is_oid(new) && !name.is_empty() =>
            {
                out.push(Update {
                    old: old.to_owned(),
                    new: new.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => return Err(ScanError::Input(line.to_owned())),
        }
    }
    Ok(out)
}

fn is_zero(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

/// The scan's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gate's gitleaks config.
    pub config: PathBuf,
    /// The gitleaks binary.
    pub gitleaks: PathBuf,
    /// Most bytes of new objects a push may bring (their sizes, uncompressed).
    pub max_push_bytes: u64,
    /// Most bytes scanned, after decoding and decompression.
    pub max_scan_bytes: u64,
    /// Longest the whole scan may take.
    pub timeout: Duration,
    /// Deepest archive nesting opened.
    pub max_archive_depth: usize,
    /// Findings accepted by fingerprint.
    pub accept_fingerprints: HashSet<String>,
    /// Findings accepted by path: every path of the object must match one.
    pub accept_paths: Vec<Regex>,
    /// Where temporary files go (the system's default when `None`).
    pub temp_dir: Option<PathBuf>,
}

/// The defaults, documented in the README and docs/security.md.
pub mod defaults {
    /// `max_push_mb`.
    pub const MAX_PUSH_MB: u64 = 256;
    /// `max_scan_mb`.
    pub const MAX_SCAN_MB: u64 = 1024;
    /// `scan_timeout_s`.
    pub const SCAN_TIMEOUT_S: u64 = 300;
    /// Archive nesting.
    pub const MAX_ARCHIVE_DEPTH: usize = 4;
}

/// A limit a push ran into.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum Limit {
    /// The new objects are larger than `max_push_bytes`.
    PushBytes {
        /// Their size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Decoding made more than `max_scan_bytes`.
    ScanBytes {
        /// The limit.
        max: u64,
    },
    /// The scan took longer than `timeout`.
    Timeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// Archives nested deeper than allowed.
    ArchiveDepth {
        /// The object (and path inside it) where the limit was reached.
        at: String,
        /// The limit.
        max: usize,
    },
}

impl Limit {
    /// What happened, which limit, and how to raise it.
    pub fn explain(&self) -> String {
        const MB: u64 = 1 << 20;
        let how = "in bottle.toml, in this repository's [[bottles.NAME.git]] entry";
        match self {
            Limit::PushBytes { bytes, max } => format!(
                "this push brings {:.1} MiB of new objects, over the gate's limit of {} MiB. \
                 Push less at a time (fewer commits, no large generated files), or raise the limit \
                 {how}: max_push_mb = {}",
                *bytes as f64 / MB as f64,
                max / MB,
                (bytes / MB + 1).max(max / MB * 2)
            ),
            Limit::ScanBytes { max } => format!(
                "decoding this push (its objects, UTF-16 text, archives' members) makes more than \
                 the gate's limit of {} MiB to scan. Raise it {how}: max_scan_mb = {}",
                max / MB,
                max / MB * 2
            ),
            Limit::Timeout { secs } => format!(
                "scanning this push took longer than the gate's limit of {secs} s. Push less at a \
                 time, or raise the limit {how}: scan_timeout_s = {}",
                secs * 2
            ),
            Limit::ArchiveDepth { at, max } => format!(
                "{at} nests archives more than {max} deep; the gate does not push what it cannot \
                 open. Unpack the inner archives before committing them, or raise the limit \
                 {how}: max_archive_depth = {}",
                max + 1
            ),
        }
    }
}

/// Why a push could not be judged; it is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A limit was exceeded.
    #[error("{}", .0.explain())]
    Limit(Limit),
    /// A line of the hook's input is not `<old> <new> <ref>`.
    #[error("unexpected input line {0:?}")]
    Input(String),
    /// git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// An object could not be parsed.
    #[error("object {0} cannot be parsed")]
    Object(String),
    /// gitleaks failed.
    #[error(transparent)]
    Gitleaks(GitleaksError),
    /// The scan directory could not be written.
    #[error("{0}")]
    Write(String),
}

/// What brought an object into the push.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Via {
    /// This commit (its tree holds the object).
    Commit {
        /// The commit.
        commit: String,
    },
    /// This annotated tag (it points at the object, or at a tree holding it).
    Tag {
        /// The tag object.
        tag: String,
        /// Its name.
        name: String,
    },
    /// This ref (it points at the object, or at a tree holding it).
    Ref {
        /// The ref.
        name: String,
    },
    /// Nothing this scan could tell (the object is scanned all the same).
    Push,
}

/// Where a finding is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Place {
    /// What the object is: "blob", "tree", "commit", "tag", or "ref names".
    pub kind: String,
    /// The object.
    pub object: String,
    /// What brought it, for a blob or tree; the object itself for a commit or tag.
    pub via: Via,
    /// A ref of the push that reaches it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_ref: Option<String>,
    /// Its path there (blobs and trees), with the path inside archives after `!`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// More paths the same object has in this push.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_paths: Vec<String>,
    /// What part of the object: "content", "message", "header", "utf-16 text", ...
    pub part: String,
    /// The 1-based line in that part (for a commit or tag: in the whole object).
    pub line: usize,
}

/// One finding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// The gitleaks rule.
    pub rule: String,
    /// The rule's description.
    pub description: String,
    /// Where.
    pub place: Place,
    /// What a user writes into `accept_fingerprints` to accept it.
    pub fingerprint: String,
    /// Whether the manifest accepts it.
    pub accepted: bool,
}

/// The verdict on a push the scanner could judge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// New objects.
    pub objects: usize,
    /// Their bytes.
    pub object_bytes: u64,
    /// Bytes scanned (files written for gitleaks, decoded views included).
    pub scanned_bytes: u64,
    /// Every finding, accepted ones included.
    pub findings: Vec<Finding>,
    /// What could not be opened (its raw bytes were scanned).
    pub notes: Vec<String>,
    /// How long the scan took, in milliseconds.
    pub millis: u128,
}

impl Outcome {
    /// Whether any finding is not accepted.
    pub fn refused(&self) -> bool {
        self.findings.iter().any(|f| !f.accepted)
    }
}

/// Locations of an object: what brought it and its path there.
type Locations = Vec<(Via, String)>;

/// Most locations computed for one object: past this, it cannot be accepted by path.
const MAX_LOCATIONS: usize = 64;

struct Walk {
    /// For each new tree or blob: what names it (a new tree with the entry's name, or a
    /// commit, tag or ref directly with an empty name).
    parents: HashMap<String, Vec<(Parent, String)>>,
    memo: HashMap<String, (Locations, bool)>,
}

#[derive(Clone)]
enum Parent {
    Tree(String),
    Root(Via),
}

impl Walk {
    /// The one name `oid` has, when every tree naming it gives it the same name (the
    /// usual case: a file's version in the trees of the commits it lives through). Then
    /// the base name of each of its paths is that name, and its locations need not be
    /// worked out to name its file. `None` when it has no parent or names that differ
    /// once made safe.
    fn single_base(&self, oid: &str) -> Option<String> {
        let parents = self.parents.get(oid)?;
        let (_, first) = parents.first()?;
        if first.is_empty() {
            return None;
        }
        let safe = crate::extract::safe_name(first);
        parents
            .iter()
            .skip(1)
            .all(|(_, name)| name == first || crate::extract::safe_name(name) == safe)
            .then(|| first.clone())
    }

    /// Every location of `oid` (at most [`MAX_LOCATIONS`]; the flag says whether some were
    /// left out).
    fn locations(&mut self, oid: &str) -> (Locations, bool) {
        if let Some(hit) = self.memo.get(oid) {
            return hit.clone();
        }
        let mut out: Locations = Vec::new();
        let mut capped = false;
        let parents = self.parents.get(oid).cloned().unwrap_or_default();
        for (parent, name) in parents {
            match parent {
                Parent::Root(via) => out.push((via, name)),
                Parent::Tree(tree) => {
                    let (above, cut) = self.locations(&tree);
                    capped |= cut;
                    for (via, path) in above {
                        let joined = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}/{name}")
                        };
                        out.push((via, joined));
                    }
                }
            }
            if out.len() > MAX_LOCATIONS {
                out.truncate(MAX_LOCATIONS);
                capped = true;
                break;
            }
        }
        self.memo.insert(oid.to_owned(), (out.clone(), capped));
        (out, capped)
    }
}

/// What each scanned file is about, beyond its origin.
struct About {
    kind: Kind,
    /// For commits and tags: the line where the message starts.
    message_line: usize,
    /// For trees: the entries' names in the order written.
    tree_names: Vec<String>,
}

/// Scans what `updates` bring into the repository in `repo` (the bare repository the hook
/// runs in, with git's quarantine environment), and judges it.
pub fn scan(repo: &Path, updates: &[Update], opts: &Options) -> Result<Outcome, ScanError> {
    let started = Instant::now();
    // BOTTLE_GATE_SCAN_TIMINGS=1 prints each phase's time (for the bench).
    let timings = std::env::var_os("BOTTLE_GATE_SCAN_TIMINGS").is_some();
    let phase = |what: &str| {
        if timings {
            eprintln!(
                "bottle-gate-scan: {what} at {} ms",
                started.elapsed().as_millis()
            );
        }
    };
    let deadline = started + opts.timeout;
    let timed_out = || {
        ScanError::Limit(Limit::Timeout {
            secs: opts.timeout.as_secs(),
        })
    };
    let check_time = || {
        if Instant::now() > deadline {
            Err(timed_out())
        } else {
            Ok(())
        }
    };

    let tips: Vec<String> = updates
        .iter()
        .filter(|u| !is_zero(&u.new))
        .map(|u| u.new.clone())
        .collect();
    let mut tips_dedup = tips.clone();
    tips_dedup.sort();
    tips_dedup.dedup();
    let oids = if tips_dedup.is_empty() {
        Vec::new()
    } else {
        git::new_objects(repo, &tips_dedup)?
    };
    let info = if oids.is_empty() {
        HashMap::new()
    } else {
        git::kinds_and_sizes(repo, &oids)?
    };
    let object_bytes: u64 = info.values().map(|(_, size)| size).sum();
    if object_bytes > opts.max_push_bytes {
        return Err(ScanError::Limit(Limit::PushBytes {
            bytes: object_bytes,
            max: opts.max_push_bytes,
        }));
    }
    check_time()?;
    phase("listed and sized");

    let mut temp = tempfile::Builder::new();
    temp.prefix("bottle-gate-scan-");
    let work = match &opts.temp_dir {
        Some(dir) => temp.tempdir_in(dir),
        None => temp.tempdir(),
    }
    .map_err(|e| ScanError::Write(format!("cannot make a temporary directory: {e}")))?;
    let files_dir = work.path().join("objects");
    std::fs::create_dir(&files_dir)
        .map_err(|e| ScanError::Write(format!("cannot make {}: {e}", files_dir.display())))?;
    let mut out = ScanDir::new(&files_dir, opts.max_scan_bytes, opts.max_archive_depth);
    // gitleaks loads its rules while the push is read (it waits for the directory).
    let gitleaks_run = gitleaks::start(&opts.gitleaks, &opts.config, &files_dir, work.path())
        .map_err(ScanError::Gitleaks)?;
    let write_err = |e: ExtractError| match e {
        ExtractError::Limit(Overrun::ScanBytes) => ScanError::Limit(Limit::ScanBytes {
            max: opts.max_scan_bytes,
        }),
        ExtractError::Limit(Overrun::ArchiveDepth(at)) => ScanError::Limit(Limit::ArchiveDepth {
            at,
            max: opts.max_archive_depth,
        }),
        e => ScanError::Write(e.to_string()),
    };

    // The ref names themselves are pushed data too.
    let names: String = updates.iter().map(|u| format!("{}\n", u.name)).collect();
    out.add_text("refs", "names", names.as_bytes())
        .map_err(write_err)?;

    // Commits, tags and trees first, in one stream: they say where every blob is.
    let hash_len = oids.first().map_or(20, |o| o.len() / 2);
    let non_blobs: Vec<String> = oids
        .iter()
        .filter(|o| info[*o].0 != Kind::Blob)
        .cloned()
        .collect();
    let mut trees: HashMap<String, Vec<TreeEntry>> = HashMap::new();
    let mut headed: HashMap<String, git::Headed> = HashMap::new();
    let mut about: HashMap<String, About> = HashMap::new();
    let mut batch = git::Batch::start(repo, non_blobs)?;
    while let Some((oid, kind, bytes)) = batch.next_object()? {
        check_time()?;
        match kind {
            Kind::Tree => {
                let entries = git::parse_tree(&bytes, hash_len)
                    .ok_or_else(|| ScanError::Object(oid.clone()))?;
                let text: String = entries.iter().map(|e| format!("{}\n", e.name)).collect();
                out.add_text(&oid, "tree", text.as_bytes())
                    .map_err(write_err)?;
                about.insert(
                    oid.clone(),
                    About {
                        kind,
                        message_line: 0,
                        tree_names: entries.iter().map(|e| e.name.clone()).collect(),
                    },
                );
                trees.insert(oid, entries);
            }
            Kind::Commit | Kind::Tag => {
                let h = git::parse_headed(&bytes);
                let what = if kind == Kind::Commit {
                    "commit"
                } else {
                    "tag"
                };
                out.add_text(&oid, what, &bytes).map_err(write_err)?;
                about.insert(
                    oid.clone(),
                    About {
                        kind,
                        message_line: h.message_line,
                        tree_names: Vec::new(),
                    },
                );
                headed.insert(oid, h);
            }
            Kind::Blob => return Err(ScanError::Object(oid)),
        }
    }

    phase("read commits, tags and trees");
    // Which ref of the push reaches each new commit (first tip wins), and the commits'
    // order oldest first, so that a blob is shown in the commit that brought it.
    let mut on_ref: HashMap<String, String> = HashMap::new();
    for u in updates.iter().filter(|u| !is_zero(&u.new)) {
        let mut queue = VecDeque::from([u.new.clone()]);
        while let Some(oid) = queue.pop_front() {
            // A tag leads to its target.
            let Some(h) = headed.get(&oid) else { continue };
            if on_ref.contains_key(&oid) {
                continue;
            }
            on_ref.insert(oid.clone(), u.name.clone());
            queue.extend(h.parents.iter().cloned());
            queue.extend(h.object.iter().cloned());
        }
    }
    let commits: Vec<&String> = oids.iter().filter(|o| info[*o].0 == Kind::Commit).collect();
    let rank: HashMap<&str, usize> = commits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();

    let mut walk = Walk {
        parents: HashMap::new(),
        memo: HashMap::new(),
    };
    let is_new = |oid: &str| info.contains_key(oid);
    for c in commits.iter().rev() {
        if let Some(tree) = headed[*c].tree.as_ref().filter(|t| is_new(t)) {
            walk.parents.entry(tree.clone()).or_default().push((
                Parent::Root(Via::Commit {
                    commit: (*c).clone(),
                }),
                String::new(),
            ));
        }
    }
    for (oid, h) in &headed {
        if info[oid].0 == Kind::Tag {
            if let Some(target) = h.object.as_ref().filter(|t| is_new(t)) {
                let via = Via::Tag {
                    tag: oid.clone(),
                    name: h.tag.clone().unwrap_or_default(),
                };
                walk.parents
                    .entry(target.clone())
                    .or_default()
                    .push((Parent::Root(via), String::new()));
            }
        }
    }
    for u in updates.iter().filter(|u| is_new(&u.new)) {
        if matches!(info[&u.new].0, Kind::Tree | Kind::Blob) {
            walk.parents.entry(u.new.clone()).or_default().push((
                Parent::Root(Via::Ref {
                    name: u.name.clone(),
                }),
                String::new(),
            ));
        }
    }
    for (tree, entries) in &trees {
        for e in entries {
            // Gitlinks (160000) name commits of other repositories: nothing here.
            if e.mode != "160000" && is_new(&e.oid) {
                walk.parents
                    .entry(e.oid.clone())
                    .or_default()
                    .push((Parent::Tree(tree.clone()), e.name.clone()));
            }
        }
    }
    let by_age = |locs: &mut Locations| {
        locs.sort_by_key(|(via, path)| {
            let r = match via {
                Via::Commit { commit } => rank.get(commit.as_str()).copied().unwrap_or(0),
                _ => usize::MAX,
            };
            (r, path.clone())
        });
    };

    // Then every blob, in a second stream: each written once, and once more only under a
    // base name that differs once made safe (for the rules keyed on a path).
    let blobs: Vec<String> = oids
        .iter()
        .filter(|o| info[*o].0 == Kind::Blob)
        .cloned()
        .collect();
    let mut batch = git::Batch::start(repo, blobs)?;
    while let Some((oid, _, bytes)) = batch.next_object()? {
        check_time()?;
        let bases = match walk.single_base(&oid) {
            Some(base) => vec![base],
            None => {
                let (mut locs, _) = walk.locations(&oid);
                by_age(&mut locs);
                let mut bases: Vec<String> = Vec::new();
                for (_, path) in &locs {
                    let base = path.rsplit('/').next().unwrap_or(path).to_owned();
                    if !bases
                        .iter()
                        .any(|b| crate::extract::safe_name(b) == crate::extract::safe_name(&base))
                    {
                        bases.push(base);
                    }
                }
                bases
            }
        };
        let first = bases.first().cloned().unwrap_or_default();
        out.add_blob(&oid, &first, &bytes).map_err(write_err)?;
        for base in bases.iter().skip(1) {
            out.add_alias(&oid, base, &bytes).map_err(write_err)?;
        }
    }
    drop(batch);
    out.finish().map_err(write_err)?;
    phase("read and wrote blobs");

    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or_else(timed_out)?;
    let raw = gitleaks_run
        .finish(out.written, left)
        .map_err(|e| match e {
            GitleaksError::Timeout => timed_out(),
            e => ScanError::Gitleaks(e),
        })?;

    phase("gitleaks done");
    let mut findings = Vec::new();
    for f in raw {
        let file = f.file.trim_start_matches("./");
        let (origin, line) = out.locate(file, f.start_line.max(2)).ok_or_else(|| {
            ScanError::Gitleaks(GitleaksError::Failed(format!(
                "a finding at line {} of {file:?}, which this scan did not write",
                f.start_line
            )))
        })?;
        let (kind, part, path, other_paths, via, part_line) = if origin.oid == "refs" {
            (
                None,
                "ref names".to_owned(),
                None,
                Vec::new(),
                Via::Push,
                line,
            )
        } else {
            let a = about.get(&origin.oid);
            match a.map(|a| a.kind).unwrap_or(Kind::Blob) {
                k @ (Kind::Commit | Kind::Tag) => {
                    let message_line = a.map_or(0, |a| a.message_line);
                    // Lines are counted within the part: "line 1 of its message".
                    let (part, line) = if message_line > 0 && line >= message_line {
                        ("message", line - message_line + 1)
                    } else {
                        ("header", line)
                    };
                    let via = if k == Kind::Commit {
                        Via::Commit {
                            commit: origin.oid.clone(),
                        }
                    } else {
                        Via::Tag {
                            tag: origin.oid.clone(),
                            name: headed[&origin.oid].tag.clone().unwrap_or_default(),
                        }
                    };
                    (Some(k), part.to_owned(), None, Vec::new(), via, line)
                }
                k => {
                    let (mut locs, _) = walk.locations(&origin.oid);
                    by_age(&mut locs);
                    let suffix: String = origin.inner.iter().map(|p| format!("!{p}")).collect();
                    let mut paths = locs.iter().map(|(_, p)| format!("{p}{suffix}"));
                    let path = paths.next();
                    let others: Vec<String> = paths.collect();
                    let via = locs.first().map_or(Via::Push, |(v, _)| v.clone());
                    let part = if k == Kind::Tree {
                        // The name itself may be the secret: it is never shown.
                        let entries = a.map_or(0, |a| a.tree_names.len());
                        format!("the name of its entry {line} (of {entries}, in git's order)")
                    } else {
                        match origin.view {
                            View::Raw => "content".to_owned(),
                            View::Utf16 => "UTF-16 text, transcoded".to_owned(),
                            View::Utf16Runs => "UTF-16 strings extracted from it".to_owned(),
                        }
                    };
                    (Some(k), part, path, others, via, line)
                }
            }
        };
        let on_ref = match &via {
            Via::Commit { commit } => on_ref.get(commit).cloned(),
            Via::Tag { tag, .. } => on_ref.get(tag).cloned(),
            Via::Ref { name } => Some(name.clone()),
            Via::Push => None,
        };
        let fingerprint = format!("{}:{}:{}", origin.label(), f.rule_id, line);
        let (all_locs, capped) = walk.locations(&origin.oid);
        let accepted = opts.accept_fingerprints.contains(&fingerprint)
            || (kind == Some(Kind::Blob)
                && !capped
                && !all_locs.is_empty()
                && !opts.accept_paths.is_empty()
                && all_locs.iter().all(|(_, p)| {
                    let suffix: String = origin.inner.iter().map(|i| format!("!{i}")).collect();
                    let full = format!("{p}{suffix}");
                    opts.accept_paths.iter().any(|re| re.is_match(&full))
                }));
        findings.push(Finding {
            rule: f.rule_id,
            description: f.description,
            place: Place {
                kind: match kind {
                    Some(Kind::Blob) => "blob",
                    Some(Kind::Tree) => "tree",
                    Some(Kind::Commit) => "commit",
                    Some(Kind::Tag) => "tag",
                    None => "ref names",
                }
                .to_owned(),
                object: origin.oid.clone(),
                via,
                on_ref,
                path,
                other_paths,
                part,
                line: part_line,
            },
            fingerprint,
            accepted,
        });
    }
    findings.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    findings.dedup_by(|a, b| a.fingerprint == b.fingerprint);

    Ok(Outcome {
        objects: oids.len(),
        object_bytes,
        scanned_bytes: out.written,
        findings,
        notes: out.notes,
        millis: started.elapsed().as_millis(),
    })
}

//! git, run so that nothing pushed changes what it shows: the objects a push brings, their
//! types and sizes, and their bytes through one `cat-file --batch` stream.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// What can go wrong while reading the push from git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run git {what}: {source}")]
    Spawn {
        /// The git subcommand.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// git failed.
    #[error("git {what} failed ({status}): {stderr}")]
    Failed {
        /// The git subcommand.
        what: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// git printed something this program does not understand.
    #[error("unexpected output from git {what}: {line}")]
    Unexpected {
        /// The git subcommand.
        what: &'static str,
        /// The line.
        line: String,
    },
    /// Reading from or writing to git failed.
    #[error("i/o with git {what}: {source}")]
    Io {
        /// The git subcommand.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// The kind of a git object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A commit.
    Commit,
    /// A tree.
    Tree,
    /// A blob.
    Blob,
    /// An annotated tag.
    Tag,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "commit" => Kind::Commit,
            "tree" => Kind::Tree,
            "blob" => Kind::Blob,
            "tag" => Kind::Tag,
            _ => return None,
        })
    }
}

/// The empty tree of a SHA-1 repository: `attr.tree` pointing at it means no attributes
/// from any tree (in a SHA-256 repository it does not resolve, which git also takes as the
/// empty tree).
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A git command for the repository in `repo`, inheriting the hook's environment (git's
/// quarantine variables included), with replace objects off and no attributes or system
/// config: nothing pushed changes what it shows.
pub fn command(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env_remove("GIT_ATTR_SOURCE")
        .env_remove("GIT_REPLACE_REF_BASE")
        .args([
            "--no-replace-objects",
            "-c",
            "core.attributesFile=/dev/null",
        ])
        .args(["-c", &format!("attr.tree={EMPTY_TREE}")]);
    cmd
}

fn spawn(mut cmd: Command, what: &'static str) -> Result<Child, GitError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| GitError::Spawn { what, source })
}

/// Feeds `lines` to the child's stdin from a thread (so that its output can be read
/// meanwhile without a deadlock), then closes it.
fn feed(child: &mut Child, lines: Vec<String>) -> std::thread::JoinHandle<std::io::Result<()>> {
    let mut stdin = child.stdin.take().expect("stdin is piped");
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(&mut stdin);
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    })
}

/// Waits for the child and the feeding thread; a failure of either is an error.
fn finish(
    mut child: Child,
    feeder: std::thread::JoinHandle<std::io::Result<()>>,
    what: &'static str,
) -> Result<(), GitError> {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(|source| GitError::Io { what, source })?;
    let fed = feeder
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("feeder panicked")));
    if !status.success() {
        return Err(GitError::Failed {
            what,
            status: status.to_string(),
            stderr: stderr.trim().to_owned(),
        });
    }
    fed.map_err(|source| GitError::Io { what, source })
}

/// Every object reachable from `tips` that no ref of the repository reaches (`rev-list
/// --objects --stdin --not --all`), commits in topological order (children first), then
/// trees, blobs and tags as git lists them. Each appears once.
pub fn new_objects(repo: &Path, tips: &[String]) -> Result<Vec<String>, GitError> {
    const WHAT: &str = "rev-list";
    let mut cmd = command(repo);
    cmd.args([
        "rev-list",
        "--objects",
        "--no-object-names",
        "--topo-order",
        "--stdin",
        "--not",
        "--all",
    ]);
    let mut child = spawn(cmd, WHAT)?;
    let feeder = feed(&mut child, tips.to_vec());
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut oids = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|source| GitError::Io { what: WHAT, source })?;
        let oid = line.trim().to_owned();
        if !is_oid(&oid) {
            return Err(GitError::Unexpected { what: WHAT, line });
        }
        oids.push(oid);
    }
    finish(child, feeder, WHAT)?;
    Ok(oids)
}

/// Whether `s` is a full object id (SHA-1 or SHA-256, lower-case hex).
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The type and size of each of `oids`, in one `cat-file --batch-check`.
pub fn kinds_and_sizes(
    repo: &Path,
    oids: &[String],
) -> Result<HashMap<String, (Kind, u64)>, GitError> {
    const WHAT: &str = "cat-file --batch-check";
    let mut cmd = command(repo);
    cmd.args(["cat-file", "--buffer", "--batch-check"]);
    let mut child = spawn(cmd, WHAT)?;
    let feeder = feed(&mut child, oids.to_vec());
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = HashMap::with_capacity(oids.len());
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|source| GitError::Io { what: WHAT, source })?;
        let (oid, kind, size) = parse_header(&line).ok_or(GitError::Unexpected {
            what: WHAT,
            line: line.clone(),
        })?;
        out.insert(oid, (kind, size));
    }
    finish(child, feeder, WHAT)?;
    if out.len() != oids.len() {
        return Err(GitError::Unexpected {
            what: WHAT,
            line: format!("{} answers for {} objects", out.len(), oids.len()),
        });
    }
    Ok(out)
}

fn parse_header(line: &str) -> Option<(String, Kind, u64)> {
    let mut words = line.split(' ');
    let oid = words.next()?;
    let kind = Kind::parse(words.next()?)?;
    let size = words.next()?.parse().ok()?;
    if words.next().is_some() || !is_oid(oid) {
        return None;
    }
    Some((oid.to_owned(), kind, size))
}

/// One `cat-file --batch` stream over a list of objects: yields each one's bytes in turn.
pub struct Batch {
    child: Option<Child>,
    feeder: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    stdout: BufReader<ChildStdout>,
    left: usize,
}

const BATCH: &str = "cat-file --batch";

impl Batch {
    /// Starts reading `oids` from the repository in `repo`.
    pub fn start(repo: &Path, oids: Vec<String>) -> Result<Batch, GitError> {
        let mut cmd = command(repo);
        cmd.args(["cat-file", "--buffer", "--batch"]);
        let mut child = spawn(cmd, BATCH)?;
        let left = oids.len();
        let feeder = feed(&mut child, oids);
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped"));
        Ok(Batch {
            child: Some(child),
            feeder: Some(feeder),
            stdout,
            left,
        })
    }

    /// The next object: its id, kind and bytes; `None` after the last, once git has exited
    /// cleanly.
    pub fn next_object(&mut self) -> Result<Option<(String, Kind, Vec<u8>)>, GitError> {
        let io = |source| GitError::Io {
            what: BATCH,
            source,
        };
        if self.left == 0 {
            if let (Some(child), Some(feeder)) = (self.child.take(), self.feeder.take()) {
                finish(child, feeder, BATCH)?;
            }
            return Ok(None);
        }
        let mut header = String::new();
        self.stdout.read_line(&mut header).map_err(io)?;
        let header = header.trim_end_matches('\n');
        let (oid, kind, size) = parse_header(header).ok_or_else(|| GitError::Unexpected {
            what: BATCH,
            line: header.to_owned(),
        })?;
        let mut bytes = vec![0; size as usize];
        self.stdout.read_exact(&mut bytes).map_err(io)?;
        let mut newline = [0u8; 1];
        self.stdout.read_exact(&mut newline).map_err(io)?;
        self.left -= 1;
        Ok(Some((oid, kind, bytes)))
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One entry of a tree object.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Its mode, as git writes it (`100644`, `40000`, `160000`, ...).
    pub mode: String,
    /// Its name (any bytes but `/` and NUL; shown lossily as UTF-8).
    pub name: String,
    /// The object it names.
    pub oid: String,
}

/// Parses a tree object; `hash_len` is 20 (SHA-1) or 32 (SHA-256).
pub fn parse_tree(bytes: &[u8], hash_len: usize) -> Option<Vec<TreeEntry>> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let nul = rest.iter().position(|&b| b == 0)?;
        if nul < space || rest.len() < nul + 1 + hash_len {
            return None;
        }
        let mode = std::str::from_utf8(&rest[..space]).ok()?.to_owned();
        let name = String::from_utf8_lossy(&rest[space + 1..nul]).into_owned();
        let oid = rest[nul + 1..nul + 1 + hash_len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        entries.push(TreeEntry { mode, name, oid });
        rest = &rest[nul + 1 + hash_len..];
    }
    Some(entries)
}

/// The header fields and message of a commit or tag object.
#[derive(Debug, Default)]
pub struct Headed {
    /// `tree` (commits).
    pub tree: Option<String>,
    /// `parent` lines (commits).
    pub parents: Vec<String>,
    /// `object` (tags).
    pub object: Option<String>,
    /// `tag` (tags): the tag's name.
    pub tag: Option<String>,
    /// The message's first line.
    pub subject: String,
    /// The 1-based line of the object where the message starts.
    pub message_line: usize,
}

/// Parses a commit or tag object's header and finds where its message starts.
pub fn parse_headed(bytes: &[u8]) -> Headed {
    let text = String::from_utf8_lossy(bytes);
    let mut h = Headed::default();
    let mut lines = text.split('\n').enumerate();
    for (i, line) in lines.by_ref() {
        if line.is_empty() {
            h.message_line = i + 2;
            break;
        }
        if let Some((key, value)) = line.split_once(' ') {
            match key {
                "tree" => h.tree = Some(value.to_owned()),
                "parent" => h.parents.push(value.to_owned()),
                "object" => h.object = Some(value.to_owned()),
                "tag" => h.tag = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    h.subject = lines
        .next()
        .map(|(_, l)| l.chars().take(72).collect())
        .unwrap_or_default();
    h
}

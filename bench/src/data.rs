//! The benchmark's data: a generated repository, byte for byte the same on every run.
//!
//! The history is written as a `git fast-import` stream from a seeded generator (splitmix64),
//! with fixed authors and dates, so the commit ids never change. It holds two kinds of
//! files:
//!
//! - text files of pseudo-words (lowercase letters and spaces only, so no gitleaks rule can
//!   match: the rules need digits, `=`, `:`, `-` or `_` next to their keywords), edited a few
//!   lines at a time, as source code is;
//! - binary assets of random bytes, rewritten now and then; they are what makes the pack big
//!   (random bytes neither compress nor delta), and gitleaks skips them as binary.
//!
//! `fast-import` deltas a blob only against the blob written just before it, so every
//! version of one file is written in a row (each file has its own generator, so its versions
//! do not depend on the order of writing), then the commits refer to them by mark.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The shape of the generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Commits on `main`, after the first one (which adds every text file).
    pub commits: usize,
    /// Text files in the tree.
    pub text_files: usize,
    /// Text files edited per commit.
    pub edits_per_commit: usize,
    /// Every how many commits a binary asset is rewritten.
    pub binary_every: usize,
    /// Distinct binary asset paths.
    pub binary_paths: usize,
    /// Size of a binary asset.
    pub binary_bytes: usize,
}

/// The benchmark's repository: about 50 MB packed, 3001 commits.
pub const REPO: Shape = Shape {
    commits: 3000,
    text_files: 240,
    edits_per_commit: 3,
    binary_every: 4,
    binary_paths: 48,
    binary_bytes: 56 * 1024,
};

/// Commits in one push of `push_scan`.
pub const PUSH_COMMITS: usize = 500;

const SEED: u64 = 0x0b07_71e0_be7c_5eed;
const AUTHOR: &str = "bench <bench@bottle.invalid>";
const EPOCH: u64 = 1_600_000_000;

/// splitmix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A vocabulary of pronounceable lowercase pseudo-words.
fn vocabulary() -> Vec<String> {
    const C: &[u8] = b"bcdfghjklmnprstvwz";
    const V: &[u8] = b"aeiou";
    let mut rng = Rng::new(SEED ^ 0x0076_6f63_6162);
    (0..2048)
        .map(|_| {
            let syllables = 1 + rng.below(3);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push(C[rng.below(C.len())] as char);
                w.push(V[rng.below(V.len())] as char);
            }
            if rng.below(3) == 0 {
                w.push(C[rng.below(C.len())] as char);
            }
            w
        })
        .collect()
}

/// One text file and its own generator.
#[derive(Debug, Clone)]
struct TextFile {
    path: String,
    lines: Vec<String>,
    rng: Rng,
}

const MAX_LINES: usize = 300;

impl TextFile {
    fn new(index: usize, words: &[String]) -> TextFile {
        let mut f = TextFile {
            path: format!("src/part{:02}/notes{:03}.txt", index % 12, index),
            lines: Vec::new(),
            rng: Rng::new(SEED ^ (index as u64).wrapping_mul(0x1000_0001)),
        };
        for _ in 0..60 {
            let line = f.line(words);
            f.lines.push(line);
        }
        f
    }

    fn line(&mut self, words: &[String]) -> String {
        let n = 6 + self.rng.below(9);
        let mut line = String::new();
        for i in 0..n {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&words[self.rng.below(words.len())]);
        }
        line
    }

    /// Rewrites a few lines and adds some, as a code change does.
    fn edit(&mut self, words: &[String]) {
        for _ in 0..6 {
            let at = self.rng.below(self.lines.len());
            self.lines[at] = self.line(words);
        }
        for _ in 0..10 {
            let at = self.rng.below(self.lines.len() + 1);
            let line = self.line(words);
            self.lines.insert(at, line);
        }
        if self.lines.len() > MAX_LINES {
            let at = self.rng.below(self.lines.len() - 40);
            self.lines.drain(at..at + 40);
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.lines.join("\n").into_bytes();
        out.push(b'\n');
        out
    }
}

/// The final state of the generated tree: where every push starts from.
#[derive(Debug, Clone)]
pub struct Generated {
    files: Vec<TextFile>,
    words: Vec<String>,
    /// The id of `main`'s tip.
    pub tip: String,
    /// Size of the repository's objects on disk, in bytes.
    pub pack_bytes: u64,
    /// Commits on `main`.
    pub commits: usize,
}

fn data(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    writeln!(w, "data {}", bytes.len())?;
    w.write_all(bytes)?;
    w.write_all(b"\n")
}

fn commit_header(
    w: &mut impl Write,
    reference: &str,
    mark: u64,
    time: u64,
    message: &str,
) -> std::io::Result<()> {
    write!(w, "commit {reference}\nmark :{mark}\n")?;
    write!(
        w,
        "author {AUTHOR} {time} +0000\ncommitter {AUTHOR} {time} +0000\n"
    )?;
    data(w, message.as_bytes())
}

/// Writes the history of `shape` as a fast-import stream; returns the final text files.
fn write_history(
    w: &mut impl Write,
    shape: Shape,
    words: &[String],
) -> anyhow::Result<Vec<TextFile>> {
    let mut files: Vec<TextFile> = (0..shape.text_files)
        .map(|i| TextFile::new(i, words))
        .collect();
    // Which files each commit edits, and which binary asset it rewrites.
    let mut rng = Rng::new(SEED);
    let mut schedule: Vec<(Vec<usize>, Option<usize>)> = Vec::with_capacity(shape.commits);
    let mut edits = vec![0usize; shape.text_files];
    for c in 1..=shape.commits {
        let mut picked = Vec::new();
        while picked.len() < shape.edits_per_commit {
            let f = rng.below(shape.text_files);
            if !picked.contains(&f) {
                picked.push(f);
                edits[f] += 1;
            }
        }
        let binary = (c % shape.binary_every == 0).then(|| rng.below(shape.binary_paths));
        schedule.push((picked, binary));
    }

    // Blobs: every version of each text file in a row, then the binary assets.
    let mut mark = 0u64;
    let mut text_marks: Vec<Vec<u64>> = Vec::with_capacity(files.len());
    for (i, f) in files.iter_mut().enumerate() {
        let mut marks = Vec::with_capacity(edits[i] + 1);
        for version in 0..=edits[i] {
            if version > 0 {
                f.edit(words);
            }
            mark += 1;
            write!(w, "blob\nmark :{mark}\n")?;
            data(w, &f.bytes())?;
            marks.push(mark);
        }
        text_marks.push(marks);
    }
    let mut binary_marks = vec![0u64; schedule.len()];
    let mut buf = vec![0u8; shape.binary_bytes];
    for (c, (_, binary)) in schedule.iter().enumerate() {
        if binary.is_some() {
            Rng::new(SEED ^ 0xb1 ^ ((c as u64) << 20)).fill(&mut buf);
            mark += 1;
            write!(w, "blob\nmark :{mark}\n")?;
            data(w, &buf)?;
            binary_marks[c] = mark;
        }
    }

    // Commits.
    mark += 1;
    commit_header(w, "refs/heads/main", mark, EPOCH, "initial import")?;
    for (i, f) in files.iter().enumerate() {
        writeln!(w, "M 100644 :{} {}", text_marks[i][0], f.path)?;
    }
    let mut version = vec![0usize; files.len()];
    for (c, (picked, binary)) in schedule.iter().enumerate() {
        let parent = mark;
        mark += 1;
        let message = format!("change {} of the generated history", c + 1);
        commit_header(
            w,
            "refs/heads/main",
            mark,
            EPOCH + 600 * (c as u64 + 1),
            &message,
        )?;
        writeln!(w, "from :{parent}")?;
        for &f in picked {
            version[f] += 1;
            writeln!(
                w,
                "M 100644 :{} {}",
                text_marks[f][version[f]], files[f].path
            )?;
        }
        if let Some(b) = binary {
            writeln!(w, "M 100644 :{} assets/asset{b:02}.bin", binary_marks[c])?;
        }
    }
    Ok(files)
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    cmd
}

fn git_ok(cmd: &mut Command) -> anyhow::Result<String> {
    crate::cmd::ok(cmd, std::time::Duration::from_secs(600))
}

/// Generates the benchmark's repository as the bare repository `dir` (which must not exist).
pub fn generate(dir: &Path, shape: Shape) -> anyhow::Result<Generated> {
    let words = vocabulary();
    let status = Command::new("git")
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .context("cannot run git")?;
    if !status.success() {
        bail!("git init {} failed", dir.display());
    }
    let mut child = git(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run git fast-import")?;
    let files = {
        let stdin = child.stdin.take().expect("piped stdin");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
        let files = write_history(&mut w, shape, &words)?;
        w.flush()?;
        files
    };
    if !child.wait()?.success() {
        bail!("git fast-import failed");
    }
    // One pack with a bitmap and a commit-graph, as a forge serves its repositories.
    git_ok(git(dir).args(["repack", "-a", "-d", "-b", "-q"]))?;
    git_ok(git(dir).args(["commit-graph", "write", "--reachable"]))?;
    git_ok(git(dir).args(["pack-refs", "--all"]))?;
    let tip = git_ok(git(dir).args(["rev-parse", "refs/heads/main"]))?;
    let pack_bytes = std::fs::read_dir(dir.join("objects/pack"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Generated {
        files,
        words,
        tip,
        pack_bytes,
        commits: shape.commits + 1,
    })
}

impl Generated {
    /// A fast-import stream of `commits` new commits on top of `main`'s tip, on
    /// `refs/heads/<branch>`: text edits only, different for every `seed`.
    pub fn push_stream(&self, branch: &str, seed: u64, commits: usize) -> Vec<u8> {
        let mut files = self.files.clone();
        for (i, f) in files.iter_mut().enumerate() {
            f.rng = Rng::new(SEED ^ seed.wrapping_mul(0x5851_f42d_4c95_7f2d) ^ ((i as u64) << 32));
        }
        let mut rng = Rng::new(SEED ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut schedule = Vec::with_capacity(commits);
        let mut edits = vec![0usize; files.len()];
        for _ in 0..commits {
            let mut picked = Vec::new();
            while picked.len() < REPO.edits_per_commit {
                let f = rng.below(files.len());
                if !picked.contains(&f) {
                    picked.push(f);
                    edits[f] += 1;
                }
            }
            schedule.push(picked);
        }
        let mut w = Vec::new();
        let mut mark = 0u64;
        let mut marks: Vec<Vec<u64>> = Vec::with_capacity(files.len());
        for (i, f) in files.iter_mut().enumerate() {
            let mut m = Vec::with_capacity(edits[i]);
            for _ in 0..edits[i] {
                f.edit(&self.words);
                mark += 1;
                write!(w, "blob\nmark :{mark}\n").expect("write to memory");
                data(&mut w, &f.bytes()).expect("write to memory");
                m.push(mark);
            }
            marks.push(m);
        }
        let reference = format!("refs/heads/{branch}");
        let mut used = vec![0usize; files.len()];
        let base = EPOCH + 600 * (REPO.commits as u64 + 10) + seed * 86_400;
        for (c, picked) in schedule.iter().enumerate() {
            let parent = mark;
            mark += 1;
            let message = format!("work item {} of push {seed}", c + 1);
            commit_header(&mut w, &reference, mark, base + 60 * c as u64, &message)
                .expect("write to memory");
            if c == 0 {
                writeln!(w, "from {}", self.tip).expect("write to memory");
            } else {
                writeln!(w, "from :{parent}").expect("write to memory");
            }
            for &f in picked {
                writeln!(w, "M 100644 :{} {}", marks[f][used[f]], files[f].path)
                    .expect("write to memory");
                used[f] += 1;
            }
        }
        w
    }
}

impl Generated {
    /// A fast-import stream of one commit on top of `main`'s tip, on `refs/heads/<branch>`,
    /// adding `assets/large-<seed>.bin`: `bytes` random bytes, different for every `seed`
    /// (random bytes neither compress nor delta, so all of them travel and are scanned).
    pub fn large_binary_stream(&self, branch: &str, seed: u64, bytes: usize) -> Vec<u8> {
        let mut blob = vec![0u8; bytes];
        Rng::new(SEED ^ 0x1a46_e000 ^ seed.wrapping_mul(0x9e37_79b9)).fill(&mut blob);
        let mut w = Vec::with_capacity(bytes + 1024);
        write!(w, "blob\nmark :1\n").expect("write to memory");
        data(&mut w, &blob).expect("write to memory");
        let time = EPOCH + 600 * (REPO.commits as u64 + 10) + seed * 86_400;
        let reference = format!("refs/heads/{branch}");
        commit_header(&mut w, &reference, 2, time, &format!("large binary {seed}"))
            .expect("write to memory");
        writeln!(w, "from {}", self.tip).expect("write to memory");
        writeln!(w, "M 100644 :1 assets/large-{seed}.bin").expect("write to memory");
        w
    }

    /// A fast-import stream of a wide merge on top of `main`'s tip, on
    /// `refs/heads/<branch>`: `branches` commits, each from the tip and editing its own
    /// `files_per_branch` text files, then one octopus merge of them all.
    pub fn wide_merge_stream(
        &self,
        branch: &str,
        seed: u64,
        branches: usize,
        files_per_branch: usize,
    ) -> Vec<u8> {
        assert!(
            branches * files_per_branch <= self.files.len(),
            "the wide merge edits distinct files"
        );
        let mut files = self.files.clone();
        for (i, f) in files.iter_mut().enumerate() {
            f.rng = Rng::new(SEED ^ seed.wrapping_mul(0x6a09_e667_f3bc_c909) ^ ((i as u64) << 32));
        }
        let mut w = Vec::new();
        let mut mark = 0u64;
        // One new version of every file a branch edits, in file order.
        let mut blob_marks = vec![0u64; branches * files_per_branch];
        for (i, slot) in blob_marks.iter_mut().enumerate() {
            files[i].edit(&self.words);
            mark += 1;
            write!(w, "blob\nmark :{mark}\n").expect("write to memory");
            data(&mut w, &files[i].bytes()).expect("write to memory");
            *slot = mark;
        }
        let reference = format!("refs/heads/{branch}");
        let time = EPOCH + 600 * (REPO.commits as u64 + 10) + seed * 86_400;
        let edits = |w: &mut Vec<u8>, b: usize| {
            for i in b * files_per_branch..(b + 1) * files_per_branch {
                writeln!(w, "M 100644 :{} {}", blob_marks[i], files[i].path)
                    .expect("write to memory");
            }
        };
        let mut heads = Vec::with_capacity(branches);
        for b in 0..branches {
            mark += 1;
            let message = format!("branch {b} of merge {seed}");
            commit_header(&mut w, &reference, mark, time + 60 * b as u64, &message)
                .expect("write to memory");
            writeln!(w, "from {}", self.tip).expect("write to memory");
            edits(&mut w, b);
            heads.push(mark);
        }
        // The merge starts from the first branch's tree and takes every other's edits.
        mark += 1;
        let message = format!("merge {branches} branches ({seed})");
        commit_header(&mut w, &reference, mark, time + 3600, &message).expect("write to memory");
        writeln!(w, "from :{}", heads[0]).expect("write to memory");
        for h in &heads[1..] {
            writeln!(w, "merge :{h}").expect("write to memory");
        }
        for b in 1..branches {
            edits(&mut w, b);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic() {
        let words = vocabulary();
        let shape = Shape {
            commits: 20,
            text_files: 8,
            edits_per_commit: 3,
            binary_every: 4,
            binary_paths: 2,
            binary_bytes: 64,
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_history(&mut a, shape, &words).unwrap();
        write_history(&mut b, shape, &words).unwrap();
        assert_eq!(a, b);
    }

    /// The push shapes' streams import into a repository generated with a small shape:
    /// the merge has one parent per branch, the large file its size.
    #[test]
    fn push_shape_streams_import() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r.git");
        let shape = Shape {
            commits: 10,
            text_files: 12,
            edits_per_commit: 3,
            binary_every: 4,
            binary_paths: 2,
            binary_bytes: 64,
        };
        let g = generate(&repo, shape).unwrap();
        let import = |stream: Vec<u8>, branch: &str| {
            let mut child = git(&repo)
                .args(["fast-import", "--quiet"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&stream).unwrap();
            assert!(child.wait().unwrap().success());
            git_ok(git(&repo).args(["rev-parse", &format!("refs/heads/{branch}")])).unwrap()
        };
        let merge = import(g.wide_merge_stream("m", 1, 4, 3), "m");
        let parents = git_ok(git(&repo).args(["rev-list", "--parents", "-n1", &merge])).unwrap();
        assert_eq!(parents.split_whitespace().count(), 1 + 4);
        let changed = git_ok(git(&repo).args(["diff", "--name-only", &g.tip, &merge])).unwrap();
        assert_eq!(changed.lines().count(), 12);
        let large = import(g.large_binary_stream("l", 1, 4096), "l");
        let size =
            git_ok(git(&repo).args(["cat-file", "-s", &format!("{large}:assets/large-1.bin")]))
                .unwrap();
        assert_eq!(size, "4096");
    }

    #[test]
    fn text_holds_only_lowercase_words() {
        let words = vocabulary();
        let f = TextFile::new(3, &words);
        assert!(f
            .bytes()
            .iter()
            .all(|b| b.is_ascii_lowercase() || *b == b' ' || *b == b'\n'));
    }
}

//! Turning objects into files for one `gitleaks dir` run: each written once, named by its
//! object id, decoded where gitleaks would not look.
//!
//! What `gitleaks dir` (8.30.1, `sources/file.go`) does with a file, and what this module
//! does about it:
//! - it skips a file whose first bytes `h2non/filetype` calls an "application" type (zip,
//!   gzip, pdf, ELF, `MZ`, `BZh`, ...: any file *starting* like one). Every file written here
//!   starts with [`PREFIX`], a line of its own that filetype reads as a GIF image (its
//!   "application" matchers, wasm and dex, look at byte 0 and are checked first; image
//!   matchers come next), so every byte is scanned; findings' lines are shifted back by one.
//! - it opens archives by *file name* only (`archives.Identify` with no stream), and only
//!   with `--max-archive-depth` above 0, and then scans their members without the prefix.
//!   So names here never carry an archive extension, gitleaks opens nothing, and this module
//!   opens gzip, zip and tar itself, by content, to a bounded depth.
//! - it skips empty files: an empty object holds nothing, so none is written.
//! - UTF-16 text is bytes to gitleaks' regexes: it is transcoded here (with a BOM), or its
//!   runs of ASCII-in-UTF-16 are extracted (without one, e.g. strings inside a binary).
//!
//! A file's name is `<object id>` plus the object's base name (sanitised), because a few of
//! gitleaks' rules key on a path (`.p12` files, `.tf`, `.yaml`, `nuget.config`, ...); the
//! global path allowlist is gone from the gate's config, so a name never exempts content.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// The line every scanned file starts with (see the module docs).
pub const PREFIX: &[u8] = b"GIF89a bottle-gate-scan\n";

/// Extensions `mholt/archives` (as gitleaks 8.30.1 uses it) recognises anywhere in a name.
const ARCHIVE_MARKERS: &[&str] = &[
    ".7z", ".br", ".bz2", ".gz", ".lz4", ".lz", ".mz", ".rar", ".sz", ".s2", ".tar", ".xz", ".zip",
    ".zz", ".zst",
];

/// The largest file written: below gitleaks' 100 kB read, so that it reads each whole.
const PIECE: usize = 90_000;

/// How much consecutive pieces of a large object overlap.
const OVERLAP: usize = 16_000;

/// A stretch of a scanned file that is one object's view, from a line of it on.
#[derive(Debug, Clone)]
struct Segment {
    /// The file's line where it starts (line 1 is the prefix).
    file_line: usize,
    origin: Origin,
    /// The object's line there.
    object_line: usize,
}

/// The shortest run of ASCII-in-UTF-16 extracted from a file without a BOM.
const MIN_UTF16_RUN: usize = 8;

/// How a scanned file was made from its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// The object's bytes as they are.
    Raw,
    /// UTF-16 text (with a byte-order mark) transcoded to UTF-8.
    Utf16,
    /// Runs of ASCII characters encoded as UTF-16 found in the bytes, one per line.
    Utf16Runs,
}

/// Where a scanned file's content came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The object.
    pub oid: String,
    /// The path inside archives, `!`-separated, when the content is an archive's member
    /// (or a decompressed stream's content, named `(gunzipped)`).
    pub inner: Vec<String>,
    /// How it was decoded.
    pub view: View,
}

impl Origin {
    /// The object id, with the path inside archives and the decoding appended.
    pub fn label(&self) -> String {
        let mut s = self.oid.clone();
        for part in &self.inner {
            s.push('!');
            s.push_str(part);
        }
        match self.view {
            View::Raw => {}
            View::Utf16 => s.push_str("!(utf-16)"),
            View::Utf16Runs => s.push_str("!(utf-16 strings)"),
        }
        s
    }
}

/// A limit the extraction ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overrun {
    /// More bytes to scan than allowed.
    ScanBytes,
    /// Archives nested deeper than allowed.
    ArchiveDepth(String),
}

/// What can go wrong while writing the scan directory.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A limit was reached.
    #[error("limit reached: {0:?}")]
    Limit(Overrun),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The directory gitleaks scans, and what each file in it came from.
pub struct ScanDir {
    dir: PathBuf,
    /// Bytes written so far (prefixes included): what gitleaks must report it scanned.
    pub written: u64,
    limit: u64,
    max_depth: usize,
    /// Each file's name, and what its lines are.
    files: HashMap<String, Vec<Segment>>,
    /// Small text objects waiting to be written together.
    bundle: Vec<u8>,
    /// Newlines in `bundle` (counted as it grows, not recounted for every text).
    bundle_lines: usize,
    bundle_segments: Vec<Segment>,
    /// Things that could not be opened (encrypted or corrupt archive members): their raw
    /// bytes were scanned, their content could not be.
    pub notes: Vec<String>,
    serial: usize,
}

/// A name safe for gitleaks: `[A-Za-z0-9_-]`, at most one dot, no archive extension.
pub fn safe_name(base: &str) -> String {
    let mut s: String = base
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Only the last dot stays: rules key on the extension.
    if let Some(last) = s.rfind('.') {
        let (stem, ext) = s.split_at(last);
        s = format!("{}{ext}", stem.replace('.', "_"));
    }
    let lower = s.to_ascii_lowercase();
    if ARCHIVE_MARKERS.iter().any(|m| lower.contains(m)) {
        s = s.replace('.', "_");
    }
    s
}

impl ScanDir {
    /// A scan directory at `dir` (which must exist and be empty), holding at most `limit`
    /// bytes and opening archives at most `max_depth` deep.
    pub fn new(dir: &Path, limit: u64, max_depth: usize) -> ScanDir {
        ScanDir {
            dir: dir.to_owned(),
            written: 0,
            limit,
            max_depth,
            files: HashMap::new(),
            bundle: Vec::new(),
            bundle_lines: 0,
            bundle_segments: Vec::new(),
            notes: Vec::new(),
            serial: 0,
        }
    }

    /// Writes `bytes` (one object's view) as one file, or as overlapping pieces when it is
    /// large: `gitleaks dir` reads a file in chunks of about 100 kB, cut at a blank line
    /// when it finds one within 25 kB, else anywhere, and a secret across a cut would be
    /// missed. Each piece here is read whole, and consecutive pieces overlap by
    /// [`OVERLAP`] bytes, more than any secret gitleaks' rules match.
    fn write(&mut self, name: String, bytes: &[u8], origin: Origin) -> Result<(), ExtractError> {
        if bytes.is_empty() || self.files.contains_key(&name) {
            return Ok(());
        }
        if bytes.len() <= PIECE {
            let segment = Segment {
                file_line: 2,
                origin,
                object_line: 1,
            };
            return self.put(name, bytes, vec![segment]);
        }
        let mut start = 0;
        let mut line = 1;
        let mut n = 0;
        while start < bytes.len() {
            let end = (start + PIECE).min(bytes.len());
            let segment = Segment {
                file_line: 2,
                origin: origin.clone(),
                object_line: line,
            };
            // The piece's name keeps the object's name last (rules key on its extension).
            let piece = match name.split_once('_') {
                Some((oid, rest)) => format!("{oid}_p{n}_{rest}"),
                None => format!("{name}_p{n}"),
            };
            self.put(piece, &bytes[start..end], vec![segment])?;
            if end == bytes.len() {
                break;
            }
            let next = end - OVERLAP;
            line += bytes[start..next].iter().filter(|&&b| b == b'\n').count();
            start = next;
            n += 1;
        }
        // The whole name is taken, so that the same view is not written twice.
        self.files.insert(name, Vec::new());
        Ok(())
    }

    /// Writes one file: the prefix, then `bytes`.
    fn put(
        &mut self,
        name: String,
        bytes: &[u8],
        segments: Vec<Segment>,
    ) -> Result<(), ExtractError> {
        let size = (PREFIX.len() + bytes.len()) as u64;
        if self.written + size > self.limit {
            return Err(ExtractError::Limit(Overrun::ScanBytes));
        }
        let path = self.dir.join(&name);
        let mut content = Vec::with_capacity(size as usize);
        content.extend_from_slice(PREFIX);
        content.extend_from_slice(bytes);
        std::fs::write(&path, content).map_err(|source| ExtractError::Write { path, source })?;
        self.written += size;
        self.files.insert(name, segments);
        Ok(())
    }

    /// Which object, and which line of it, line `line` of file `name` is.
    pub fn locate(&self, name: &str, line: usize) -> Option<(Origin, usize)> {
        let segments = self.files.get(name)?;
        let s = segments.iter().rev().find(|s| s.file_line <= line)?;
        Some((s.origin.clone(), s.object_line + (line - s.file_line)))
    }

    /// Writes the small text objects still waiting: call once everything is added.
    pub fn finish(&mut self) -> Result<(), ExtractError> {
        if self.bundle.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.bundle);
        self.bundle_lines = 0;
        let segments = std::mem::take(&mut self.bundle_segments);
        let name = format!("texts_{}", self.next_serial());
        self.put(name, &bytes, segments)
    }

    /// Bytes still allowed.
    fn budget(&self) -> u64 {
        self.limit.saturating_sub(self.written)
    }

    /// Adds a commit's or tag's whole object (its header and message), or any other text
    /// this program makes (tree entry names, ref names). Small ones are written together,
    /// a blank line apart, in files of about [`PIECE`] bytes: thousands of tiny files would
    /// cost more to create than to scan. (A multi-line rule could then match across two
    /// objects: a finding too many, never one too few.)
    pub fn add_text(&mut self, oid: &str, what: &str, bytes: &[u8]) -> Result<(), ExtractError> {
        let origin = Origin {
            oid: oid.to_owned(),
            inner: Vec::new(),
            view: View::Raw,
        };
        if bytes.is_empty() {
            return Ok(());
        }
        if bytes.len() > PIECE / 4 {
            return self.write(file_name(oid, 0, what), bytes, origin);
        }
        if self.bundle.len() + bytes.len() > PIECE {
            self.finish()?;
        }
        let file_line = 2 + self.bundle_lines;
        self.bundle_segments.push(Segment {
            file_line,
            origin,
            object_line: 1,
        });
        self.bundle.extend_from_slice(bytes);
        self.bundle_lines += memchr::memchr_iter(b'\n', bytes).count();
        if !bytes.ends_with(b"\n") {
            self.bundle.push(b'\n');
            self.bundle_lines += 1;
        }
        self.bundle.push(b'\n');
        self.bundle_lines += 1;
        Ok(())
    }

    /// Writes a blob's content, named after `base` (the base name of a path it has), with
    /// every decoded view of it: UTF-16 text, and the members of the archives it is
    /// (recursively).
    pub fn add_blob(&mut self, oid: &str, base: &str, bytes: &[u8]) -> Result<(), ExtractError> {
        self.add_content(oid, &[], base, bytes, 0)
    }

    /// Writes a blob's bytes once more under another base name, when that name is not the
    /// same once made safe: only the rules keyed on a path see a difference, and they look
    /// at the bytes as they are.
    pub fn add_alias(&mut self, oid: &str, base: &str, bytes: &[u8]) -> Result<(), ExtractError> {
        let origin = Origin {
            oid: oid.to_owned(),
            inner: Vec::new(),
            view: View::Raw,
        };
        self.write(file_name(oid, 0, &safe_name(base)), bytes, origin)
    }

    fn next_serial(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    fn add_content(
        &mut self,
        oid: &str,
        inner: &[String],
        base: &str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), ExtractError> {
        let name = safe_name(base);
        let serial = if inner.is_empty() {
            0
        } else {
            self.next_serial()
        };
        let origin = |view| Origin {
            oid: oid.to_owned(),
            inner: inner.to_vec(),
            view,
        };
        // The bytes as they are, always: a gzip header's name or comment, a zip's file names
        // and stored members, and strings inside any binary are all there.
        self.write(file_name(oid, serial, &name), bytes, origin(View::Raw))?;

        if let Some(text) = utf16_with_bom(bytes) {
            let n = self.next_serial();
            self.write(
                file_name(oid, n, "utf16"),
                text.as_bytes(),
                origin(View::Utf16),
            )?;
        } else if bytes.contains(&0) {
            let runs = utf16_runs(bytes);
            let n = self.next_serial();
            self.write(file_name(oid, n, "utf16"), &runs, origin(View::Utf16Runs))?;
        }

        let archive = archive_kind(bytes);
        if archive.is_none() {
            return Ok(());
        }
        let here = || {
            let mut v = vec![oid.to_owned()];
            v.extend(inner.iter().cloned());
            v.join("!")
        };
        if depth >= self.max_depth {
            return Err(ExtractError::Limit(Overrun::ArchiveDepth(here())));
        }
        match archive {
            Some(Archive::Gzip) => self.gunzip(oid, inner, base, bytes, depth),
            Some(Archive::Zip) => self.unzip(oid, inner, bytes, depth),
            Some(Archive::Tar) => self.untar(oid, inner, bytes, depth),
            None => Ok(()),
        }
    }

    /// Reads at most the remaining budget from `reader`; more is [`Overrun::ScanBytes`].
    /// This is the decompression-bomb guard: nothing decompressed is ever larger than what
    /// is still allowed to be scanned.
    fn read_bounded(&self, reader: impl Read) -> Result<std::io::Result<Vec<u8>>, ExtractError> {
        let budget = self.budget();
        let mut out = Vec::new();
        match reader.take(budget + 1).read_to_end(&mut out) {
            Ok(_) if out.len() as u64 > budget => Err(ExtractError::Limit(Overrun::ScanBytes)),
            Ok(_) => Ok(Ok(out)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn gunzip(
        &mut self,
        oid: &str,
        inner: &[String],
        base: &str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), ExtractError> {
        // Concatenated gzip members are one stream, as gunzip reads them.
        match self.read_bounded(flate2::read::MultiGzDecoder::new(bytes))? {
            Ok(content) => {
                let mut inner = inner.to_vec();
                inner.push("(gunzipped)".to_owned());
                // What gunzip would name the result: "x.tgz" -> "x.tar", "x.gz" -> "x".
                let lower = base.to_ascii_lowercase();
                let stem = if lower.ends_with(".tgz") {
                    format!("{}.tar", &base[..base.len() - 4])
                } else if lower.ends_with(".gz") {
                    base[..base.len() - 3].to_owned()
                } else {
                    base.to_owned()
                };
                self.add_content(oid, &inner, &stem, &content, depth + 1)
            }
            Err(e) => {
                self.notes.push(format!(
                    "{}: not a readable gzip stream ({e})",
                    here(oid, inner)
                ));
                Ok(())
            }
        }
    }

    fn unzip(
        &mut self,
        oid: &str,
        inner: &[String],
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), ExtractError> {
        let mut zip = match zip::ZipArchive::new(Cursor::new(bytes)) {
            Ok(z) => z,
            Err(e) => {
                self.notes.push(format!(
                    "{}: not a readable zip archive ({e})",
                    here(oid, inner)
                ));
                return Ok(());
            }
        };
        for i in 0..zip.len() {
            let member = match zip.by_index(i) {
                Ok(m) => m,
                Err(e) => {
                    self.notes.push(format!(
                        "{}: zip member {i} cannot be read ({e})",
                        here(oid, inner)
                    ));
                    continue;
                }
            };
            if member.is_dir() {
                continue;
            }
            let member_name = member.name().to_owned();
            let content = match self.read_bounded(member)? {
                Ok(c) => c,
                Err(e) => {
                    self.notes.push(format!(
                        "{}!{member_name}: cannot be decompressed ({e}); its stored bytes were scanned",
                        here(oid, inner)
                    ));
                    continue;
                }
            };
            let mut path = inner.to_vec();
            path.push(member_name.clone());
            let base = member_name.rsplit('/').next().unwrap_or(&member_name);
            self.add_content(oid, &path, base, &content, depth + 1)?;
        }
        Ok(())
    }

    fn untar(
        &mut self,
        oid: &str,
        inner: &[String],
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), ExtractError> {
        let mut archive = tar::Archive::new(bytes);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.notes.push(format!(
                    "{}: not a readable tar archive ({e})",
                    here(oid, inner)
                ));
                return Ok(());
            }
        };
        let mut members = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.notes
                        .push(format!("{}: tar archive cut short ({e})", here(oid, inner)));
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let member_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            match self.read_bounded(entry)? {
                Ok(content) => members.push((member_name, content)),
                Err(e) => {
                    self.notes.push(format!(
                        "{}!{member_name}: cannot be read ({e})",
                        here(oid, inner)
                    ));
                    break;
                }
            }
        }
        for (member_name, content) in members {
            let mut path = inner.to_vec();
            path.push(member_name.clone());
            let base = member_name.rsplit('/').next().unwrap_or(&member_name);
            self.add_content(oid, &path, base, &content, depth + 1)?;
        }
        Ok(())
    }
}

fn here(oid: &str, inner: &[String]) -> String {
    let mut v = vec![oid.to_owned()];
    v.extend(inner.iter().cloned());
    v.join("!")
}

/// The file name for a view `serial` (0: the object itself) of `oid`.
fn file_name(oid: &str, serial: usize, name: &str) -> String {
    match (serial, name.is_empty()) {
        (0, true) => oid.to_owned(),
        (0, false) => format!("{oid}_{name}"),
        (n, true) => format!("{oid}_{n}"),
        (n, false) => format!("{oid}_{n}_{name}"),
    }
}

/// The archive formats opened here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Gzip,
    Zip,
    Tar,
}

/// Which archive `bytes` is, by content: gzip's magic, a zip's end-of-central-directory
/// record in its last 64 KiB (so self-extracting and prefixed zips count), or a POSIX tar
/// header's `ustar` magic.
fn archive_kind(bytes: &[u8]) -> Option<Archive> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Some(Archive::Gzip);
    }
    let tail = &bytes[bytes.len().saturating_sub(65_557)..];
    if memchr::memmem::find(tail, b"PK\x05\x06").is_some() {
        return Some(Archive::Zip);
    }
    if bytes.len() >= 512 && &bytes[257..262] == b"ustar" {
        return Some(Archive::Tar);
    }
    None
}

/// UTF-16 text with a byte-order mark, as UTF-8.
fn utf16_with_bom(bytes: &[u8]) -> Option<String> {
    let (le, body) = match bytes {
        [0xff, 0xfe, rest @ ..] => (true, rest),
        [0xfe, 0xff, rest @ ..] => (false, rest),
        _ => return None,
    };
    let units = body.chunks_exact(2).map(|p| {
        if le {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    )
}

/// Runs of at least [`MIN_UTF16_RUN`] ASCII characters encoded as UTF-16 (either byte
/// order, at either alignment), one run per line: `strings -el` and `-eb` in one. A
/// run of one order overlapping a run of the other is the same text read one byte apart
/// (ASCII in UTF-16LE also reads as UTF-16BE one byte on, less a character).
fn utf16_runs(bytes: &[u8]) -> Vec<u8> {
    let text = |b: u8| b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7f).contains(&b);
    // (start, end, characters) of every run of one byte order.
    let runs = |little: bool| {
        let mut found: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        for align in 0..2 {
            let mut run = Vec::new();
            let mut from = align;
            let mut i = align;
            loop {
                let pair = bytes.get(i..i + 2);
                let c = pair.and_then(|p| {
                    let (c, zero) = if little { (p[0], p[1]) } else { (p[1], p[0]) };
                    (zero == 0 && text(c)).then_some(c)
                });
                match c {
                    Some(c) => run.push(c),
                    None => {
                        if run.len() >= MIN_UTF16_RUN {
                            found.push((from, i, std::mem::take(&mut run)));
                        }
                        run.clear();
                        from = i + 2;
                    }
                }
                if pair.is_none() {
                    break;
                }
                i += 2;
            }
        }
        found.sort_by_key(|r| r.0);
        found
    };
    // Where runs of the two orders overlap they are the same text read one byte apart:
    // the longer reading is kept.
    let mut all = runs(true);
    all.extend(runs(false));
    all.sort_by_key(|r| r.0);
    let mut kept: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for run in all {
        match kept.last_mut() {
            Some(last) if run.0 < last.1 => {
                if run.2.len() > last.2.len() {
                    *last = run;
                }
            }
            _ => kept.push(run),
        }
    }
    let mut out = Vec::new();
    for (_, _, run) in kept {
        out.extend_from_slice(&run);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_no_archive_extension() {
        assert_eq!(safe_name("config.yaml"), "config.yaml");
        assert_eq!(safe_name("nuget.config"), "nuget.config");
        assert_eq!(safe_name("a.b.c"), "a_b.c");
        assert_eq!(safe_name("x.tar.gz"), "x_tar_gz");
        assert_eq!(safe_name("data.zip"), "data_zip");
        assert_eq!(safe_name("weird name/é"), "weird_name__");
    }

    #[test]
    fn utf16_runs_find_both_byte_orders() {
        let le: Vec<u8> = "key=ABCDEFGHIJ".bytes().flat_map(|b| [b, 0]).collect();
        let be: Vec<u8> = "other=KLMNOPQRST".bytes().flat_map(|b| [0, b]).collect();
        let mut bytes = vec![0xde, 0xad, 0xbe];
        bytes.extend(&le);
        bytes.extend([0xff, 0xff, 0xff]);
        bytes.extend(&be);
        let runs = String::from_utf8(utf16_runs(&bytes)).unwrap();
        assert!(runs.contains("key=ABCDEFGHIJ"), "{runs:?}");
        assert!(runs.contains("other=KLMNOPQRST"), "{runs:?}");
    }

    #[test]
    fn bundled_texts_map_back_to_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = ScanDir::new(dir.path(), 1 << 20, 4);
        // Without a final newline, with one, with two lines, and one line.
        out.add_text("a", "commit", b"a1\na2").unwrap();
        out.add_text("b", "commit", b"b1\n").unwrap();
        out.add_text("c", "tree", b"c1\nc2\nc3\n").unwrap();
        out.add_text("d", "commit", b"d1").unwrap();
        out.finish().unwrap();
        let text = std::fs::read_to_string(dir.path().join("texts_1")).unwrap();
        // Every line of the file that holds an object's line says which, and which line.
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.is_empty() {
                continue;
            }
            let (origin, at) = out.locate("texts_1", i + 1).unwrap();
            assert_eq!(format!("{}{at}", origin.oid), line, "file line {}", i + 1);
        }
        assert_eq!(out.written, text.len() as u64);
    }

    #[test]
    fn utf16_with_bom_is_transcoded() {
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend("a\nb".encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(utf16_with_bom(&bytes).unwrap(), "a\nb");
    }
}

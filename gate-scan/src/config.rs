//! The gate's own gitleaks config, made from the pinned gitleaks binary.
//!
//! gitleaks' default config cannot serve as a base through `[extend] useDefault = true`:
//! gitleaks 8.30.1 (`config.extend`) *appends* the default's allowlists to the extending
//! config's, so its global path allowlist (`node_modules/`, lock files, images, any path
//! matching `gitleaks\.toml`, ...) and its broken `(?i)^true|false|null$` regex would come
//! along whatever the gate's file said. So the gate's config is a transformed copy of the
//! default, made at image build time from the very binary the image ships (`go:embed` keeps
//! `config/gitleaks.toml` verbatim in it), rather than a copy committed here that could drift
//! from the binary's rules:
//!
//! 1. [`extract_default_config`] finds the embedded text by its opening comment, then finds
//!    the Go string header (address, length) that points at it in the ELF image, so the text
//!    is cut out at exactly its length;
//! 2. its sha256 must be [`DEFAULT_CONFIG_SHA256`] (gitleaks 8.30.1's `config/gitleaks.toml`):
//!    a different gitleaks fails the build until the transform is reviewed for it;
//! 3. [`transform`] removes the global allowlist's `paths` and anchors the stopword regex as
//!    intended (`(?i)^(?:true|false|null)$`), as two textual edits, then checks by parsing
//!    both files that nothing else changed.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// sha256 of gitleaks 8.30.1's default config (`config/gitleaks.toml` at tag v8.30.1), the
/// only input [`transform`] has been reviewed for.
pub const DEFAULT_CONFIG_SHA256: &str =
    "e163e53b9e7e8a8511e77271e2b323ed057759542a6d988258afe3a1fa329caf";

/// sha256 of what [`transform`] makes of that input: the image recipe can pin it.
pub const GATE_CONFIG_SHA256: &str =
    "7bf47babc9505700d53a85eceac7ba6e8f0f73134e2a9c069c40eaaf68ffebb1";

/// The default config's first line, which is how its text is found in the binary.
const MARKER: &[u8] = b"# This file has been auto-generated. Do not edit manually.\n";

/// The broken regex, and what it was meant to be.
const BROKEN_REGEX: &str = "'''(?i)^true|false|null$''',";
const FIXED_REGEX: &str = "'''(?i)^(?:true|false|null)$''',";

/// What can go wrong while making the gate's config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The gitleaks binary could not be read.
    #[error("cannot read the gitleaks binary {path}: {source}")]
    ReadBinary {
        /// The binary's path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The binary is not what the extraction understands.
    #[error("cannot find gitleaks' default config in {path}: {why}")]
    NotFound {
        /// The binary's path.
        path: PathBuf,
        /// What was missing.
        why: String,
    },
    /// The embedded config is not the one the transform was reviewed for.
    #[error(
        "gitleaks' default config in {path} has sha256 {got}, not {want} (gitleaks 8.30.1's): \
         review the transform in gate-scan/src/config.rs for this gitleaks, then update the pin"
    )]
    UnexpectedDefault {
        /// The binary's path.
        path: PathBuf,
        /// The sha256 found.
        got: String,
        /// The sha256 expected.
        want: String,
    },
    /// The default config does not have the shape the transform expects.
    #[error("cannot transform gitleaks' default config: {0}")]
    Transform(String),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One loadable segment of an ELF image: where its bytes are in the file and in memory.
struct Segment {
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The PT_LOAD segments of a little-endian ELF64 file.
fn load_segments(elf: &[u8]) -> Result<Vec<Segment>, String> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let short = || "truncated ELF header".to_owned();
    let phoff = u64_at(elf, 0x20).ok_or_else(short)? as usize;
    let phentsize = u16_at(elf, 0x36).ok_or_else(short)? as usize;
    let phnum = u16_at(elf, 0x38).ok_or_else(short)? as usize;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if u32_at(elf, at).ok_or_else(short)? != 1 {
            continue; // not PT_LOAD
        }
        segments.push(Segment {
            offset: u64_at(elf, at + 8).ok_or_else(short)?,
            vaddr: u64_at(elf, at + 16).ok_or_else(short)?,
            filesz: u64_at(elf, at + 32).ok_or_else(short)?,
        });
    }
    Ok(segments)
}

/// Cuts gitleaks' default config out of the gitleaks binary at `path`.
///
/// A Go string is a (pointer, length) pair; for a package-level `string` variable set by
/// `go:embed` the linker writes that pair into the data segment. So: find the text's first
/// line, turn its file offset into its address, and look for that address followed by a
/// plausible length. Exactly one such text must come out.
pub fn extract_default_config(path: &Path) -> Result<String, ConfigError> {
    let elf = std::fs::read(path).map_err(|source| ConfigError::ReadBinary {
        path: path.to_owned(),
        source,
    })?;
    let not_found = |why: String| ConfigError::NotFound {
        path: path.to_owned(),
        why,
    };
    let segments = load_segments(&elf).map_err(not_found)?;
    let mut found: Vec<(usize, usize)> = Vec::new();
    for start in memchr::memmem::find_iter(&elf, MARKER) {
        let Some(seg) = segments
            .iter()
            .find(|s| (s.offset..s.offset + s.filesz).contains(&(start as u64)))
        else {
            continue;
        };
        let addr = seg.vaddr + (start as u64 - seg.offset);
        let seg_end = (seg.offset + seg.filesz) as usize;
        for hit in memchr::memmem::find_iter(&elf, &addr.to_le_bytes()) {
            let Some(len) = u64_at(&elf, hit + 8) else {
                continue;
            };
            let len = len as usize;
            if len < MARKER.len() || len > 16 << 20 || start + len > seg_end {
                continue;
            }
            if !found.contains(&(start, len)) {
                found.push((start, len));
            }
        }
    }
    let (start, len) = match found.as_slice() {
        [one] => *one,
        [] => return Err(not_found("no string header points at its text".into())),
        _ => return Err(not_found(format!("{} candidate texts", found.len()))),
    };
    String::from_utf8(elf[start..start + len].to_vec())
        .map_err(|_| not_found("its text is not UTF-8".into()))
}

/// Makes the gate's config from gitleaks' default config `default` (the text of
/// `config/gitleaks.toml`): without the global allowlist's `paths`, with the stopword regex
/// anchored as intended, and with a header saying so. Checks by parsing that nothing else
/// changed.
pub fn transform(default: &str) -> Result<String, ConfigError> {
    let fail = |why: &str| ConfigError::Transform(why.to_owned());
    let lines: Vec<&str> = default.split_inclusive('\n').collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_end() == "[allowlist]")
        .collect();
    let [table] = headers[..] else {
        return Err(fail("expected exactly one [allowlist] table"));
    };
    // The table runs to the next table header.
    let end = (table + 1..lines.len())
        .find(|&i| lines[i].starts_with('['))
        .unwrap_or(lines.len());
    let paths_start = (table + 1..end)
        .find(|&i| lines[i].starts_with("paths = ["))
        .ok_or_else(|| fail("no `paths = [` in [allowlist]"))?;
    let paths_end = (paths_start..end)
        .find(|&i| lines[i].trim_end() == "]")
        .ok_or_else(|| fail("no closing `]` for [allowlist] paths"))?;
    let fixed: Vec<usize> = (table + 1..end)
        .filter(|&i| lines[i].trim() == BROKEN_REGEX)
        .collect();
    if fixed.len() != 1 {
        return Err(fail(
            "expected the regex (?i)^true|false|null$ once in [allowlist]",
        ));
    }

    let mut out = format!(
        "# The bottle git-gate's gitleaks config. Made by `bottle-gate-scan make-config` from\n\
         # the default config embedded in the gate's gitleaks binary (sha256 {DEFAULT_CONFIG_SHA256}),\n\
         # with two changes:\n\
         # - the global allowlist's `paths` are removed: a secret is refused at any path;\n\
         # - its regex '(?i)^true|false|null$', an unparenthesised alternation that dropped every\n\
         #   finding containing \"false\" or ending in \"null\", is anchored as intended.\n\
         # Do not edit: rebuild the gate image instead.\n\n"
    );
    for (i, line) in lines.iter().enumerate() {
        if (paths_start..=paths_end).contains(&i) {
            continue;
        }
        if i == fixed[0] {
            out.push_str(&line.replace(BROKEN_REGEX, FIXED_REGEX));
        } else {
            out.push_str(line);
        }
    }
    verify(default, &out)?;
    Ok(out)
}

/// Checks that `made` is `default` with exactly the two intended changes.
fn verify(default: &str, made: &str) -> Result<(), ConfigError> {
    let fail = |why: String| ConfigError::Transform(why);
    let parse = |text: &str, what: &str| {
        text.parse::<toml::Table>()
            .map_err(|e| fail(format!("the {what} config is not TOML: {e}")))
    };
    let mut before = parse(default, "default")?;
    let mut after = parse(made, "gate's")?;
    let allowlist = |t: &mut toml::Table| -> Result<toml::Table, ConfigError> {
        match t.remove("allowlist") {
            Some(toml::Value::Table(a)) => Ok(a),
            _ => Err(fail("no [allowlist] table".into())),
        }
    };
    let mut a_before = allowlist(&mut before)?;
    let mut a_after = allowlist(&mut after)?;
    if before != after {
        return Err(fail("something besides [allowlist] changed".into()));
    }
    if a_after.contains_key("paths") {
        return Err(fail("[allowlist] still has paths".into()));
    }
    if a_before.remove("paths").is_none() {
        return Err(fail("the default [allowlist] had no paths".into()));
    }
    let regexes = |a: &mut toml::Table| -> Vec<String> {
        match a.remove("regexes") {
            Some(toml::Value::Array(v)) => v
                .into_iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let want: Vec<String> = regexes(&mut a_before)
        .into_iter()
        .map(|r| {
            if r == "(?i)^true|false|null$" {
                "(?i)^(?:true|false|null)$".to_owned()
            } else {
                r
            }
        })
        .collect();
    if regexes(&mut a_after) != want {
        return Err(fail(
            "[allowlist] regexes changed beyond the one fix".into(),
        ));
    }
    if a_before != a_after {
        return Err(fail(
            "[allowlist] changed beyond paths and the regex".into(),
        ));
    }
    Ok(())
}

/// Makes the gate's config from the gitleaks binary at `gitleaks` and writes it to `out`;
/// returns its sha256.
pub fn make_config(gitleaks: &Path, out: &Path) -> Result<String, ConfigError> {
    let default = extract_default_config(gitleaks)?;
    let got = sha256_hex(default.as_bytes());
    if got != DEFAULT_CONFIG_SHA256 {
        return Err(ConfigError::UnexpectedDefault {
            path: gitleaks.to_owned(),
            got,
            want: DEFAULT_CONFIG_SHA256.to_owned(),
        });
    }
    let made = transform(&default)?;
    std::fs::write(out, &made).map_err(|source| ConfigError::Write {
        path: out.to_owned(),
        source,
    })?;
    Ok(sha256_hex(made.as_bytes()))
}

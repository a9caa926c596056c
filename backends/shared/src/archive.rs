//! Tar archives handed to an engine: a container's files, an image's build context.
//!
//! Both engines take the same archive: only regular-file entries, each with its exact mode
//! and numeric uid/gid (no user or group names, so nothing is looked up by name on
//! extraction), GNU long names where a path needs one. Missing parent directories are left
//! to the engine, which creates them root-owned, 0755.

use std::time::{SystemTime, UNIX_EPOCH};

use bottle_core::plan::{relative_file_path, FileSpec};

/// One regular file of an archive.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Path inside the archive, relative (no leading `/`).
    pub path: &'a str,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// The content.
    pub bytes: &'a [u8],
}

/// Builds an uncompressed tar of regular files only, each with its exact mode and numeric
/// owner (no user or group names, so nothing is looked up by name on extraction).
pub fn tar<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(e.mode);
        header.set_uid(u64::from(e.uid));
        header.set_gid(u64::from(e.gid));
        header.set_mtime(e.mtime);
        header.set_size(e.bytes.len() as u64);
        // `append_data` writes a GNU long-name entry when the path needs one, and sets the
        // checksum.
        builder.append_data(&mut header, e.path, e.bytes)?;
    }
    builder.into_inner()
}

/// The archive of container files, to upload into directory `dir` (`/`, or a volume's
/// path) before the container starts: each file's path relative to `dir`, which must hold
/// them all.
pub fn container_files(dir: &str, files: &[&FileSpec]) -> std::io::Result<Vec<u8>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = match dir.trim_end_matches('/') {
        "" => String::new(),
        d => relative_file_path(d).map_err(std::io::Error::other)?,
    };
    let rels = files
        .iter()
        .map(|f| {
            let rel = relative_file_path(&f.path).map_err(std::io::Error::other)?;
            let inside = if dir.is_empty() {
                Some(rel.as_str())
            } else {
                rel.strip_prefix(&dir).and_then(|r| r.strip_prefix('/'))
            };
            inside
                .map(str::to_owned)
                .ok_or_else(|| std::io::Error::other(format!("{} is not under {dir}", f.path)))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    tar(files.iter().zip(&rels).map(|(f, rel)| Entry {
        path: rel,
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
        mtime: now,
        bytes: f.bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_core::plan::FileSource;

    #[test]
    fn files_keep_mode_owner_and_bytes() {
        let files = [
            FileSpec {
                relocate_env: None,
                path: "/etc/x/a".into(),
                mode: 0o755,
                uid: 10001,
                gid: 10002,
                source: FileSource::Text { text: "hi".into() },
            },
            FileSpec {
                relocate_env: None,
                path: format!("/{}", "d/".repeat(80) + "long"),
                mode: 0o400,
                uid: 0,
                gid: 0,
                source: FileSource::Text { text: "x".into() },
            },
        ];
        let bytes = container_files("/", &files.iter().collect::<Vec<_>>()).unwrap();
        let mut ar = tar::Archive::new(bytes.as_slice());
        let got: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
                (
                    path,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    body,
                )
            })
            .collect();
        assert_eq!(got[0], ("etc/x/a".into(), 0o755, 10001, 10002, "hi".into()));
        assert_eq!(got[1].0, files[1].path.trim_start_matches('/'));
        assert_eq!(got[1].1, 0o400);
    }

    #[test]
    fn files_into_a_volume_are_relative_to_it() {
        let file = |path: &str| FileSpec {
            relocate_env: None,
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            source: FileSource::Text { text: "x".into() },
        };
        let (a, b) = (file("/etc/bottle-gate/creds/a.key"), file("/etc/other"));
        let bytes = container_files("/etc/bottle-gate/", &[&a]).unwrap();
        let mut ar = tar::Archive::new(bytes.as_slice());
        let paths: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["creds/a.key"]);
        let err = container_files("/etc/bottle-gate", &[&a, &b]).unwrap_err();
        assert!(err.to_string().contains("/etc/other is not under"), "{err}");
        // A directory whose name merely starts the same is not the directory.
        assert!(container_files("/etc/bottle", &[&a]).is_err());
    }
}

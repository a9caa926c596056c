//! The staging of files: each written into a private directory before anything is
//! created, so a missing host file stops the script first.

use std::collections::BTreeSet;

use bottle_core::plan::FileSource;

use super::up::Up;
use super::words::{c, q};
use super::RenderError;

/// A heredoc delimiter that occurs nowhere in `text`.
fn delimiter(text: &str) -> String {
    let mut delim = "BOTTLE_EOF".to_owned();
    let mut n = 1;
    while text.contains(&delim) {
        delim = format!("BOTTLE_EOF_{n}");
        n += 1;
    }
    delim
}

/// `"$stage"/files/<container>/<rel>`, or the container's directory when `rel` is empty.
pub(super) fn staged(container: &str, rel: &str) -> Result<String, RenderError> {
    let path = if rel.is_empty() {
        format!("files/{container}")
    } else {
        format!("files/{container}/{rel}")
    };
    Ok(format!("\"$stage\"/{}", q(&path)?))
}

impl Up<'_> {
    /// Writes every file of every container into the staging directory, before anything is
    /// created.
    pub(super) fn staging(&mut self) -> Result<(), RenderError> {
        if !self.has_files {
            return Ok(());
        }
        let s = &mut self.s;
        s.blank();
        s.comment(
            "Files are staged in a private directory first, so that a missing host file stops the\n\
             script before anything is created.",
        );
        s.line("stage=$(mktemp -d)");
        for (ct, cf) in self.plan.containers.iter().zip(&self.files) {
            let mut made = BTreeSet::new();
            for f in &cf.files {
                let spec = f.spec;
                let dir = f.rel.rsplit_once('/').map_or("", |(d, _)| d);
                let target = staged(&ct.name, &f.rel)?;
                let from_host = match &spec.source {
                    FileSource::Text { .. } => "",
                    FileSource::HostFile { .. } => {
                        ": copied from the host when the script runs (secret: not printed)"
                    }
                    FileSource::HostEnv { .. } => {
                        ": read from the environment when the script runs (secret: not printed)"
                    }
                };
                s.blank();
                s.comment(format!(
                    "{}:{} (mode {:04o}, owner {}:{}){from_host}",
                    c(&ct.name),
                    c(&spec.path),
                    spec.mode,
                    spec.uid,
                    spec.gid
                ));
                if made.insert(dir) {
                    s.line(format!("mkdir -p {}", staged(&ct.name, dir)?));
                }
                match &spec.source {
                    FileSource::Text { text } if text.is_empty() => {
                        s.line(format!(": >{target}"));
                    }
                    FileSource::Text { text } if text.ends_with('\n') => {
                        // Quoted delimiter: nothing in the text expands.
                        let delim = delimiter(text);
                        s.line(format!("cat >{target} <<'{delim}'"));
                        s.0.push_str(text);
                        s.line(delim);
                    }
                    FileSource::Text { text } => {
                        // A heredoc always ends in a newline, which this text does not.
                        s.line(format!("printf '%s' {} >{target}", q(text)?));
                    }
                    FileSource::HostFile { path, .. } => {
                        let path = path.to_str().expect("checked: UTF-8");
                        s.line(format!("cp -- {} {target}", q(path)?));
                    }
                    FileSource::HostEnv { var, .. } => {
                        // The plan checked the name (letters, digits, '_'): safe unquoted
                        // in ${...}. A missing key stops the script here, before anything
                        // is created, as it stopped the plan.
                        s.line(format!(
                            "printf '%s' \"${{{var}:?is not set: export it, the key of a credential route}}\" >{target}"
                        ));
                    }
                }
                s.line(format!(
                    "chmod {} {target}",
                    q(&format!("{:04o}", spec.mode))?
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_avoid_the_text() {
        assert_eq!(delimiter("a\n"), "BOTTLE_EOF");
        assert_eq!(delimiter("BOTTLE_EOF\n"), "BOTTLE_EOF_1");
        assert_eq!(delimiter("BOTTLE_EOF\nBOTTLE_EOF_1\n"), "BOTTLE_EOF_2");
    }
}

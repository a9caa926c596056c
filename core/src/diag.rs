//! Errors that point into the manifest: file, line, column, field, what is wrong, what to do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The manifest's path, as given.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` in `source`.
    pub fn at(file: &Path, source: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            file: file.to_path_buf(),
            line,
            column,
        }
    }

    /// The location of the start of `span` in `source`.
    pub fn of_span(file: &Path, source: &str, span: &Range<usize>) -> Location {
        Location::at(file, source, span.start)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where it is.
    pub location: Location,
    /// The dotted path of the field, e.g. `bottles.demo.git[0].upstream`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.field, self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Every problem found in a manifest, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The problems, sorted by location.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestError {
    pub(crate) fn new(mut diagnostics: Vec<Diagnostic>) -> ManifestError {
        diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
        ManifestError { diagnostics }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if n > 1 {
            write!(f, "\n{n} problems in the manifest")?;
        }
        Ok(())
    }
}

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest is wrong in a way only planning can see (an unreadable identity file).
    #[error(transparent)]
    Invalid(#[from] ManifestError),
    /// A value could not be quoted into a script (validation should have caught it).
    #[error("cannot render a sidecar's scripts: {0}")]
    Quote(#[from] crate::quote::QuoteError),
    /// A sidecar's scripts could not be rendered.
    #[error("cannot render a sidecar's scripts: {0}")]
    Render(#[from] crate::sidecar::gate::scripts::RenderError),
}

//! Where audit lines go: one JSON [`AuditRecord`] per line, flushed per line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bottle_proxy_config::{AuditRecord, Decision, Source};

/// A shared writer of audit lines. Cloning shares the writer.
#[derive(Clone)]
pub struct Audit {
    bottle: Arc<str>,
    source: Source,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("bottle", &self.bottle)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Lines go to `out` (the binary passes stdout).
    pub fn new(bottle: &str, source: Source, out: Box<dyn Write + Send>) -> Audit {
        Audit {
            bottle: bottle.into(),
            source,
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Lines go to this process's stdout.
    pub fn stdout(bottle: &str, source: Source) -> Audit {
        Audit::new(bottle, source, Box::new(std::io::stdout()))
    }

    /// A new record stamped now, for this bottle and source.
    pub fn record(&self, decision: Decision, reason: &str) -> AuditRecord {
        AuditRecord::now(&self.bottle, self.source, decision, reason)
    }

    /// Writes one line. A failing writer (stdout closed) is reported on stderr once per
    /// line, never fatal: the decision stands whether or not it was logged.
    pub fn write(&self, rec: &AuditRecord) {
        let mut line = rec.to_line();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            eprintln!("bottle-proxy: cannot write audit line: {e}");
        }
    }
}

/// An in-memory audit writer for tests: everything written, as text.
#[derive(Clone, Default, Debug)]
pub struct MemoryAudit(pub Arc<Mutex<Vec<u8>>>);

impl MemoryAudit {
    /// The lines written so far, parsed.
    pub fn records(&self) -> Vec<AuditRecord> {
        let text = self.text();
        text.lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}"))
            })
            .collect()
    }

    /// The raw text written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for MemoryAudit {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

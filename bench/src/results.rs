//! Results: a measure's series, their medians and ratios.

use serde_json::json;
use serde_json::Value;

/// The samples of one side of a measure.
#[derive(Debug, Default, Clone)]
pub(crate) struct Series {
    pub(crate) samples: Vec<f64>,
    pub(crate) errors: Vec<String>,
}

impl Series {
    pub(crate) fn record(&mut self, r: anyhow::Result<f64>) {
        match r {
            Ok(t) => self.samples.push(t),
            Err(e) => {
                eprintln!("    failed: {}", first_lines(&format!("{e:#}"), 6));
                self.errors.push(format!("{e:#}"));
            }
        }
    }

    pub(crate) fn median(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    /// The `q` quantile (0..=1), nearest rank: the smallest sample with at least `q` of
    /// the samples at or below it (`quantile(0.99)` of 300 samples is the 297th).
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "median_s": self.median(),
            "samples_s": self.samples,
            "errors": self.errors,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// bottle's median over the baseline's, at most.
    Ratio(f64),
    /// bottle's median in milliseconds, at most.
    Millis(f64),
    /// bottle's median minus the baseline's, in milliseconds, at most.
    AddedMillis(f64),
    /// bottle's median in MiB (its samples are MiB), at most.
    MiB(f64),
    /// Reported, no target.
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct Measure {
    pub(crate) name: &'static str,
    pub(crate) bottle_side: String,
    pub(crate) baseline_side: String,
    pub(crate) bottle: Series,
    pub(crate) baseline: Series,
    pub(crate) target: Target,
    pub(crate) load: String,
    pub(crate) notes: Vec<String>,
    /// A third series, for information (what limits the measure).
    pub(crate) reference: Option<(String, Series)>,
    /// Other tools doing what bottle's side does, measured in the same run.
    pub(crate) peers: Vec<(String, Series)>,
    /// Further conditions of the target (what, holds); all must hold.
    pub(crate) checks: Vec<(String, bool)>,
    /// Figures particular to the measure.
    pub(crate) details: Value,
}

impl Measure {
    pub(crate) fn new(
        name: &'static str,
        bottle_side: &str,
        baseline_side: &str,
        target: Target,
    ) -> Measure {
        Measure {
            name,
            bottle_side: bottle_side.to_owned(),
            baseline_side: baseline_side.to_owned(),
            bottle: Series::default(),
            baseline: Series::default(),
            target,
            load: loadavg(),
            notes: Vec::new(),
            reference: None,
            peers: Vec::new(),
            checks: Vec::new(),
            details: Value::Null,
        }
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        Some(self.bottle.median()? / self.baseline.median()?)
    }

    pub(crate) fn holds(&self) -> Option<bool> {
        let clean = self.bottle.errors.is_empty() && self.baseline.errors.is_empty();
        let checks = self.checks.iter().all(|(_, holds)| *holds);
        let target = match self.target {
            Target::Ratio(max) => self.ratio().is_some_and(|r| r <= max),
            Target::Millis(max) => self.bottle.median().is_some_and(|m| m * 1e3 <= max),
            Target::AddedMillis(max) => self.added().is_some_and(|a| a * 1e3 <= max),
            Target::MiB(max) => self.bottle.median().is_some_and(|m| m <= max),
            Target::None if self.checks.is_empty() => return None,
            Target::None => true,
        };
        Some(clean && checks && target)
    }

    /// bottle's median minus the baseline's.
    pub(crate) fn added(&self) -> Option<f64> {
        Some(self.bottle.median()? - self.baseline.median()?)
    }

    pub(crate) fn json(&self) -> Value {
        let target = match self.target {
            Target::Ratio(r) => json!({ "ratio_at_most": r }),
            Target::Millis(ms) => json!({ "ms_at_most": ms }),
            Target::AddedMillis(ms) => json!({ "added_ms_at_most": ms }),
            Target::MiB(mib) => json!({ "mib_at_most": mib }),
            Target::None => Value::Null,
        };
        json!({
            "name": self.name,
            "bottle": { "what": self.bottle_side, "series": self.bottle.json() },
            "baseline": { "what": self.baseline_side, "series": self.baseline.json() },
            "ratio": self.ratio(),
            "target": target,
            "holds": self.holds(),
            "load_at_start": self.load,
            "notes": self.notes,
            "reference": self.reference.as_ref().map(|(what, series)| json!({
                "what": what,
                "series": series.json(),
            })),
            "peers": self.peers.iter().map(|(what, series)| json!({
                "what": what,
                "series": series.json(),
            })).collect::<Vec<_>>(),
            "checks": self.checks.iter().map(|(what, holds)| json!({
                "what": what,
                "holds": holds,
            })).collect::<Vec<_>>(),
            "details": self.details,
        })
    }
}

pub(crate) fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .take(n)
        .collect::<Vec<_>>()
        .join("\n            ")
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[f64]) -> Series {
        Series {
            samples: samples.to_vec(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let s = series(&(1..=300).map(f64::from).rev().collect::<Vec<_>>());
        assert_eq!(s.quantile(0.5), Some(150.0));
        assert_eq!(s.quantile(0.99), Some(297.0));
        assert_eq!(s.quantile(1.0), Some(300.0));
        assert_eq!(s.quantile(0.0), Some(1.0));
        assert_eq!(series(&[]).quantile(0.5), None);
    }

    #[test]
    fn added_millis_and_checks_decide_holds() {
        let mut m = Measure::new("x", "a", "b", Target::AddedMillis(1.0));
        m.bottle = series(&[0.0025]);
        m.baseline = series(&[0.0020]);
        assert_eq!(m.holds(), Some(true));
        m.checks.push(("below a peer".into(), false));
        assert_eq!(m.holds(), Some(false));
        let mut n = Measure::new("y", "a", "b", Target::None);
        assert_eq!(n.holds(), None);
        n.checks.push(("all succeeded".into(), true));
        assert_eq!(n.holds(), Some(true));
        let mut mem = Measure::new("z", "a", "-", Target::MiB(10.0));
        mem.bottle = series(&[12.5]);
        assert_eq!(mem.holds(), Some(false));
    }
}

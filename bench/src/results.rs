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
        }
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        Some(self.bottle.median()? / self.baseline.median()?)
    }

    pub(crate) fn holds(&self) -> Option<bool> {
        let clean = self.bottle.errors.is_empty() && self.baseline.errors.is_empty();
        match self.target {
            Target::Ratio(max) => Some(clean && self.ratio().is_some_and(|r| r <= max)),
            Target::Millis(max) => {
                Some(clean && self.bottle.median().is_some_and(|m| m * 1e3 <= max))
            }
            Target::None => None,
        }
    }

    pub(crate) fn json(&self) -> Value {
        let target = match self.target {
            Target::Ratio(r) => json!({ "ratio_at_most": r }),
            Target::Millis(ms) => json!({ "ms_at_most": ms }),
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

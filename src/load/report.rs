//! The result of a load run: throughput, latency percentiles from an HDR histogram, errors by
//! kind; as JSON (`--json`) or as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency summary of the successful operations, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Fastest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One point of the latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// Percentile (0–100).
    pub p: f64,
    /// Latency at it, µs.
    pub us: f64,
}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The URL or the command.
    pub target: String,
    /// `http` or `stdio`.
    pub transport: String,
    /// `handshake` (with the revision the server chose), `2026-07-28` or `raw`.
    pub protocol: String,
    /// The scenario's name.
    pub scenario: String,
    /// The tool of the `tool` scenario.
    pub tool: Option<String>,
    /// Concurrent clients.
    pub clients: usize,
    /// Wall time of the measured phase (after the warm-up), s.
    pub duration_s: f64,
    /// Operations finished in the measured phase.
    pub ops: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successful operations per second.
    pub throughput_per_s: f64,
    /// Latency of the successful operations.
    pub latency_us: Latency,
    /// The distribution, for plots.
    pub percentiles: Vec<Percentile>,
    /// One example message per error kind.
    pub error_examples: BTreeMap<String, String>,
    /// The flood of held connections (`--hold`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<super::hold::HoldReport>,
    /// Sessions created before the run, by the node their handles name (through a proxy:
    /// how creates spread over the nodes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sessions_by_node: BTreeMap<String, u64>,
}

/// Percentiles listed in a report.
const POINTS: [f64; 12] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0,
];

/// Latency summary and distribution of a histogram of nanoseconds.
pub(crate) fn summarize(h: &Histogram<u64>) -> (Latency, Vec<Percentile>) {
    if h.is_empty() {
        return (Latency::default(), Vec::new());
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let at = |q: f64| us(h.value_at_quantile(q));
    let latency = Latency {
        min: us(h.min()),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: us(h.max()),
        mean: h.mean() / 1000.0,
    };
    let points = POINTS
        .iter()
        .map(|&p| Percentile {
            p,
            us: at(p / 100.0),
        })
        .collect();
    (latency, points)
}

/// `µs` as a short human figure.
fn time(us: f64) -> String {
    match us {
        u if u >= 1_000_000.0 => format!("{:.2} s", u / 1_000_000.0),
        u if u >= 1_000.0 => format!("{:.2} ms", u / 1_000.0),
        u => format!("{u:.1} µs"),
    }
}

impl Report {
    /// The text form.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let what = match &self.tool {
            Some(t) => format!("{} ({t})", self.scenario),
            None => self.scenario.clone(),
        };
        let _ = writeln!(
            out,
            "{what} over {} {} (protocol {}), {} clients, {:.2} s",
            self.transport, self.target, self.protocol, self.clients, self.duration_s
        );
        let failed = self.ops - self.ok;
        let _ = writeln!(out, "  operations  {} ok, {failed} failed", self.ok);
        let _ = writeln!(out, "  throughput  {:.1} ops/s", self.throughput_per_s);
        let l = &self.latency_us;
        if self.ok == 0 {
            let _ = writeln!(out, "  latency     (no operation succeeded)");
        } else {
            let _ = writeln!(
                out,
                "  latency     p50 {}  p90 {}  p99 {}  max {}  (min {}, mean {})",
                time(l.p50),
                time(l.p90),
                time(l.p99),
                time(l.max),
                time(l.min),
                time(l.mean)
            );
        }
        if let Some(h) = &self.hold {
            let _ = writeln!(
                out,
                "  held        {} slow connections: open {}..{} (mean {:.0}) while measuring; {} closed by the server, {} connects failed",
                h.connections, h.open_min, h.open_max, h.open_mean, h.closed_by_server, h.connect_failures
            );
        }
        if self.sessions_by_node.len() > 1 {
            let list: Vec<String> = self
                .sessions_by_node
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(out, "  sessions    by node: {}", list.join(", "));
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(out, "  errors      {}", list.join(", "));
            for (kind, example) in &self.error_examples {
                let _ = writeln!(out, "    e.g. {kind}: {example}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let (l, points) = summarize(&h);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 2.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(points.len(), POINTS.len());
        assert!(points.windows(2).all(|w| w[0].us <= w[1].us));
    }
}

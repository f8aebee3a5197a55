//! A small metrics registry: counters, gauges and histograms with labels, rendered in the
//! Prometheus text format by `/metrics`.
//!
//! Handles are looked up once and kept by the code that updates them, so the hot path is
//! one atomic add.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as f64 bits).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Upper bounds (seconds) of latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A latency distribution in seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds, to add atomically.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Family<T> {
    help: &'static str,
    series: BTreeMap<Labels, Arc<T>>,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<&'static str, Family<Counter>>,
    gauges: BTreeMap<&'static str, Family<Gauge>>,
    histograms: BTreeMap<&'static str, Family<Histogram>>,
}

/// The node's metrics. Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

macro_rules! family_getter {
    ($fn:ident, $field:ident, $ty:ty) => {
        pub fn $fn(&self, name: &'static str, help: &'static str, l: &[(&str, &str)]) -> Arc<$ty> {
            let mut inner = self.inner.lock().expect("metrics lock poisoned");
            let family = inner.$field.entry(name).or_insert_with(|| Family { help, series: BTreeMap::new() });
            Arc::clone(family.series.entry(labels(l)).or_default())
        }
    };
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    family_getter!(counter, counters, Counter);
    family_getter!(gauge, gauges, Gauge);
    family_getter!(histogram, histograms, Histogram);

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().expect("metrics lock poisoned");
        let mut out = String::new();
        let fmt_labels = |l: &Labels, extra: Option<(&str, String)>| {
            let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            if let Some((k, v)) = extra {
                parts.push(format!("{k}=\"{v}\""));
            }
            if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
        };
        for (name, f) in &inner.counters {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", f.help);
            for (l, c) in &f.series {
                let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), c.get());
            }
        }
        for (name, f) in &inner.gauges {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", f.help);
            for (l, g) in &f.series {
                let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), g.get());
            }
        }
        for (name, f) in &inner.histograms {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", f.help);
            for (l, h) in &f.series {
                for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                    let le = fmt_labels(l, Some(("le", bound.to_string())));
                    let _ = writeln!(out, "{name}_bucket{le} {}", bucket.load(Ordering::Relaxed));
                }
                let count = h.count();
                let _ = writeln!(out, "{name}_bucket{} {count}", fmt_labels(l, Some(("le", "+Inf".into()))));
                let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "{name}_sum{} {sum}\n{name}_count{} {count}", fmt_labels(l, None), fmt_labels(l, None));
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.counter("t_messages_total", "Messages.", &[("stream", "a")]).add(3);
        m.counter("t_messages_total", "Messages.", &[("stream", "a")]).inc();
        m.gauge("t_lag", "Lag.", &[("partition", "0")]).set(7.0);
        m.histogram("t_commit_seconds", "Commits.", &[]).observe(0.02);
        let text = m.render();
        assert!(text.contains("# TYPE t_messages_total counter\nt_messages_total{stream=\"a\"} 4\n"), "{text}");
        assert!(text.contains("t_lag{partition=\"0\"} 7\n"), "{text}");
        assert!(text.contains("t_commit_seconds_bucket{le=\"0.01\"} 0\n"), "{text}");
        assert!(text.contains("t_commit_seconds_bucket{le=\"0.025\"} 1\n"), "{text}");
        assert!(text.contains("t_commit_seconds_count 1\n"), "{text}");
    }
}

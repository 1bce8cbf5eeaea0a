//! Latency histogram: log-linear buckets in atomics (lock-free record, approximate
//! percentiles within 1/16 relative error), plus exact count, sum and max.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB: usize = 16; // sub-buckets per power of two
const BUCKETS: usize = 64 * SUB;

pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub avg_ns: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros() as usize; // >= 4
    let shift = exp - 4;
    let sub = ((ns >> shift) as usize) & (SUB - 1);
    ((exp - 3) * SUB + sub).min(BUCKETS - 1)
}

fn bucket_upper(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let exp = b / SUB + 3;
    let sub = (b % SUB) as u64;
    let shift = exp - 4;
    ((SUB as u64 + sub + 1) << shift) - 1
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return LatencySummary::default();
        }
        let max = self.max_ns.load(Ordering::Relaxed);
        let pct = |q: f64| -> u64 {
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper(i).min(max);
                }
            }
            max
        };
        LatencySummary {
            count: self.count.load(Ordering::Relaxed),
            avg_ns: self.sum_ns.load(Ordering::Relaxed) as f64 / total as f64,
            p50_ns: pct(0.50),
            p99_ns: pct(0.99),
            max_ns: max,
        }
    }

    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum_ns.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_values() {
        for ns in [0u64, 1, 15, 16, 17, 100, 1000, 123_456, 10_000_000_000] {
            let b = bucket_of(ns);
            assert!(bucket_upper(b) >= ns, "{ns} -> {b}");
            assert!(bucket_upper(b) as f64 <= ns as f64 * 1.07 + 1.0, "{ns}");
        }
    }

    #[test]
    fn percentiles() {
        let h = LatencyHistogram::new();
        for i in 1..=1000u64 {
            h.record(i * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max_ns, 1_000_000);
        assert!((s.p50_ns as f64 - 500_000.0).abs() < 40_000.0, "{s:?}");
        assert!((s.p99_ns as f64 - 990_000.0).abs() < 70_000.0, "{s:?}");
        assert!((s.avg_ns - 500_500.0).abs() < 1.0);
    }
}

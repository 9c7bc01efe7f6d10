//! A log-bucketed latency histogram: 16 sub-buckets per power of two, so any
//! quantile it reports is within about 3% of the true sample. Fixed size, no
//! allocation per sample, O(1) record.

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    total: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    (exp - SUB_BITS + 1) as usize * SUB + sub
}

/// Inclusive lower and upper bound of the values that land in bucket `idx`.
fn bounds_of(idx: usize) -> (u64, u64) {
    if idx < SUB {
        return (idx as u64, idx as u64);
    }
    let exp = (idx / SUB) as u32 + SUB_BITS - 1;
    let sub = (idx % SUB) as u64;
    let shift = exp - SUB_BITS;
    let lo = (SUB as u64 + sub) << shift;
    let width = 1u64 << shift;
    (lo, lo.saturating_add(width - 1))
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.count += 1;
        self.total += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn total(&self) -> u128 {
        self.total
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the
    /// sample of that rank, clamped to the observed min and max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds_of(idx);
                let mid = lo + (hi - lo) / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// For each bound (ascending), how many samples lie in buckets wholly at or
    /// below it: Prometheus-style cumulative counts, exact to within one bucket.
    pub fn cumulative(&self, bounds: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds.len());
        let mut idx = 0usize;
        let mut seen = 0u64;
        for &bound in bounds {
            while idx < BUCKETS && bounds_of(idx).1 <= bound {
                seen += self.counts[idx];
                idx += 1;
            }
            out.push(seen);
        }
        out
    }

    pub fn reset(&mut self) {
        *self = Histogram::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_bounds() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            33,
            1000,
            123_456,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let b = bucket_of(v);
            assert!(b >= last, "bucket of {v} went backwards");
            let (lo, hi) = bounds_of(b);
            assert!(lo <= v && v <= hi, "{v} not in [{lo}, {hi}] of bucket {b}");
            last = b;
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_are_within_relative_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        for (q, exact) in [(0.5, 500_000f64), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!(
                (got - exact).abs() / exact < 0.035,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.min(), Some(100));
        assert_eq!(h.max(), Some(1_000_000));
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn cumulative_counts_whole_buckets() {
        let mut h = Histogram::new();
        for v in [3u64, 100, 1000, 1000, 50_000] {
            h.record(v);
        }
        // 100 lands in [100, 103] and 1000 in [992, 1023]: a bound inside a
        // bucket leaves the bucket out.
        assert_eq!(
            h.cumulative(&[2, 3, 99, 200, 1_100, 1 << 40]),
            vec![0, 1, 1, 2, 4, 5]
        );
        assert_eq!(h.cumulative(&[u64::MAX]), vec![5]);
        assert_eq!(Histogram::new().cumulative(&[10]), vec![0]);
    }

    #[test]
    fn empty_and_reset() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        h.record(42);
        assert_eq!(h.quantile(0.5), Some(42));
        assert_eq!(h.quantile(0.0), Some(42));
        h.reset();
        assert_eq!(h.count(), 0);
        assert_eq!(h.min(), None);
    }
}

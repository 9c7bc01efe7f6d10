//! A log-bucketed latency histogram: 16 sub-buckets per power of two, so any
//! quantile it reports is within about 3% of the true sample. Fixed size, no
//! allocation per sample, O(1) record. Histograms of several processes merge
//! exactly: a merged histogram is the one that would have recorded every sample.

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

    /// Add `other`'s samples: afterwards `self` equals a histogram that recorded
    /// the samples of both.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The non-empty buckets, lowest first, each as the lowest value that lands
    /// in it and its count: with `total`, `min` and `max`, all a histogram is.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(idx, &c)| (bounds_of(idx).0, c))
    }

    /// The histogram of [`Histogram::buckets`] pairs (each a value and a count
    /// of samples in that value's bucket; any value of the bucket will do, so
    /// raw samples with count 1 are fine) and the samples' `total`, `min` and
    /// `max`. Parts that no set of samples could give are an error naming the
    /// inconsistency, so a corrupt state never yields made-up quantiles.
    pub fn from_parts(
        buckets: &[(u64, u64)],
        total: u128,
        min: u64,
        max: u64,
    ) -> Result<Histogram, String> {
        let mut h = Histogram::new();
        for &(value, c) in buckets {
            h.counts[bucket_of(value)] += c;
            h.count = h
                .count
                .checked_add(c)
                .ok_or("the bucket counts overflow a 64-bit count")?;
        }
        if h.count == 0 {
            return Ok(h);
        }
        if min > max {
            return Err(format!("min {min} is above max {max}"));
        }
        let first = h.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = h.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        if bucket_of(min) != first || bucket_of(max) != last {
            return Err(format!(
                "min {min} and max {max} do not fall in the lowest and highest non-empty buckets"
            ));
        }
        let (low, high) = (h.count as u128 * min as u128, h.count as u128 * max as u128);
        if total < low || total > high {
            return Err(format!(
                "total {total} is outside what {} samples between {min} and {max} can sum to",
                h.count
            ));
        }
        h.total = total;
        h.min = min;
        h.max = max;
        Ok(h)
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.total == other.total
            && self.min() == other.min()
            && self.max() == other.max()
            && self.counts[..] == other.counts[..]
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("total", &self.total)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("buckets", &self.buckets().collect::<Vec<_>>())
            .finish()
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

    /// A deterministic spread of latencies: many small, some huge, a few exact
    /// bucket edges.
    fn samples(n: u64) -> Vec<u64> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match i % 5 {
                    0 => x % 16,
                    1 => 1 << (x % 40),
                    _ => x % 50_000_000,
                }
            })
            .collect()
    }

    fn fed(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn merged_parts_equal_one_histogram_fed_every_sample() {
        let all = samples(10_000);
        let whole = fed(&all);
        for parts in [1usize, 2, 3, 7] {
            let mut merged = Histogram::new();
            for chunk in all.chunks(all.len().div_ceil(parts)) {
                merged.merge(&fed(chunk));
            }
            assert_eq!(merged, whole, "{parts} parts");
            for q in [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(merged.quantile(q), whole.quantile(q), "q{q}, {parts} parts");
            }
        }
    }

    #[test]
    fn merging_an_empty_histogram_changes_nothing() {
        let mut h = fed(&samples(100));
        let before = h.clone();
        h.merge(&Histogram::new());
        assert_eq!(h, before);
        let mut empty = Histogram::new();
        empty.merge(&before);
        assert_eq!(empty, before);
    }

    #[test]
    fn parts_round_trip() {
        let h = fed(&samples(5_000));
        let buckets: Vec<_> = h.buckets().collect();
        let back = Histogram::from_parts(&buckets, h.total(), h.min().unwrap(), h.max().unwrap());
        assert_eq!(back.unwrap(), h);
        let empty = Histogram::from_parts(&[], 0, 0, 0).unwrap();
        assert_eq!(empty, Histogram::new());
    }

    #[test]
    fn raw_samples_are_valid_parts() {
        let values = samples(1_000);
        let pairs: Vec<_> = values.iter().map(|&v| (v, 1)).collect();
        let total = values.iter().map(|&v| v as u128).sum();
        let (min, max) = (*values.iter().min().unwrap(), *values.iter().max().unwrap());
        let h = Histogram::from_parts(&pairs, total, min, max).unwrap();
        assert_eq!(h, fed(&values));
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        // min above max
        assert!(Histogram::from_parts(&[(10, 1)], 10, 11, 10).is_err());
        // min outside the lowest bucket
        assert!(Histogram::from_parts(&[(1000, 2)], 2000, 5, 1000).is_err());
        // max outside the highest bucket
        assert!(Histogram::from_parts(&[(1000, 2)], 2000, 1000, 1 << 40).is_err());
        // a total two samples of 1000 cannot have
        assert!(Histogram::from_parts(&[(1000, 2)], 5, 1000, 1000).is_err());
        assert!(Histogram::from_parts(&[(1, u64::MAX), (2, 1)], 0, 1, 2).is_err());
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

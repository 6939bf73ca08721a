//! Fixed-size latency histogram: log-linear buckets (16 per power of two, so
//! about 6 % resolution), exact below 32 µs. Sized at compile time; merging
//! and quantiles never allocate.

use std::time::Duration;

/// Sub-buckets per power of two (4 bits of mantissa).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets for every `u64` value: the exact ones below `2 * SUB`, then `SUB`
/// per power of two up to 2^63.
const BUCKETS: usize = ((64 - SUB_BITS) as usize + 1) * SUB as usize;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    n: u64,
    max: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            n: 0,
            max: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(us)] += 1;
        self.n += 1;
        self.max = self.max.max(us);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// Largest value recorded (µs).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The `q` quantile (0 < q <= 1) in µs, as the upper bound of its bucket
    /// (never under the true value); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((shift as u64 + 1) * SUB + sub) as usize
}

/// The largest value in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let sub = i % SUB;
    let top = u128::from(SUB + sub + 1) << shift;
    u64::try_from(top - 1).unwrap_or(u64::MAX)
}

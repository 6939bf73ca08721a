//! Latency histogram: log-linear, 32 sub-buckets per power of two (~3%), fixed size.

#[allow(unused_imports)]
use crate::*;

pub(crate) const SUB_BITS: u32 = 5;
pub(crate) const SUB: usize = 1 << SUB_BITS;
pub(crate) const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

pub(crate) struct Histogram {
    pub(crate) counts: Box<[u64; BUCKETS]>,
    pub(crate) total: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }

    pub(crate) fn index(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros(); // >= SUB_BITS
        let sub = (ns >> (e - SUB_BITS)) as usize & (SUB - 1);
        (e - SUB_BITS + 1) as usize * SUB + sub
    }

    /// The middle of bucket `i`, in ns.
    pub(crate) fn value(i: usize) -> f64 {
        if i < SUB {
            return i as f64;
        }
        let e = (i / SUB) as u32 + SUB_BITS - 1;
        let sub = (i % SUB) as u64;
        let lo = (SUB as u64 + sub) << (e - SUB_BITS);
        lo as f64 + (1u64 << (e - SUB_BITS)) as f64 / 2.0
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    /// The `q` quantile in microseconds (NaN when empty).
    pub(crate) fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i) / 1000.0;
            }
        }
        f64::NAN
    }
}

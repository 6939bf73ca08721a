//! Links per peer address for `ListenConfig::max_connections_per_ip`: a fixed
//! open-addressing table sized when the listener is bound.
//!
//! Why a table and not a scan of the link slots: a scan costs `max_links`
//! comparisons per accept, and a connection flood (the case the limit is for)
//! makes that quadratic. The table costs O(1) expected per accept and close and
//! never allocates after it is built: it holds at most `max_connections`
//! addresses (one per link at most) in twice as many cells (rounded up to a power of two), so it is never
//! more than half full and probes stay short. Deletion shifts entries back
//! (no tombstones), so churn cannot fill it. Addresses are hashed with a
//! per-table random key (`RandomState`, SipHash), so a peer choosing its
//! addresses cannot line them up on one probe chain.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;

use crate::fallible::{self, AllocError};

#[derive(Clone, Copy)]
struct Cell {
    ip: IpAddr,
    /// Links from `ip`; 0 marks an empty cell.
    count: u32,
}

const EMPTY: Cell = Cell {
    ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    count: 0,
};

/// Link counts per peer address.
pub(super) struct PeerCounts {
    cells: Box<[Cell]>,
    hasher: RandomState,
}

impl PeerCounts {
    /// A table for up to `max_addrs` addresses at once.
    pub(super) fn new(max_addrs: usize) -> Result<Self, AllocError> {
        let cells = max_addrs
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or(AllocError::too_large("per-address link counts"))?;
        let mut v = fallible::vec_with_capacity(cells, "per-address link counts")?;
        v.resize(cells, EMPTY);
        Ok(PeerCounts {
            cells: v.into_boxed_slice(),
            hasher: RandomState::new(),
        })
    }

    /// IPv4-mapped IPv6 peers count as their IPv4 address.
    fn key(ip: IpAddr) -> IpAddr {
        ip.to_canonical()
    }

    fn home(&self, ip: IpAddr) -> usize {
        // Truncation is fine: the mask keeps the low bits.
        (self.hasher.hash_one(ip) as usize) & (self.cells.len() - 1)
    }

    /// The cell holding `ip`, or the empty cell where it would go.
    fn find(&self, ip: IpAddr) -> usize {
        let mask = self.cells.len() - 1;
        let mut i = self.home(ip);
        // Never more than half full: an empty cell ends every probe.
        while self.cells[i].count != 0 && self.cells[i].ip != ip {
            i = (i + 1) & mask;
        }
        i
    }

    /// Links from `ip` now.
    pub(super) fn count(&self, ip: IpAddr) -> u32 {
        self.cells[self.find(Self::key(ip))].count
    }

    /// One more link from `ip`.
    pub(super) fn add(&mut self, ip: IpAddr) {
        let ip = Self::key(ip);
        let i = self.find(ip);
        let c = &mut self.cells[i];
        c.ip = ip;
        c.count = c.count.saturating_add(1);
    }

    /// One link fewer from `ip` (nothing when it has none).
    pub(super) fn remove(&mut self, ip: IpAddr) {
        let i = self.find(Self::key(ip));
        match self.cells[i].count {
            0 => {}
            1 => self.vacate(i),
            n => self.cells[i].count = n - 1,
        }
    }

    /// Empties cell `hole`, moving later entries of its probe chain back so
    /// every entry stays reachable from its home cell.
    fn vacate(&mut self, mut hole: usize) {
        let mask = self.cells.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if self.cells[j].count == 0 {
                break;
            }
            let home = self.home(self.cells[j].ip);
            // Entry j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.cells[hole] = self.cells[j];
                hole = j;
            }
        }
        self.cells[hole] = EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn counts_follow_adds_and_removes_per_address() {
        let mut t = PeerCounts::new(4).unwrap();
        t.add(ip(1));
        t.add(ip(1));
        t.add(ip(2));
        assert_eq!((t.count(ip(1)), t.count(ip(2)), t.count(ip(3))), (2, 1, 0));
        t.remove(ip(1));
        t.remove(ip(3));
        assert_eq!((t.count(ip(1)), t.count(ip(2)), t.count(ip(3))), (1, 1, 0));
        t.remove(ip(1));
        assert_eq!(t.count(ip(1)), 0);
    }

    #[test]
    fn a_mapped_ipv6_peer_counts_as_its_ipv4_address() {
        let mut t = PeerCounts::new(2).unwrap();
        t.add("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(t.count("127.0.0.1".parse().unwrap()), 1);
    }

    #[test]
    fn churn_at_full_load_keeps_every_count_exact() {
        // Against a model, with the table at its bound of distinct addresses,
        // so deletions shift entries of long chains.
        let max = 64;
        let mut t = PeerCounts::new(max).unwrap();
        let mut model = std::collections::HashMap::<u32, u32>::new();
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let a = x % 200;
            let held: u32 = model.values().sum();
            if x & 1 == 0 && (model.contains_key(&a) || model.len() < max) && held < 1000 {
                t.add(ip(a));
                *model.entry(a).or_default() += 1;
            } else if let Some(c) = model.get_mut(&a) {
                t.remove(ip(a));
                *c -= 1;
                if *c == 0 {
                    model.remove(&a);
                }
            }
            for (&k, &v) in &model {
                assert_eq!(t.count(ip(k)), v);
            }
        }
    }
}

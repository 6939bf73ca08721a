//! A bounded duplicate window keyed by message identity.
//!
//! At-least-once senders resend a message whose reply they never saw, and HL7
//! receivers are expected to deduplicate by MSH-10. A relay uses this window so
//! that a resent message is acknowledged again but forwarded once.
//!
//! A key is a short list of byte strings (the relay uses MSH-3, MSH-4 and
//! MSH-10, see [`crate::hl7::message_key`]): MSH-10 alone is only unique per
//! sender, and two devices with independent counters reuse each other's ids in
//! normal use. The window remembers the last `window` distinct keys, within a
//! byte budget: the keys themselves, in arrival order, in one fixed byte ring
//! (so the oldest is forgotten first), indexed by an open-addressing table of
//! their positions (at most half full). Everything is sized at build.
//!
//! A key is a duplicate only if its bytes equal a remembered key's: the 64-bit
//! hash only finds candidates, so two keys with the same hash are still two
//! keys, and a hash collision can never drop a message. A key longer than the
//! whole byte budget cannot be remembered; it is never taken for a duplicate
//! (at worst a resend of it is forwarded again, which at-least-once allows).

use crate::replay::{ReplayError, ReplayQueue};

/// Bytes of key budget per remembered key: [`DedupWindow::new`] gives the
/// window `window` times this. A key costs its parts plus 4 bytes for each
/// part but the last; when keys are longer on average, the window holds fewer.
pub(crate) const KEY_BYTES: usize = 64;

/// Remembers the last `window` distinct keys.
#[derive(Debug)]
pub(crate) struct DedupWindow {
    /// The remembered keys, encoded (see [`encode`]), oldest first.
    keys: ReplayQueue,
    /// Hash of key number `n` at `n % window`.
    hashes: Box<[u64]>,
    /// `n % window + 1` of a remembered key `n`, at its probe position; 0 is
    /// empty. (The ring holds at most `window` keys, so that names one.)
    table: Box<[u32]>,
    /// Number of the oldest key in `keys` (keys are numbered as they come).
    first: u64,
    hash: fn(&[&[u8]]) -> u64,
}

const EMPTY: u32 = 0;

/// Feeds the encoding of `parts` to `f` in pieces: each part but the last is
/// preceded by its length (u32, little-endian), so that ("AB", "C") and
/// ("A", "BC") differ. `None` when a part is too long to encode.
fn encode(parts: &[&[u8]], mut f: impl FnMut(&[u8])) -> Option<()> {
    let (last, rest) = parts.split_last()?;
    for p in rest {
        f(&u32::try_from(p.len()).ok()?.to_le_bytes());
        f(p);
    }
    f(last);
    Some(())
}

/// Length of the encoding of `parts`.
fn encoded_len(parts: &[&[u8]]) -> Option<usize> {
    let mut n = 0usize;
    encode(parts, |b| n = n.saturating_add(b.len()))?;
    Some(n)
}

/// 64-bit FNV-1a of the encoding of `parts`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let _ = encode(parts, |b| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    });
    h
}

/// Whether `record` is the encoding of `parts`.
fn same_key(record: &[u8], parts: &[&[u8]]) -> bool {
    let mut rest = record;
    let mut equal = true;
    let encoded = encode(parts, |b| match rest.split_at_checked(b.len()) {
        Some((head, tail)) if equal && head == b => rest = tail,
        _ => equal = false,
    });
    encoded.is_some() && equal && rest.is_empty()
}

impl DedupWindow {
    /// A window over the last `window` keys (at least 1), with
    /// `window` × [`KEY_BYTES`] bytes for them.
    pub(crate) fn new(window: usize) -> Self {
        Self::with_key_bytes(window, window.max(1).saturating_mul(KEY_BYTES))
    }

    /// A window over the last `window` keys (at least 1) that hold at most
    /// `key_bytes` bytes together (encoded: parts plus 4 bytes per part but
    /// the last).
    pub(crate) fn with_key_bytes(window: usize, key_bytes: usize) -> Self {
        // Table cells hold a ring position + 1 in a u32.
        let window = window.clamp(1, u32::MAX as usize - 1);
        let cells = window.saturating_mul(2).next_power_of_two();
        DedupWindow {
            keys: ReplayQueue::new(key_bytes, window),
            hashes: vec![0; window].into_boxed_slice(),
            table: vec![EMPTY; cells].into_boxed_slice(),
            first: 0,
            hash: fnv1a,
        }
    }

    /// How many keys the window remembers at most.
    pub(crate) fn capacity(&self) -> usize {
        self.hashes.len()
    }

    /// True (and the key is remembered) when `key` is not among the
    /// remembered keys; false for a duplicate: a key whose every part equals,
    /// byte for byte, a remembered key's.
    pub(crate) fn first_time(&mut self, key: &[&[u8]]) -> bool {
        let h = (self.hash)(key);
        if self.find(h, key).is_some() {
            return false;
        }
        let Some(len) = encoded_len(key) else {
            return true;
        };
        let window = self.capacity();
        loop {
            match self.keys.push_with(len, window, |rec| {
                let mut at = 0;
                let _ = encode(key, |b| {
                    rec[at..at + b.len()].copy_from_slice(b);
                    at += b.len();
                });
            }) {
                Ok(()) => break,
                // Too long to remember: never a duplicate, see the module docs.
                Err(ReplayError::TooLarge) => return true,
                Err(ReplayError::Full) if self.keys.len() == 0 => return true,
                Err(ReplayError::Full) => self.evict_oldest(),
            }
        }
        let n = self.first + (self.keys.len() as u64 - 1);
        self.hashes[self.slot(n)] = h;
        let mask = self.table.len() - 1;
        let mut i = h as usize & mask;
        while self.table[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.table[i] = self.slot(n) as u32 + 1;
        true
    }

    /// Forgets `key` if it is remembered, so that it is taken as new next
    /// time (for a message that was not kept after all).
    pub(crate) fn forget(&mut self, key: &[&[u8]]) {
        if let Some(i) = self.find((self.hash)(key), key) {
            self.remove_at(i);
        }
        // Its bytes stay in the ring until they are the oldest; nothing points
        // at them any more.
    }

    fn slot(&self, n: u64) -> usize {
        (n % self.hashes.len() as u64) as usize
    }

    /// The hash of the key a table cell points at.
    fn hash_at(&self, cell: u32) -> u64 {
        self.hashes[(cell - 1) as usize]
    }

    /// The stored key a table cell points at: the one held key whose number is
    /// `cell - 1` modulo the window.
    fn record_at(&self, cell: u32) -> Option<&[u8]> {
        let w = self.hashes.len();
        let k = ((cell - 1) as usize + w - self.slot(self.first)) % w;
        self.keys.get(k)
    }

    /// The table cell of `key` (with hash `h`), if remembered.
    fn find(&self, h: u64, key: &[&[u8]]) -> Option<usize> {
        let mask = self.table.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let cell = self.table[i];
            if cell == EMPTY {
                return None;
            }
            // The hash finds candidates; only equal bytes make a match.
            if self.hash_at(cell) == h && self.record_at(cell).is_some_and(|r| same_key(r, key)) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Drops the oldest key from the ring, and from the table unless it was
    /// forgotten already.
    fn evict_oldest(&mut self) {
        let n = self.first;
        let mask = self.table.len() - 1;
        let mut i = self.hashes[self.slot(n)] as usize & mask;
        loop {
            match self.table[i] {
                EMPTY => break,
                cell if cell == self.slot(n) as u32 + 1 => {
                    self.remove_at(i);
                    break;
                }
                _ => i = (i + 1) & mask,
            }
        }
        self.keys.pop_front();
        self.first += 1;
    }

    /// Linear-probing deletion by backward shift: later entries of the same probe
    /// run move into the hole, so lookups never stop early.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.table.len() - 1;
        self.table[hole] = EMPTY;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let cell = self.table[j];
            if cell == EMPTY {
                return;
            }
            let home = self.hash_at(cell) as usize & mask;
            // Move the cell back unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.table[hole] = cell;
                self.table[j] = EMPTY;
                hole = j;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;
    use std::collections::VecDeque;

    #[test]
    fn a_resent_id_is_a_duplicate_and_a_new_one_is_not() {
        let mut w = DedupWindow::new(4);
        assert!(w.first_time(&[b"MSG00001"]));
        assert!(w.first_time(&[b"MSG00002"]));
        assert!(!w.first_time(&[b"MSG00001"]));
        assert!(w.first_time(&[b"MSG00003"]));
    }

    #[test]
    fn the_oldest_id_is_forgotten_first() {
        let mut w = DedupWindow::new(2);
        assert!(w.first_time(&[b"A"]));
        assert!(w.first_time(&[b"B"]));
        assert!(w.first_time(&[b"C"])); // forgets A
        assert!(!w.first_time(&[b"B"]));
        assert!(w.first_time(&[b"A"]));
    }

    #[test]
    fn the_same_id_from_another_sender_is_not_a_duplicate() {
        let mut w = DedupWindow::new(8);
        assert!(w.first_time(&[b"DEV", b"WARD", b"MSG1"]));
        assert!(w.first_time(&[b"PUMP", b"WARD", b"MSG1"]));
        assert!(w.first_time(&[b"DEV", b"ICU", b"MSG1"]));
        // The parts are kept apart: "DE"+"VWARD" is not "DEV"+"WARD".
        assert!(w.first_time(&[b"DE", b"VWARD", b"MSG1"]));
        assert!(!w.first_time(&[b"DEV", b"WARD", b"MSG1"]));
        assert!(!w.first_time(&[b"PUMP", b"WARD", b"MSG1"]));
    }

    #[test]
    fn a_forgotten_key_is_new_again_and_the_rest_stay() {
        let mut w = DedupWindow::new(4);
        assert!(w.first_time(&[b"A"]));
        assert!(w.first_time(&[b"B"]));
        w.forget(&[b"A"]);
        w.forget(&[b"never seen"]);
        assert!(!w.first_time(&[b"B"]));
        assert!(w.first_time(&[b"A"]));
        assert!(!w.first_time(&[b"A"]));
    }

    #[test]
    fn a_key_longer_than_the_budget_is_never_a_duplicate() {
        let mut w = DedupWindow::with_key_bytes(4, 16);
        let long = [7u8; 17];
        assert!(w.first_time(&[&long]));
        assert!(w.first_time(&[&long]), "not remembered, so not a duplicate");
        assert!(w.first_time(&[b"short"]));
        assert!(!w.first_time(&[b"short"]));
    }

    /// Checks `w` against a model with random keys, some forgotten: the last
    /// `window` keys in arrival order, where a forgotten key still holds its
    /// place until it is the oldest (the byte budget never runs out here).
    fn check_against_model(w: &mut DedupWindow, rng: &mut Rng, window: usize, seed: u64) {
        let mut model: VecDeque<(Vec<u8>, bool)> = VecDeque::new();
        for _ in 0..5_000 {
            let id = rng.below(3 * window) as u64;
            let sender = [b'A' + rng.below(3) as u8];
            let idb = id.to_le_bytes();
            let key: [&[u8]; 2] = [&sender, &idb];
            let mut flat = sender.to_vec();
            flat.extend_from_slice(&idb);
            if rng.below(10) == 0 {
                w.forget(&key);
                for (k, live) in model.iter_mut() {
                    if *k == flat {
                        *live = false;
                    }
                }
                continue;
            }
            let expect = !model.iter().any(|(k, live)| *live && *k == flat);
            assert_eq!(w.first_time(&key), expect, "seed {seed} key {flat:?}");
            if expect {
                if model.len() == window {
                    model.pop_front();
                }
                model.push_back((flat, true));
            }
        }
    }

    #[test]
    fn a_tight_byte_budget_forgets_early_but_never_confuses_keys() {
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let mut w = DedupWindow::with_key_bytes(16, 40 + rng.below(60));
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for _ in 0..2_000 {
                let key: Vec<u8> = (0..rng.below(24))
                    .map(|_| b'0' + rng.below(2) as u8)
                    .collect();
                // The model: the last 16 keys the window took as new. The budget
                // may make the window forget some of them early, nothing more.
                if w.first_time(&[&key]) {
                    if model.len() == 16 {
                        model.pop_front();
                    }
                    model.push_back(key);
                } else {
                    assert!(
                        model.contains(&key),
                        "seed {seed}: {key:?} taken for a duplicate"
                    );
                }
            }
        }
    }

    #[test]
    fn window_matches_a_model_under_random_keys() {
        for seed in 0..100 {
            let mut rng = Rng::new(seed);
            let window = 1 + rng.below(64);
            let mut w = DedupWindow::new(window);
            check_against_model(&mut w, &mut rng, window, seed);
        }
    }

    #[test]
    fn keys_whose_hashes_all_collide_are_still_told_apart() {
        // Every key hashes alike: only the byte comparison can tell them apart,
        // and no message may be taken for a duplicate of another.
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let window = 1 + rng.below(32);
            let mut w = DedupWindow::new(window);
            w.hash = |_| 42;
            check_against_model(&mut w, &mut rng, window, seed);
        }
    }
}

//! HL7 timestamps (MSH-7 of generated ACKs).

/// Formats `unix_secs` as the HL7 timestamp `YYYYMMDDHHMMSS` in UTC into
/// `out` and returns it, for MSH-7 of generated ACKs.
///
/// Uses the civil-from-days algorithm (H. Hinnant), so no allocation and no
/// time zone database are needed. Times after 9999-12-31 23:59:59 are clamped
/// to it, because the format has only four year digits.
pub fn timestamp_utc(unix_secs: u64, out: &mut [u8; 14]) -> &[u8] {
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = unix_secs.min(MAX_SECS);
    let days = secs / 86_400;
    let of_day = secs % 86_400;

    // Days since 0000-03-01, so that the leap day ends each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);

    let parts = [
        (year, 4),
        (month, 2),
        (day, 2),
        (of_day / 3_600, 2),
        (of_day % 3_600 / 60, 2),
        (of_day % 60, 2),
    ];
    let mut slots = out.iter_mut();
    for (value, width) in parts {
        let mut divisor = 10u64.pow(width - 1);
        for _ in 0..width {
            if let Some(slot) = slots.next() {
                // `value / divisor % 10` is a single digit, so the cast is lossless.
                *slot = b'0' + (value / divisor % 10) as u8;
            }
            divisor /= 10;
        }
    }
    &out[..]
}

/// The HL7 timestamp of the current second, formatted once per second: a
/// server acknowledging thousands of messages a second formats the clock once
/// per second, not once per ACK.
#[derive(Clone, Debug, Default)]
pub struct TimestampCache {
    /// The second `text` shows; `None` before the first call.
    secs: Option<u64>,
    /// `timestamp_utc(secs)`.
    text: [u8; 14],
}

impl TimestampCache {
    /// An empty cache: the first [`TimestampCache::get`] formats.
    pub fn new() -> Self {
        Self::default()
    }

    /// The timestamp of `unix_secs` (as [`timestamp_utc`] gives it), formatted
    /// only when the second differs from the previous call's.
    pub fn get(&mut self, unix_secs: u64) -> &[u8; 14] {
        if self.secs != Some(unix_secs) {
            timestamp_utc(unix_secs, &mut self.text);
            self.secs = Some(unix_secs);
        }
        &self.text
    }

    /// The second the cached text shows.
    #[cfg(test)]
    fn second(&self) -> Option<u64> {
        self.secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_gives_what_timestamp_utc_gives_and_reformats_when_the_second_changes() {
        let mut cache = TimestampCache::new();
        let mut out = [0u8; 14];
        assert_eq!(cache.second(), None);
        for secs in [
            0,
            0,
            1_795_391_400,
            1_795_391_400,
            1_795_391_401,
            5,
            u64::MAX,
        ] {
            assert_eq!(
                &cache.get(secs)[..],
                timestamp_utc(secs, &mut out),
                "{secs}"
            );
            assert_eq!(cache.second(), Some(secs));
        }
    }

    #[test]
    fn cache_does_not_reformat_within_a_second() {
        let mut cache = TimestampCache::new();
        assert_eq!(cache.get(1_795_391_400), b"20261122235000");
        // Scribble on the cached text: a second call within the same second must
        // serve the cached bytes, not format again.
        cache.text = *b"cached-------x";
        assert_eq!(cache.get(1_795_391_400), b"cached-------x");
        assert_eq!(cache.get(1_795_391_401), b"20261122235001");
    }
}

//! What the `sim_*` tests share.

// Each simulation uses the helpers it needs.
#![allow(dead_code)]

/// The seeds a simulation runs: `SIM_SEED=<n>` replays that one seed,
/// otherwise `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    seeds_of_part(count, 0, 1)
}

/// Part `part` of `parts` of the seeds `0..count`, for a simulation that runs
/// as several tests so that `cargo test` spreads it over every core.
/// `SIM_SEED=<n>` replays that one seed, in part 0 (the other parts run none).
pub fn seeds_of_part(count: u64, part: u64, parts: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) if part == 0 => vec![s.parse().expect("SIM_SEED is a number")],
        Ok(_) => Vec::new(),
        Err(_) => (part * count / parts..(part + 1) * count / parts).collect(),
    }
}

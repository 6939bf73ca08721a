//! What the `sim_*` tests share.

/// The seeds a simulation runs: `SIM_SEED=<n>` replays that one seed,
/// otherwise `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..count).collect(),
    }
}

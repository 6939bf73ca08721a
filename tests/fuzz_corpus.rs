//! The fuzzers' saved inputs as a regression test on stable Rust: every file of
//! the checked-in corpus (`tests/fuzz/corpus/<target>/`) and every crash
//! reproducer kept after its fix (`tests/fuzz/regressions/<target>/`) goes
//! through the same function its cargo-fuzz target calls
//! (`mooring::internals::fuzzing::<target>`). Inputs of crashes not yet fixed wait in
//! `tests/fuzz/pending/<target>/`, which this test does not read.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use mooring::internals::fuzzing::TARGETS;

/// Runs every file under `dir/<target>/` through its target; returns how many
/// ran and the names of those that panicked.
fn run_saved(dir: &str) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(dir);
    let (mut ran, mut failed) = (0, Vec::new());
    for (name, target) in TARGETS {
        let Ok(entries) = fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.expect("readable dir").path()).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            let data = fs::read(path).expect("readable input");
            ran += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failed.push(format!("{name}: {}", path.display()));
            }
        }
    }
    (ran, failed)
}

#[test]
fn every_corpus_input_passes_its_target() {
    let (ran, failed) = run_saved("corpus");
    assert!(
        ran >= mooring::internals::fuzzing::TARGETS.len(),
        "corpus missing: {ran} files"
    );
    assert!(
        failed.is_empty(),
        "failing corpus inputs:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_fixed_crash_reproducer_passes_its_target() {
    let (_, failed) = run_saved("regressions");
    assert!(
        failed.is_empty(),
        "crash reproducers fail again:\n{}",
        failed.join("\n")
    );
}

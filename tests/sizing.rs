//! Everything a node sizes at start is allocated fallibly: a size the host
//! cannot provide is `SetupError::OutOfMemory` naming what and how much, never
//! an abort of the host process.

use mooring::{ListenConfig, Node, NodeConfig, SetupError};

fn out_of_memory(cfg: NodeConfig) -> (&'static str, usize) {
    match Node::new(cfg) {
        Err(SetupError::OutOfMemory { what, bytes }) => (what, bytes),
        Err(e) => panic!("expected OutOfMemory, got {e}"),
        Ok(_) => panic!("expected OutOfMemory, the node was built"),
    }
}

#[test]
fn an_absurd_max_links_is_out_of_memory_with_the_size_it_wanted() {
    // The largest count the config allows (slots are u32): 2^33 working
    // buffers of 16 KiB, 128 TiB, more than the address space (on a 32-bit
    // target the size itself overflows: usize::MAX).
    let (what, bytes) = out_of_memory(NodeConfig {
        max_links: u32::MAX as usize,
        ..NodeConfig::default()
    });
    assert_eq!(what, "working buffers");
    let want = (u32::MAX as usize).saturating_mul(2 * 16 * 1024);
    assert_eq!(bytes, want);
    let e = SetupError::OutOfMemory { what, bytes };
    assert!(e.to_string().contains("working buffers"), "{e}");
}

#[test]
fn an_arena_larger_than_the_address_space_is_out_of_memory() {
    // 2^27 large buffers of 1 MiB: 128 TiB, which no allocator can map (on a
    // 32-bit target the size overflows: usize::MAX).
    let (what, bytes) = out_of_memory(NodeConfig {
        large_buffers: 1 << 27,
        ..NodeConfig::default()
    });
    assert_eq!(what, "large buffers");
    assert!(
        bytes as u64 >= (1u64 << 47).min(usize::MAX as u64),
        "{bytes}"
    );
}

#[test]
fn absurd_counts_that_overflow_the_size_are_out_of_memory_too() {
    let (what, bytes) = out_of_memory(NodeConfig {
        large_buffers: usize::MAX / 8,
        ..NodeConfig::default()
    });
    assert_eq!((what, bytes), ("large buffers", usize::MAX));
    let (what, _) = out_of_memory(NodeConfig {
        max_sessions: 1 << (usize::BITS - 4),
        ..NodeConfig::default()
    });
    assert!(
        what.starts_with("session") || what == "deadline heap",
        "{what}"
    );
}

// A count beyond u32 exists only where usize is wider than u32.
#[cfg(target_pointer_width = "64")]
#[test]
fn max_links_beyond_u32_is_a_config_error() {
    let r = Node::new(NodeConfig {
        max_links: usize::MAX / 8,
        ..NodeConfig::default()
    });
    assert!(matches!(r, Err(SetupError::Config(_))), "{:?}", r.err());
}

#[test]
fn a_sane_node_still_builds_after_a_refused_one() {
    let _ = Node::new(NodeConfig {
        max_links: u32::MAX as usize,
        ..NodeConfig::default()
    });
    let mut node = Node::new(NodeConfig::default()).expect("builds");
    let per_ip = ListenConfig {
        max_connections_per_ip: Some(2),
        ..ListenConfig::default()
    };
    node.listen("127.0.0.1:0".parse().unwrap(), per_ip)
        .expect("listens");
}

//! MLLP by hand, for test peers and the soak example: a payload in its
//! envelope, and the next whole frame out of received bytes.
#![allow(dead_code)]

/// Start block.
pub const SB: u8 = 0x0B;
/// End block and the CR after it.
pub const END: [u8; 2] = [0x1C, 0x0D];

/// `payload` in an MLLP envelope.
pub fn mllp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 3);
    v.push(SB);
    v.extend_from_slice(payload);
    v.extend_from_slice(&END);
    v
}

/// Takes the first whole frame out of `buf` and returns its payload; stray
/// bytes before its start block go with it. `None` (and `buf` untouched)
/// until a frame is complete.
pub fn take_mllp(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let start = buf.iter().position(|&b| b == SB)?;
    let end = buf[start..].windows(2).position(|w| w == END)?;
    let payload = buf[start + 1..start + end].to_vec();
    buf.drain(..start + end + 2);
    Some(payload)
}

//! Length-prefixed framing: a 4-byte big-endian payload length, then the payload.
//!
//! The maximum is checked from the header, before any payload byte is buffered.

use super::{Codec, Decoded, Envelope, FrameError};

/// Bytes a frame adds before its payload: the length.
pub(super) const OVERHEAD: usize = 4;

/// Writes the length and `payload` into `out` (see
/// [`super::Framing::encode_into`]); `None` for a payload too long for the prefix.
#[inline(always)]
pub(super) fn frame_into(payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = u32::try_from(payload.len()).ok()?;
    let total = payload.len().checked_add(OVERHEAD)?;
    let (dst, _) = out.split_at_mut_checked(total)?;
    let (head, body) = dst.split_at_mut(OVERHEAD);
    head.copy_from_slice(&len.to_be_bytes());
    body.copy_from_slice(payload);
    Some(total)
}

/// The 4-byte length prefix codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Len32;

impl Codec for Len32 {
    // Per message, and a few comparisons: inline.
    #[inline(always)]
    fn decode(
        &self,
        buf: &[u8],
        _scan: &mut usize,
        max_frame: usize,
    ) -> Result<Decoded, FrameError> {
        let Some(header) = buf.get(..4) else {
            return Ok(Decoded::Incomplete {
                skipped: 0,
                needed: None,
            });
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let len = usize::try_from(len).map_err(|_| FrameError::TooLarge)?;
        if len > max_frame {
            return Err(FrameError::TooLarge);
        }
        let total = len.checked_add(4).ok_or(FrameError::TooLarge)?;
        if buf.len() < total {
            return Ok(Decoded::Incomplete {
                skipped: 0,
                needed: Some(total),
            });
        }
        Ok(Decoded::Frame {
            payload: 4..total,
            consumed: total,
            skipped: 0,
        })
    }

    fn overhead(&self) -> usize {
        OVERHEAD
    }

    fn encode_parts(&self, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
        self.envelope(super::parts_len(parts))?.encode(parts, out)
    }

    fn envelope(&self, len: usize) -> Option<Envelope> {
        Envelope::new(&u32::try_from(len).ok()?.to_be_bytes(), &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        assert_eq!(
            Len32.decode(&[0, 0, 0x10, 0], &mut 0, 1024),
            Err(FrameError::TooLarge)
        );
        assert_eq!(
            Len32.decode(&[0xFF, 0xFF, 0xFF, 0xFF], &mut 0, 1 << 20),
            Err(FrameError::TooLarge)
        );
    }

    #[test]
    fn partial_frame_reports_the_size_it_needs() {
        assert_eq!(
            Len32.decode(&[0, 0, 0, 5, 1, 2], &mut 0, 1024),
            Ok(Decoded::Incomplete {
                skipped: 0,
                needed: Some(9)
            })
        );
    }

    #[test]
    fn empty_payload_is_a_frame() {
        assert_eq!(
            Len32.decode(&[0, 0, 0, 0], &mut 0, 1024),
            Ok(Decoded::Frame {
                payload: 4..4,
                consumed: 4,
                skipped: 0
            })
        );
    }
}

//! Framing: bytes <-> frames, pure and allocation-free.
//!
//! A [`Codec`] finds frames in a byte slice the driver holds and writes frames
//! into a slice it provides. It never owns a buffer, so the driver decides how
//! much memory a link may use, and a frame is handed to the application
//! straight from the receive buffer.
//!
//! Decoding works for any split of the stream: the driver appends bytes and
//! calls [`Codec::decode`] again; `scan` lets a codec resume where it stopped
//! instead of rescanning a long partial frame.

mod len32;
mod mllp;

pub use len32::Len32;
pub use mllp::{Mllp, MLLP_ACK, MLLP_NAK};

use core::ops::Range;

/// What [`Codec::decode`] found at the front of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame: its payload is `buf[payload]`; `consumed` bytes (the frame and
    /// any skipped bytes before it) can be dropped once the payload has been used.
    Frame {
        /// Where the payload sits in the buffer.
        payload: Range<usize>,
        /// Bytes to drop from the front after the payload was used.
        consumed: usize,
        /// Of `consumed`, bytes before the frame that were skipped (counted in stats).
        skipped: usize,
    },
    /// No whole frame yet: drop `skipped` leading bytes (noise between frames) and
    /// wait for more. `needed`, when known, is the total size of the frame at the front.
    Incomplete {
        /// Leading bytes to drop.
        skipped: usize,
        /// Total bytes the frame at the front needs, when the header says so.
        needed: Option<usize>,
    },
}

/// A framing violation; the link closes with the matching [`crate::CloseReason`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is larger than the configured maximum.
    TooLarge,
    /// The bytes break the framing rules.
    Bad,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::TooLarge => "frame larger than the configured maximum",
            FrameError::Bad => "bytes break the framing rules",
        })
    }
}

impl std::error::Error for FrameError {}

/// A framing: how frames are delimited on the wire.
///
/// Implementations must not panic on any input and must report
/// [`FrameError::TooLarge`] as soon as the size is known to exceed `max_frame`.
pub trait Codec: Send {
    /// Find the first frame in `buf`. `scan` is per-link state the codec may use to
    /// remember how far it searched (reset to 0 by the driver after each frame).
    fn decode(&self, buf: &[u8], scan: &mut usize, max_frame: usize)
        -> Result<Decoded, FrameError>;

    /// Bytes the framing adds around a payload of `len` bytes.
    fn overhead(&self) -> usize;

    /// False when `payload` holds bytes this framing cannot carry: its frame
    /// would be read back as a different frame, or as a framing error, so the
    /// sender refuses it instead. MLLP cannot carry `0x0B` or `0x1C`; the
    /// default (any byte) suits length-prefixed framings.
    fn can_carry(&self, payload: &[u8]) -> bool {
        let _ = payload;
        true
    }

    /// Write one frame whose payload is the concatenation of `parts` into `out`
    /// (at least the parts' length + `overhead()` bytes), returning the bytes
    /// written. Parts let a protocol header and the application payload go out
    /// in one frame without a second copy.
    fn encode_parts(&self, parts: &[&[u8]], out: &mut [u8]) -> Option<usize>;

    /// Write the frame for `payload` into `out`, returning the bytes written.
    fn encode(&self, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        self.encode_parts(&[payload], out)
    }

    /// The bytes around a payload of `len` bytes, for framings that send the
    /// payload unchanged (both built-ins do). With it the driver writes a large
    /// frame (8 KiB or more) straight from where its payload lies, in one
    /// vectored write, instead of copying it into a transmit buffer first.
    /// Prefix and suffix together are [`Codec::overhead`] bytes, and around a
    /// payload they are exactly what `encode_parts` writes. `None` (the
    /// default): the framing transforms the payload, or `len` cannot be framed;
    /// every frame then goes through [`Codec::encode_parts`].
    fn envelope(&self, len: usize) -> Option<Envelope> {
        let _ = len;
        None
    }
}

/// What a framing puts before and after a payload (see [`Codec::envelope`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    prefix: [u8; Envelope::MAX],
    prefix_len: u8,
    suffix: [u8; Envelope::MAX],
    suffix_len: u8,
}

impl Envelope {
    /// The most bytes a prefix or a suffix may hold.
    pub const MAX: usize = 8;

    /// An envelope of `prefix` and `suffix`; `None` when either is longer than
    /// [`Envelope::MAX`].
    pub fn new(prefix: &[u8], suffix: &[u8]) -> Option<Envelope> {
        let mut e = Envelope {
            prefix: [0; Self::MAX],
            prefix_len: u8::try_from(prefix.len()).ok()?,
            suffix: [0; Self::MAX],
            suffix_len: u8::try_from(suffix.len()).ok()?,
        };
        e.prefix.get_mut(..prefix.len())?.copy_from_slice(prefix);
        e.suffix.get_mut(..suffix.len())?.copy_from_slice(suffix);
        Some(e)
    }

    /// The bytes before the payload.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// The bytes after the payload.
    pub fn suffix(&self) -> &[u8] {
        &self.suffix[..usize::from(self.suffix_len)]
    }

    /// Writes prefix, `parts` and suffix into `out`, returning the bytes written
    /// (the built-in codecs' `encode_parts`).
    pub(crate) fn encode(&self, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
        let p = self.prefix();
        out.get_mut(..p.len())?.copy_from_slice(p);
        let end = p.len() + copy_parts(parts, out.get_mut(p.len()..)?)?;
        let s = self.suffix();
        out.get_mut(end..end + s.len())?.copy_from_slice(s);
        Some(end + s.len())
    }
}

/// Total length of `parts`.
pub(crate) fn parts_len(parts: &[&[u8]]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// The built-in framings, chosen at run time (the CLI's `--framing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// HL7 MLLP: `0x0B payload 0x1C 0x0D` (the default).
    #[default]
    Mllp,
    /// 4-byte big-endian length, then the payload.
    Len32,
}

impl Framing {
    /// The codec for this framing.
    pub fn codec(self) -> &'static dyn Codec {
        match self {
            Framing::Mllp => &Mllp,
            Framing::Len32 => &Len32,
        }
    }

    /// Bytes a frame adds around its payload: [`Codec::overhead`] of
    /// [`Framing::codec`], without a dynamic call.
    #[inline]
    pub(crate) const fn overhead(self) -> usize {
        match self {
            Framing::Mllp => mllp::OVERHEAD,
            Framing::Len32 => len32::OVERHEAD,
        }
    }

    /// [`Codec::decode`] of [`Framing::codec`], dispatched statically: the
    /// node decodes every frame through here (no dynamic call per frame).
    #[inline(always)]
    pub(crate) fn decode(
        self,
        buf: &[u8],
        scan: &mut usize,
        max_frame: usize,
    ) -> Result<Decoded, FrameError> {
        match self {
            Framing::Mllp => Mllp.decode(buf, scan, max_frame),
            Framing::Len32 => Len32.decode(buf, scan, max_frame),
        }
    }

    /// [`Codec::can_carry`] of [`Framing::codec`], dispatched statically.
    #[inline]
    pub(crate) fn can_carry(self, payload: &[u8]) -> bool {
        match self {
            Framing::Mllp => Mllp.can_carry(payload),
            Framing::Len32 => true,
        }
    }

    /// Writes the frame of `payload` into `out` and returns its length: the
    /// bytes [`Codec::encode`] of [`Framing::codec`] writes, with fixed-size
    /// stores and one copy instead of a dynamic call and a loop over parts
    /// (the node's per-message path). `None` (nothing written) when `out` is
    /// too small or the payload too long to frame.
    #[inline(always)]
    pub(crate) fn encode_into(self, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        match self {
            Framing::Mllp => mllp::frame_into(payload, out),
            Framing::Len32 => len32::frame_into(payload, out),
        }
    }

    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Framing::Mllp => "mllp",
            Framing::Len32 => "len32",
        }
    }
}

/// Copies `parts` one after another into `out`, returning the end offset.
pub(crate) fn copy_parts(parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    let mut at = 0usize;
    for p in parts {
        let end = at.checked_add(p.len())?;
        out.get_mut(at..end)?.copy_from_slice(p);
        at = end;
    }
    Some(at)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The crate's PRNG with the `usize` helper the property tests use.
    pub(crate) struct Rng(crate::rng::XorShift64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(crate::rng::XorShift64::new(seed))
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0.next_u64()
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.0.below(n as u64) as usize
        }
    }

    /// Feeds `stream` to `codec` in chunks of random size (as reads would deliver it)
    /// through a fixed buffer, and returns the payloads decoded, or the first error.
    pub(crate) fn decode_in_chunks(
        codec: &dyn Codec,
        stream: &[u8],
        rng: &mut Rng,
        max_chunk: usize,
        max_frame: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), FrameError> {
        decode_split(codec, stream, |_| 1 + rng.below(max_chunk), max_frame)
    }

    /// Feeds `stream` to `codec` in reads whose sizes `read_size(pos)` gives
    /// (at least 1, cut to what is left and to the buffer's room) through a
    /// fixed buffer, and returns the payloads decoded and the bytes skipped, or
    /// the first error.
    pub(crate) fn decode_split(
        codec: &dyn Codec,
        stream: &[u8],
        mut read_size: impl FnMut(usize) -> usize,
        max_frame: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), FrameError> {
        let mut buf = vec![0u8; max_frame + codec.overhead() + 64];
        let (mut start, mut end, mut scan, mut skipped_total) = (0usize, 0usize, 0usize, 0usize);
        let mut frames = Vec::new();
        let mut pos = 0;
        loop {
            // Deliver every frame the buffer holds before reading again.
            loop {
                match codec.decode(&buf[start..end], &mut scan, max_frame)? {
                    Decoded::Frame {
                        payload,
                        consumed,
                        skipped,
                    } => {
                        frames.push(buf[start + payload.start..start + payload.end].to_vec());
                        start += consumed;
                        skipped_total += skipped;
                        scan = 0;
                    }
                    Decoded::Incomplete { skipped, .. } => {
                        start += skipped;
                        skipped_total += skipped;
                        // After noise, look again at what follows (as the driver does).
                        if skipped > 0 {
                            scan = 0;
                            if start < end {
                                continue;
                            }
                        }
                        break;
                    }
                }
            }
            if pos == stream.len() {
                return Ok((frames, skipped_total));
            }
            // Compact, as the driver does when the tail is reached.
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            let room = buf.len() - end;
            assert!(room > 0, "buffer full without a frame");
            let n = read_size(pos).max(1).min(stream.len() - pos).min(room);
            buf[end..end + n].copy_from_slice(&stream[pos..pos + n]);
            end += n;
            pos += n;
        }
    }

    fn round_trip_over_random_splits(codec: &dyn Codec, payload_byte: impl Fn(&mut Rng) -> u8) {
        for seed in 0..300u64 {
            let mut rng = Rng::new(seed);
            let max_frame = 1 + rng.below(3000);
            let count = 1 + rng.below(20);
            let mut stream = vec![0u8; 0];
            let mut sent = Vec::new();
            for _ in 0..count {
                let len = rng.below(max_frame + 1);
                let p: Vec<u8> = (0..len).map(|_| payload_byte(&mut rng)).collect();
                let mut out = vec![0u8; len + codec.overhead()];
                let n = codec.encode(&p, &mut out).expect("room was sized");
                stream.extend_from_slice(&out[..n]);
                sent.push(p);
            }
            let max_chunk = [1, 7, 512, 70_000][rng.below(4)];
            let (got, skipped) = decode_in_chunks(codec, &stream, &mut rng, max_chunk, max_frame)
                .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
            assert_eq!(got, sent, "seed {seed}");
            assert_eq!(skipped, 0, "seed {seed}");
        }
    }

    #[test]
    fn mllp_round_trips_random_payloads_over_random_read_splits() {
        // MLLP payloads never hold the block bytes 0x0B / 0x1C.
        round_trip_over_random_splits(&Mllp, |r| loop {
            let b = r.next() as u8;
            if b != 0x0B && b != 0x1C {
                break b;
            }
        });
    }

    #[test]
    fn len32_round_trips_random_payloads_over_random_read_splits() {
        round_trip_over_random_splits(&Len32, |r| r.next() as u8);
    }

    #[test]
    fn an_envelope_around_a_payload_is_the_encoded_frame() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let payload: Vec<u8> = (0..rng.below(3000)).map(|_| b'a').collect();
            for codec in [Framing::Mllp.codec(), Framing::Len32.codec()] {
                let env = codec.envelope(payload.len()).expect("built-ins have one");
                let by_parts = [env.prefix(), &payload, env.suffix()].concat();
                let mut out = vec![0u8; payload.len() + codec.overhead()];
                let n = codec.encode(&payload, &mut out).expect("sized");
                assert_eq!(&out[..n], &by_parts[..]);
            }
        }
        assert_eq!(Envelope::new(&[0; 9], &[]), None, "longer than MAX");
    }

    #[test]
    fn a_framing_frames_and_decodes_as_its_codec_does() {
        // The node's per-message path uses `Framing`'s static methods; they
        // must write and find exactly what the codec's own methods do.
        let mut rng = Rng::new(11);
        for _ in 0..300 {
            let len = rng.below(600);
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let max_frame = rng.below(700);
            for framing in [Framing::Mllp, Framing::Len32] {
                let codec = framing.codec();
                assert_eq!(framing.overhead(), codec.overhead());
                assert_eq!(framing.can_carry(&payload), codec.can_carry(&payload));
                // Room for the frame, and one byte short of it.
                for room in [len + codec.overhead(), len + codec.overhead() - 1] {
                    let mut ours = vec![0xAAu8; room + 5];
                    let mut theirs = ours.clone();
                    let n = framing.encode_into(&payload, &mut ours[..room]);
                    let m = codec.encode(&payload, &mut theirs[..room]);
                    assert_eq!(n, m, "{framing:?}, {len} bytes in {room}");
                    if n.is_some() {
                        assert_eq!(ours, theirs, "{framing:?}, {len} bytes in {room}");
                    } else {
                        // (The codec may leave a partial frame; this writes nothing.)
                        assert!(ours.iter().all(|&b| b == 0xAA), "nothing written");
                    }
                }
                let mut wire = vec![0u8; len + codec.overhead()];
                let n = codec.encode(&payload, &mut wire).expect("sized");
                for cut in [n, n / 2, rng.below(n + 1)] {
                    let (mut a, mut b) = (0, 0);
                    assert_eq!(
                        framing.decode(&wire[..cut], &mut a, max_frame),
                        codec.decode(&wire[..cut], &mut b, max_frame)
                    );
                    assert_eq!(a, b);
                }
            }
        }
    }

    /// Asserts that `stream` decodes the same (frames, or the same error) in one
    /// read, in two reads split at every point, and one byte at a time.
    fn same_result_for_every_split(codec: &dyn Codec, stream: &[u8], max_frame: usize) {
        let whole = decode_split(codec, stream, |_| usize::MAX, max_frame);
        let bytewise = decode_split(codec, stream, |_| 1, max_frame);
        assert_eq!(
            bytewise, whole,
            "1-byte reads of {stream:?}, max {max_frame}"
        );
        for cut in 1..stream.len() {
            let split = decode_split(
                codec,
                stream,
                |pos| if pos < cut { cut - pos } else { usize::MAX },
                max_frame,
            );
            assert_eq!(
                split, whole,
                "split at {cut} of {stream:?}, max {max_frame}"
            );
        }
    }

    #[test]
    fn an_oversized_frame_closes_the_same_however_the_reads_split_it() {
        // The rule: a payload over max_frame is TooLarge once its
        // (max_frame + 1)-th byte is in, whatever breaks the rules later in the
        // same frame; a violation before that byte is Bad.
        let max = 8;
        let cases: &[(&[u8], Result<(), FrameError>)] = &[
            // A start block after the size was exceeded.
            (b"\x0b0123456789AB\x0bX\x1c\x0d", Err(FrameError::TooLarge)),
            // An end block without CR after the size was exceeded.
            (b"\x0b0123456789AB\x1cX", Err(FrameError::TooLarge)),
            (b"\x0b0123456789AB\x1c\x0d", Err(FrameError::TooLarge)),
            // Violations within the size.
            (b"\x0b0123\x0b0123456789AB", Err(FrameError::Bad)),
            (b"\x0b01234567\x0b", Err(FrameError::Bad)),
            (b"\x0b01234567\x1cX", Err(FrameError::Bad)),
            (b"\x0b01234567\x1c\x0d", Ok(())),
        ];
        for &(stream, want) in cases {
            let got = decode_split(&Mllp, stream, |_| usize::MAX, max).map(|_| ());
            assert_eq!(got, want, "{stream:?}");
            same_result_for_every_split(&Mllp, stream, max);
        }
        let mut big = vec![0, 0, 0, 9];
        big.extend_from_slice(b"012345678");
        same_result_for_every_split(&Len32, &big, max);
    }

    #[test]
    fn random_streams_decode_the_same_for_every_split() {
        for seed in 0..300u64 {
            let mut rng = Rng::new(seed);
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(5) {
                    0 => 0x0B,
                    1 => 0x1C,
                    2 => 0x0D,
                    3 => 0,
                    _ => b'a' + rng.below(3) as u8,
                })
                .collect();
            let max_frame = rng.below(12);
            for codec in [Framing::Mllp.codec(), Framing::Len32.codec()] {
                same_result_for_every_split(codec, &bytes, max_frame);
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_random_bytes() {
        for seed in 0..2000u64 {
            let mut rng = Rng::new(seed);
            let len = rng.below(600);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(6) {
                    0 => 0x0B,
                    1 => 0x1C,
                    2 => 0x0D,
                    _ => rng.next() as u8,
                })
                .collect();
            for codec in [Framing::Mllp.codec(), Framing::Len32.codec()] {
                let max_frame = rng.below(300);
                let _ = decode_in_chunks(codec, &bytes, &mut rng, 64, max_frame);
            }
        }
    }
}

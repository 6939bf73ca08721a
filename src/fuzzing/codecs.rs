//! Bytes on the wire: the frame codecs and the protocol message decoder.

use super::Input;
use crate::frame::{Codec, Decoded, FrameError};
use crate::wire;
use crate::Framing;

/// What decoding a stream gave: the payloads, the noise bytes skipped, and the
/// framing error that stopped it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    skipped: usize,
    error: Option<FrameError>,
}

/// Decodes `stream` held whole in memory, from a fresh scan at each frame.
fn decode_whole(codec: &dyn Codec, stream: &[u8], max_frame: usize) -> Outcome {
    let mut out = Outcome {
        frames: Vec::new(),
        skipped: 0,
        error: None,
    };
    let mut at = 0;
    loop {
        let buf = &stream[at..];
        match codec.decode(buf, &mut 0, max_frame) {
            Err(e) => {
                out.error = Some(e);
                return out;
            }
            Ok(Decoded::Frame {
                payload,
                consumed,
                skipped,
            }) => {
                assert!(payload.end <= consumed && consumed <= buf.len() && consumed > 0);
                assert!(payload.len() <= max_frame, "a frame above max_frame");
                out.frames.push(buf[payload].to_vec());
                out.skipped += skipped;
                at += consumed;
            }
            Ok(Decoded::Incomplete { skipped, .. }) => {
                assert!(skipped <= buf.len());
                out.skipped += skipped;
                at += skipped;
                if skipped == 0 {
                    return out;
                }
            }
        }
    }
}

/// Decodes `stream` the way the driver does: reads of the sizes `splits` gives
/// (cycled), into a buffer of exactly `max_frame` + overhead bytes, compacted
/// when full, with `scan` kept between reads. A buffer full without a verdict
/// breaks the codec contract (too-large frames are reported as soon as known).
fn decode_split(codec: &dyn Codec, stream: &[u8], splits: &[u8], max_frame: usize) -> Outcome {
    let mut buf = vec![0u8; max_frame + codec.overhead()];
    let mut out = Outcome {
        frames: Vec::new(),
        skipped: 0,
        error: None,
    };
    let (mut start, mut end, mut scan, mut pos) = (0usize, 0usize, 0usize, 0usize);
    let mut reads = splits.iter().cycle();
    loop {
        loop {
            match codec.decode(&buf[start..end], &mut scan, max_frame) {
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
                Ok(Decoded::Frame {
                    payload,
                    consumed,
                    skipped,
                }) => {
                    out.frames
                        .push(buf[start + payload.start..start + payload.end].to_vec());
                    out.skipped += skipped;
                    start += consumed;
                    scan = 0;
                }
                Ok(Decoded::Incomplete { skipped, needed }) => {
                    if let Some(n) = needed {
                        assert!(
                            n <= buf.len(),
                            "needs {n} bytes, more than max_frame allows"
                        );
                    }
                    out.skipped += skipped;
                    start += skipped;
                    if skipped > 0 {
                        scan = 0;
                        continue;
                    }
                    break;
                }
            }
        }
        if pos == stream.len() {
            return out;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let room = buf.len() - end;
        assert!(
            room > 0,
            "buffer of max_frame + overhead full without a verdict"
        );
        let want = reads.next().map_or(usize::MAX, |&b| usize::from(b) + 1);
        let n = want.min(room).min(stream.len() - pos);
        buf[end..end + n].copy_from_slice(&stream[pos..pos + n]);
        end += n;
        pos += n;
    }
}

/// The frame codecs: any read split decodes to the same frames as the whole
/// stream (and fails exactly when and as it does), a buffer of `max_frame` + overhead
/// always suffices, and the decoded payloads encode and decode back unchanged.
pub fn frame_codecs(data: &[u8]) {
    let mut input = Input::new(data);
    let framing = if input.bool() {
        Framing::Len32
    } else {
        Framing::Mllp
    };
    let codec = framing.codec();
    let max_frame = usize::from(input.u16() % 2048);
    let splits = input.short_bytes();
    let stream = input.rest();

    let whole = decode_whole(codec, stream, max_frame);
    let split = decode_split(codec, stream, splits, max_frame);
    // One verdict per byte stream, whatever the reads: same frames, same
    // error (an oversized frame is `TooLarge` whatever follows it).
    assert_eq!(whole.error, split.error, "{whole:?} {split:?}");
    assert_eq!(whole.frames, split.frames);
    if whole.error.is_none() {
        assert_eq!(whole.skipped, split.skipped);
    }

    // Re-encoded, the payloads are a clean stream of the same frames.
    let mut clean = Vec::new();
    for p in &whole.frames {
        let mut out = vec![0u8; p.len() + codec.overhead()];
        let n = codec
            .encode(p, &mut out)
            .expect("sized for payload and overhead");
        assert_eq!(n, out.len());
        let env = codec.envelope(p.len()).expect("built-ins have an envelope");
        assert_eq!(&out[..], &[env.prefix(), p, env.suffix()].concat()[..]);
        assert_eq!(codec.encode(p, &mut out[..n - 1]), None, "one byte short");
        clean.extend_from_slice(&out);
    }
    let again = decode_whole(codec, &clean, max_frame);
    assert_eq!(again.frames, whole.frames);
    assert_eq!((again.skipped, again.error), (0, None));
}

/// The protocol message decoder: no panic on any bytes; what decodes encodes
/// back to the same bytes (one canonical form), and into a short buffer it
/// fails cleanly. Messages built from the input survive encode and decode.
pub fn wire(data: &[u8]) {
    check_canonical(data);
    let mut input = Input::new(data);
    let payload = input.short_bytes();
    let msg = input.message(payload);
    let mut out = [0u8; 512];
    let n = wire::encode(&msg, &mut out).expect("512 bytes hold any message here");
    let back = wire::decode(&out[..n]).expect("an encoded message decodes");
    let mut again = [0u8; 512];
    let m = wire::encode(&back, &mut again).expect("fits");
    assert_eq!(&out[..n], &again[..m]);
    if let wire::Msg::Data { seq, payload } = back {
        assert_eq!(out[..wire::DATA_HEADER], wire::data_header(seq));
        assert_eq!(payload, &out[wire::DATA_HEADER..n]);
    }
}

fn check_canonical(frame: &[u8]) {
    let Ok(msg) = wire::decode(frame) else {
        return;
    };
    let mut out = vec![0u8; frame.len()];
    let n = wire::encode(&msg, &mut out).expect("a decoded message re-encodes");
    assert_eq!(&out[..n], frame);
    assert_eq!(
        wire::encode(&msg, &mut out[..n - 1]),
        None,
        "one byte short"
    );
}

//! The HL7 helpers on arbitrary messages.

use super::Input;
use crate::hl7::{self, AckCode};

/// The HL7 helpers: no panic on any bytes; `build_ack` writes the ACK the
/// plain reference builder writes, byte for byte, an ACK that
/// parses back as HL7 with MSA-1 = the code, MSA-2 = the message's MSH-10
/// and MSH-10 = `A` + it (so `reply_matches` accepts it), fails cleanly in a
/// buffer one byte short, and the file splitter yields MSH-led CR-only
/// messages and always makes progress.
pub fn hl7(data: &[u8]) {
    let mut input = Input::new(data);
    let code = [AckCode::Accept, AckCode::Error, AckCode::Reject][usize::from(input.u8() % 3)];
    let timestamp = input.short_bytes();
    let secs = input.u64();
    let msg = input.rest();

    let id = hl7::control_id(msg);
    let _ = (hl7::ack_code(msg), hl7::acked_control_id(msg));
    if id.is_some() {
        assert!(hl7::is_hl7(msg));
    }
    let _ = hl7::reply_matches(msg, msg);

    // Every byte of the ACK comes from the message, the timestamp or fixed
    // text, each at most twice (the control id): this bounds its size.
    let mut out = vec![0u8; 2 * msg.len() + timestamp.len() + 64];
    let n = hl7::build_ack(msg, code, timestamp, &mut out).expect("sized generously");
    let ack = &out[..n];
    assert_eq!(
        ack,
        super::reference_ack(msg, code, timestamp),
        "the ACK of {:?}",
        String::from_utf8_lossy(msg)
    );
    assert!(hl7::is_hl7(ack), "{:?}", String::from_utf8_lossy(ack));
    assert_eq!(hl7::ack_code(ack), Some(code.as_str().as_bytes()));
    assert_eq!(hl7::acked_control_id(ack), id, "MSA-2 = MSH-10");
    let ack_id = hl7::control_id(ack).expect("the ACK has an MSH-10");
    assert_eq!(ack_id.first(), Some(&b'A'));
    assert_eq!(&ack_id[1..], id.unwrap_or(b""));
    assert!(hl7::reply_matches(msg, ack));
    let mut short = vec![0u8; n - 1];
    assert_eq!(hl7::build_ack(msg, code, timestamp, &mut short), None);

    let mut ts = [0u8; 14];
    let t = hl7::timestamp_utc(secs, &mut ts);
    assert!(t.len() == 14 && t.iter().all(u8::is_ascii_digit));

    let mut messages = hl7::Messages::new(msg);
    let mut buf = vec![0u8; msg.len() + 2];
    let mut total = 0;
    for _ in 0..=msg.len() {
        match messages.next_into(&mut buf) {
            Ok(Some(len)) => {
                let m = &buf[..len];
                assert!(m.starts_with(b"MSH") && !m.contains(&b'\n') && m.ends_with(b"\r"));
                total += len;
                assert!(total <= 2 * msg.len(), "the splitter invents text");
            }
            Ok(None) => return,
            Err(needed) => panic!("{needed} bytes needed, more than the text plus 2"),
        }
    }
    panic!("the splitter yielded more messages than the text has bytes");
}

//! Tests of the HL7 helpers (moved unchanged from the single-file module).

use super::*;

const ADT_A01: &[u8] = b"MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|198808181126|SECURITY|ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|200708181123||\r\
PID|1||PATID1234^^^GOOD HEALTH HOSPITAL^MR~123456789^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M||C|2222 HOME STREET^^GREENSBORO^NC^27401-1020|GL|(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|987654^NC|\r\
NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE||||NK^NEXT OF KIN\r\
PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR||||ADM|A0|\r";

const ACK_AA: &[u8] =
    b"MSH|^~\\&|GHH LAB, INC.|GOOD HEALTH HOSPITAL|ADT1|GOOD HEALTH HOSPITAL|198808181127||ACK^A01|A1|P|2.5.1\rMSA|AA|MSG00001\r";

fn ack_of(msg: &[u8], code: AckCode) -> ([u8; 512], usize) {
    let mut out = [0u8; 512];
    let len = build_ack(msg, code, b"20261122233000", &mut out).expect("512 bytes suffice");
    (out, len)
}

#[test]
fn control_id_is_msh_10() {
    assert_eq!(control_id(ADT_A01), Some(&b"MSG00001"[..]));
}

#[test]
fn control_id_is_msh_10_with_custom_separator() {
    let msg = b"MSH#*~\\&#APP#FAC#RAPP#RFAC#20260101##ADT*A01#CTRL-42#P#2.3\rPID#1\r";
    assert!(is_hl7(msg));
    assert_eq!(control_id(msg), Some(&b"CTRL-42"[..]));
}

#[test]
fn control_id_ignores_trailing_whitespace_and_empty_fields() {
    assert_eq!(
        control_id(b"MSH|^~\\&|||||||ADT^A01|ID7  |P|2.5\r"),
        Some(&b"ID7"[..])
    );
    assert_eq!(control_id(b"MSH|^~\\&|||||||ADT^A01|   |P|2.5\r"), None);
    assert_eq!(control_id(b"MSH|^~\\&|||||||ADT^A01||P|2.5\r"), None);
}

#[test]
fn control_id_accepts_lf_segment_ends_and_a_last_field() {
    assert_eq!(
        control_id(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X9\nPID|1\n"),
        Some(&b"X9"[..])
    );
    assert_eq!(
        control_id(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X9"),
        Some(&b"X9"[..])
    );
}

#[test]
fn message_key_is_sender_and_control_id_from_a_message_or_its_msh() {
    let key: [&[u8]; 3] = [b"ADT1", b"GOOD HEALTH HOSPITAL", b"MSG00001"];
    assert_eq!(message_key(ADT_A01), Some(key));
    let msh = ADT_A01.split(|&b| b == b'\r').next().unwrap();
    assert_eq!(message_key(msh), Some(key));
    assert_eq!(
        message_key(b"MSH|^~\\&|||||||ADT^A01|ID7|P|2.5\r"),
        Some([&b""[..], b"", b"ID7"])
    );
    assert_eq!(message_key(b"MSH|^~\\&|A|B|||||ADT^A01||P|2.5\r"), None);
    assert_eq!(message_key(b"not hl7"), None);
}

#[test]
fn control_id_is_not_taken_from_a_later_segment() {
    // MSH ends before field 10; the PID fields must not be counted.
    assert_eq!(
        control_id(b"MSH|^~\\&|A|B\rPID|1|2|3|4|5|6|7|8|9|10\r"),
        None
    );
}

#[test]
fn non_hl7_payloads_are_rejected() {
    for msg in [
        &b""[..],
        b"MSH",
        b"MSH|",
        b"MSH|^~\\&",          // MSH-2 not ended by a separator
        b"MSH||A",             // empty MSH-2
        b"MSHOW ME THE MONEY", // letter after MSH
        b"MSH|^^|A|B",         // repeated encoding character
        b"MSH|^~\\&#%x|A",     // too many encoding characters
        b"MSH|^~\\&\r|A|B",    // MSH-2 runs into the segment end
        b" MSH|^~\\&|A",       // leading space
        b"{\"json\": true}",
    ] {
        assert!(!is_hl7(msg), "{:?}", String::from_utf8_lossy(msg));
        assert_eq!(control_id(msg), None);
        assert_eq!(ack_code(msg), None);
        assert_eq!(acked_control_id(msg), None);
    }
    assert!(is_hl7(ADT_A01));
    assert!(is_hl7(b"MSH|^|"));
    assert!(is_hl7(b"MSH|^~\\&#|A")); // v2.7 truncation character
}

#[test]
fn ack_code_and_acked_id_come_from_msa() {
    assert_eq!(ack_code(ACK_AA), Some(&b"AA"[..]));
    assert_eq!(acked_control_id(ACK_AA), Some(&b"MSG00001"[..]));
    assert_eq!(ack_code(ADT_A01), None);
    assert_eq!(acked_control_id(ADT_A01), None);
}

#[test]
fn msa_with_empty_fields_gives_none() {
    let msg = b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA||\r";
    assert_eq!(ack_code(msg), None);
    assert_eq!(acked_control_id(msg), None);
    let msg = b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|AE\r";
    assert_eq!(ack_code(msg), Some(&b"AE"[..]));
    assert_eq!(acked_control_id(msg), None);
}

#[test]
fn msa_must_use_the_message_field_separator() {
    let msg = b"MSH#^~\\&########ACK#1#P#2.5\rMSA|AA|1\rMSA#AE#1\r";
    assert_eq!(ack_code(msg), Some(&b"AE"[..]));
}

#[test]
fn matching_ack_matches() {
    assert!(reply_matches(ADT_A01, ACK_AA));
}

#[test]
fn late_ack_for_earlier_message_does_not_match() {
    let late = b"MSH|^~\\&|B|B|A|A|1||ACK^A01|A0|P|2.5.1\rMSA|AA|MSG00000\r";
    assert!(!reply_matches(ADT_A01, late));
}

#[test]
fn uncorrelatable_traffic_is_accepted() {
    assert!(reply_matches(b"hello", b"world"));
    assert!(reply_matches(b"hello", ACK_AA));
    assert!(reply_matches(ADT_A01, b"OK"));
    // An HL7 reply without MSA-2 carries nothing to compare either.
    assert!(reply_matches(
        ADT_A01,
        b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|AA\r"
    ));
}

#[test]
fn ack_code_strings_are_hl7_values() {
    assert_eq!(AckCode::Accept.as_str(), "AA");
    assert_eq!(AckCode::Error.as_str(), "AE");
    assert_eq!(AckCode::Reject.as_str(), "AR");
}

#[test]
fn ack_swaps_sender_and_receiver() {
    let (out, len) = ack_of(ADT_A01, AckCode::Accept);
    let expected: &[u8] = b"MSH|^~\\&|GHH LAB, INC.|GOOD HEALTH HOSPITAL|ADT1|GOOD HEALTH HOSPITAL|20261122233000||ACK^A01|AMSG00001|P|2.5.1\rMSA|AA|MSG00001\r";
    assert_eq!(
        out.get(..len),
        Some(expected),
        "{}",
        String::from_utf8_lossy(&out[..len])
    );
}

#[test]
fn ack_keeps_custom_separators() {
    let msg = b"MSH#*~\\&#APP#FAC#RAPP#RFAC#20260101##ADT*A04#CTRL-42#T#2.3\rPID#1\r";
    let (out, len) = ack_of(msg, AckCode::Error);
    let expected: &[u8] =
        b"MSH#*~\\&#RAPP#RFAC#APP#FAC#20261122233000##ACK*A04#ACTRL-42#T#2.3\rMSA#AE#CTRL-42\r";
    assert_eq!(out.get(..len), Some(expected));
    assert_eq!(ack_code(&out[..len]), Some(&b"AE"[..]));
    assert!(reply_matches(msg, &out[..len]));
}

#[test]
fn ack_without_trigger_event_is_plain_ack() {
    let msg = b"MSH|^~\\&|A|B|C|D|1||ORU|77|P|2.4\r";
    let (out, len) = ack_of(msg, AckCode::Accept);
    let expected: &[u8] = b"MSH|^~\\&|C|D|A|B|20261122233000||ACK|A77|P|2.4\rMSA|AA|77\r";
    assert_eq!(out.get(..len), Some(expected));
}

#[test]
fn ack_for_non_hl7_is_minimal_reject() {
    let (out, len) = ack_of(b"GET / HTTP/1.1\r\n", AckCode::Reject);
    let expected: &[u8] = b"MSH|^~\\&|||||20261122233000||ACK|A|P|2.5\rMSA|AR|\r";
    assert_eq!(out.get(..len), Some(expected));
    assert!(is_hl7(&out[..len]));
    assert_eq!(ack_code(&out[..len]), Some(&b"AR"[..]));
    assert_eq!(acked_control_id(&out[..len]), None);
}

#[test]
fn ack_skips_delimiters_in_timestamp() {
    let mut out = [0u8; 256];
    let len = build_ack(ADT_A01, AckCode::Accept, b"2026|11^22\r23", &mut out).unwrap();
    let ack = &out[..len];
    assert_eq!(
        Msh::parse(ack).map(|m| m.field(7)),
        Some(&b"2026112223"[..])
    );
    assert_eq!(acked_control_id(ack), Some(&b"MSG00001"[..]));
}

#[test]
fn ack_reports_too_small_buffer() {
    let (_, len) = ack_of(ADT_A01, AckCode::Accept);
    let mut exact = [0u8; 512];
    assert_eq!(
        build_ack(
            ADT_A01,
            AckCode::Accept,
            b"20261122233000",
            &mut exact[..len]
        ),
        Some(len)
    );
    let mut short = [0u8; 512];
    assert_eq!(
        build_ack(
            ADT_A01,
            AckCode::Accept,
            b"20261122233000",
            &mut short[..len - 1]
        ),
        None
    );
    assert_eq!(build_ack(ADT_A01, AckCode::Accept, b"", &mut []), None);
}

#[test]
fn messages_split_on_msh_lines_and_normalise_to_cr() {
    let text = b"\xEF\xBB\xBFexport of 2026-11-22\r\n\
MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r\n\
PID|1\r\n\
\r\n\
MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\n\
  \n\
PID|2\n\
PV1|1\r\
MSH|^~\\&|A|B|C|D|1||ADT^A03|3|P|2.5";
    let mut messages = Messages::new(text);
    let mut out = [0u8; 128];
    let mut got = [&b""[..]; 3];
    let expected: [&[u8]; 3] = [
        b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r",
        b"MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|2\rPV1|1\r",
        b"MSH|^~\\&|A|B|C|D|1||ADT^A03|3|P|2.5\r",
    ];
    let mut store = [[0u8; 128]; 3];
    for (slot, buf) in got.iter_mut().zip(store.iter_mut()) {
        let len = messages.next_into(&mut out).unwrap().unwrap();
        buf[..len].copy_from_slice(&out[..len]);
        *slot = &buf[..len];
    }
    assert_eq!(got, expected);
    assert_eq!(messages.next_into(&mut out), Ok(None));
    assert_eq!(messages.next_into(&mut out), Ok(None));
}

#[test]
fn messages_in_text_without_msh_is_empty() {
    let mut out = [0u8; 64];
    assert_eq!(Messages::new(b"").next_into(&mut out), Ok(None));
    assert_eq!(
        Messages::new(b"PID|1\r\nxMSH|^~\\&|\r\n").next_into(&mut out),
        Ok(None)
    );
}

#[test]
fn messages_yield_realistic_sample_unchanged() {
    let mut messages = Messages::new(ADT_A01);
    let mut out = [0u8; 1024];
    let len = messages.next_into(&mut out).unwrap().unwrap();
    assert_eq!(&out[..len], ADT_A01);
    assert_eq!(messages.next_into(&mut out), Ok(None));
}

#[test]
fn next_into_reports_needed_size_without_advancing() {
    let text = b"MSH|^~\\&|A\r\nPID|1\r\nMSH|^~\\&|B\r\n";
    let mut messages = Messages::new(text);
    let mut small = [0u8; 8];
    assert_eq!(messages.next_into(&mut small), Err(17));
    assert_eq!(messages.next_into(&mut small), Err(17));
    let mut out = [0u8; 17];
    assert_eq!(messages.next_into(&mut out), Ok(Some(17)));
    assert_eq!(&out[..], b"MSH|^~\\&|A\rPID|1\r");
    assert_eq!(messages.next_into(&mut out), Ok(Some(11)));
    assert_eq!(&out[..11], b"MSH|^~\\&|B\r");
    assert_eq!(messages.next_into(&mut small), Ok(None));
}

#[test]
fn timestamp_formats_known_dates() {
    let mut out = [0u8; 14];
    assert_eq!(timestamp_utc(0, &mut out), b"19700101000000");
    assert_eq!(timestamp_utc(951_782_400, &mut out), b"20000229000000");
    // 1795391400 = 20779 days * 86400 + 85800 s; day 20779 is 2026-11-22, 85800 s is 23:50:00.
    assert_eq!(timestamp_utc(1_795_391_400, &mut out), b"20261122235000");
    assert_eq!(timestamp_utc(4_107_542_399, &mut out), b"21000228235959");
    assert_eq!(timestamp_utc(4_107_542_400, &mut out), b"21000301000000");
    assert_eq!(timestamp_utc(253_402_300_799, &mut out), b"99991231235959");
}

#[test]
fn timestamp_clamps_beyond_year_9999() {
    let mut out = [0u8; 14];
    assert_eq!(timestamp_utc(253_402_300_800, &mut out), b"99991231235959");
    assert_eq!(timestamp_utc(u64::MAX, &mut out), b"99991231235959");
}

/// Reference: walk years and months one by one (slow, obviously right).
fn naive_timestamp(secs: u64) -> [u8; 14] {
    let mut days = secs / 86_400;
    let rem = secs % 86_400;
    let mut year = 1970u64;
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let months = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 1u64;
    for m in months {
        if days < m {
            break;
        }
        days -= m;
        month += 1;
    }
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        year,
        month,
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let mut out = [0u8; 14];
    out.copy_from_slice(text.as_bytes());
    out
}

#[test]
fn timestamp_agrees_with_naive_day_counting() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut out = [0u8; 14];
    for _ in 0..2_000 {
        let secs = rng.next() % 8_000_000_000; // up to year ~2223
        assert_eq!(
            timestamp_utc(secs, &mut out),
            &naive_timestamp(secs)[..],
            "{secs}"
        );
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fills `buf` with bytes biased towards HL7 structure and returns the used length.
fn random_input(rng: &mut XorShift, buf: &mut [u8; 256]) -> usize {
    const ALPHABET: &[u8] = b"MSHA|^~\\&\r\n#*0123456789 AE";
    let prefixes: [&[u8]; 5] = [
        b"",
        b"MSH|^~\\&|",
        b"MSH|",
        b"MSH#*~\\&#",
        b"MSH|^~\\&|A|B|C|D|1||ADT^A01|",
    ];
    let prefix = prefixes[rng.below(prefixes.len())];
    let len = prefix.len() + rng.below(buf.len() - prefix.len());
    buf[..prefix.len()].copy_from_slice(prefix);
    for b in &mut buf[prefix.len()..len] {
        *b = if rng.below(4) == 0 {
            (rng.next() >> 24) as u8
        } else {
            ALPHABET[rng.below(ALPHABET.len())]
        };
    }
    len
}

#[test]
fn no_input_makes_any_function_panic_and_acks_parse_back() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut input = [0u8; 256];
    let mut previous = [0u8; 256];
    let mut previous_len = 0;
    let mut large = [0u8; 1024];
    let mut small = [0u8; 64];
    let codes = [AckCode::Accept, AckCode::Error, AckCode::Reject];
    let mut hl7_seen = 0;
    for round in 0..20_000 {
        let len = random_input(&mut rng, &mut input);
        let msg = &input[..len];
        let before = &previous[..previous_len];

        let hl7 = is_hl7(msg);
        hl7_seen += usize::from(hl7);
        let id = control_id(msg);
        if !hl7 {
            assert_eq!(id, None);
            assert_eq!(ack_code(msg), None);
            assert_eq!(acked_control_id(msg), None);
        }
        let _ = ack_code(msg);
        let _ = reply_matches(before, msg);
        let _ = reply_matches(msg, before);

        let code = codes[round % codes.len()];
        let timestamp = &before[..before.len().min(14)];
        let big = build_ack(msg, code, timestamp, &mut large)
            .expect("1024 bytes fit any ACK of a 256-byte input");
        let ack = &large[..big];
        assert!(is_hl7(ack));
        assert_eq!(ack_code(ack), Some(code.as_str().as_bytes()));
        assert_eq!(acked_control_id(ack), id);
        assert!(reply_matches(msg, ack));
        assert!(ack.ends_with(b"\r"));

        let limit = rng.below(small.len() + 1);
        match build_ack(msg, code, timestamp, &mut small[..limit]) {
            Some(n) => {
                assert_eq!(n, big);
                assert_eq!(&small[..n], ack);
            }
            None => assert!(limit < big),
        }

        let mut messages = Messages::new(msg);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps <= len + 1, "Messages must terminate");
            let limit = rng.below(small.len() + 1);
            match messages.next_into(&mut small[..limit]) {
                Ok(None) => break,
                Ok(Some(n)) => check_message(&small[..n]),
                Err(needed) => {
                    assert!(needed > limit);
                    let n = messages.next_into(&mut large).unwrap().unwrap();
                    assert_eq!(n, needed);
                    check_message(&large[..n]);
                }
            }
        }

        let _ = timestamp_utc(rng.next(), &mut [0u8; 14]);
        previous[..len].copy_from_slice(msg);
        previous_len = len;
    }
    assert!(
        hl7_seen > 1_000,
        "fuzz inputs should often be HL7, got {hl7_seen}"
    );
}

fn check_message(message: &[u8]) {
    assert!(message.starts_with(b"MSH"));
    assert!(message.ends_with(b"\r"));
    assert!(!message.contains(&b'\n'));
    assert!(!message.windows(2).any(|w| w == b"\r\r"));
}

/// A batch file: FHS, BHS, two messages, BTS, FTS.
const BATCH: &[u8] = b"FHS|^~\\&|SRC|FAC|DST|FAC|20261122\r\n\
BHS|^~\\&|SRC|FAC|DST|FAC|20261122\r\n\
MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r\n\
PID|1\r\n\
MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\r\n\
PID|2\r\n\
BTS|2\r\n\
FTS|1\r\n";

#[test]
fn messages_of_a_batch_file_leave_the_envelope_out() {
    let mut messages = Messages::new(BATCH);
    let mut out = [0u8; 128];
    let len = messages.next_into(&mut out).unwrap().unwrap();
    assert_eq!(
        &out[..len],
        b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r"
    );
    let len = messages.next_into(&mut out).unwrap().unwrap();
    // Not "...PID|2\rBTS|2\rFTS|1\r": the trailer is not the last message's.
    assert_eq!(
        &out[..len],
        b"MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|2\r"
    );
    assert_eq!(messages.next_into(&mut out), Ok(None));
}

#[test]
fn batch_envelope_names_the_segments_present() {
    let env = BatchEnvelope::of(BATCH);
    assert!(!env.is_empty());
    assert_eq!(env.names(0..2).collect::<Vec<_>>(), ["FHS", "BHS"]);
    assert_eq!(env.names(2..4).collect::<Vec<_>>(), ["BTS", "FTS"]);
    let only_b = BatchEnvelope::of(b"BHS|^~\\&\rMSH|^~\\&|A\rBTS|1\r");
    assert_eq!(only_b.names(0..2).collect::<Vec<_>>(), ["BHS"]);
    assert!(BatchEnvelope::of(ADT_A01).is_empty());
    // A segment merely starting with the letters is not one.
    assert!(BatchEnvelope::of(b"MSH|^~\\&|A\rFTSX|1\r").is_empty());
}

#[test]
fn batch_frame_keeps_the_whole_batch() {
    let mut out = [0u8; 256];
    let len = batch_frame_into(BATCH, &mut out).unwrap();
    let want: &[u8] = b"FHS|^~\\&|SRC|FAC|DST|FAC|20261122\rBHS|^~\\&|SRC|FAC|DST|FAC|20261122\r\
MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rMSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|2\rBTS|2\rFTS|1\r";
    assert_eq!(&out[..len], want);
    assert_eq!(batch_frame_into(BATCH, &mut [0u8; 8]), Err(want.len()));
}

/// A message shaped like HL7 with the odd corners turned up: any separator
/// and encoding characters (sometimes invalid ones), fields missing, empty,
/// padded with spaces or long, CR, LF or CRLF segment ends (or none), cut
/// short anywhere, or no MSH at all.
fn odd_message(rng: &mut XorShift, out: &mut Vec<u8>) {
    const PUNCT: &[u8] = b"|^~\\&#*!$%+,-./:;<=>?@[]_{}'\"`()";
    const TEXT: &[u8] = b"AB12 ^~\\&|#*!.:- \t";
    out.clear();
    match rng.below(10) {
        0 => out.extend_from_slice(b"PID|1|"),
        1 => out.extend_from_slice(b"MSh|^~\\&|"),
        _ => out.extend_from_slice(b"MSH"),
    }
    let sep = match rng.below(4) {
        0 => PUNCT[rng.below(PUNCT.len())],
        1 => [b'A', b'\r', b' ', 0x80][rng.below(4)],
        _ => b'|',
    };
    out.push(sep);
    let enc_len = rng.below(7);
    for i in 0..enc_len {
        let c = match rng.below(8) {
            0 => PUNCT[rng.below(PUNCT.len())],
            1 => b'Z',
            _ => b"^~\\&#"[i % 5],
        };
        out.push(c);
    }
    let fields = rng.below(16);
    for _ in 0..fields {
        out.push(sep);
        let len = match rng.below(6) {
            0 => 0,
            1 => 20 + rng.below(60),
            _ => rng.below(12),
        };
        for _ in 0..len {
            let b = match rng.below(12) {
                0 => sep,
                1 => (rng.next() >> 24) as u8,
                _ => TEXT[rng.below(TEXT.len())],
            };
            out.push(b);
        }
    }
    let end: &[u8] = [&b"\r"[..], b"\n", b"\r\n", b""][rng.below(4)];
    out.extend_from_slice(end);
    if rng.below(2) == 0 {
        out.extend_from_slice(b"EVN|A01|20261201\rPID|1||X\r");
    }
    if rng.below(5) == 0 {
        let cut = rng.below(out.len() + 1);
        out.truncate(cut);
    }
}

#[test]
fn acks_are_byte_identical_to_the_plain_reference_builder() {
    let mut rng = XorShift(0x5DEE_CE66_D1CE_4E5B);
    let mut msg = Vec::new();
    let mut out = [0u8; 1024];
    let codes = [AckCode::Accept, AckCode::Error, AckCode::Reject];
    let stamps: [&[u8]; 5] = [
        b"20261201120000",
        b"",
        b"2026|12^01\r1",
        b"7",
        b"2026120112000012345",
    ];
    let (mut hl7_seen, mut rounds) = (0, 0);
    for round in 0..50_000 {
        odd_message(&mut rng, &mut msg);
        let code = codes[round % codes.len()];
        let stamp = stamps[rng.below(stamps.len())];
        let want = crate::fuzzing::reference_ack(&msg, code, stamp);
        let n = build_ack(&msg, code, stamp, &mut out).expect("1024 bytes fit it");
        assert_eq!(
            String::from_utf8_lossy(&out[..n]),
            String::from_utf8_lossy(&want),
            "the ACK of {:?}",
            String::from_utf8_lossy(&msg)
        );
        assert_eq!(&out[..n], &want[..]);
        // Exactly sized and one byte short: the same bytes, then a clean refusal.
        let mut exact = vec![0u8; n];
        assert_eq!(build_ack(&msg, code, stamp, &mut exact), Some(n));
        assert_eq!(exact, want);
        assert_eq!(build_ack(&msg, code, stamp, &mut exact[..n - 1]), None);
        // The parsed view agrees with splitting the segment.
        if let Some(m) = Msh::parse(&msg) {
            hl7_seen += 1;
            assert_eq!(m.control_id(), control_id(&msg));
            assert_eq!(
                message_key(&msg),
                m.control_id().map(|id| [m.field(3), m.field(4), id])
            );
        }
        rounds += 1;
    }
    assert!(
        hl7_seen > rounds / 5 && hl7_seen < rounds,
        "both HL7 and not: {hl7_seen} of {rounds}"
    );
}

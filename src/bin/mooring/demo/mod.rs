//! `mooring demo`: the problems of the seeds, shown and checked on loopback in one
//! process, in a few seconds.
//!
//! Each scenario runs a listener ([`Responder`], exactly what `mooring listen`
//! runs) on a thread of its own, because a [`Client`] request blocks while it
//! polls its own node; the clients (a mooring [`Client`] or a raw `TcpStream`
//! playing a misbehaving peer) run on the main thread. The server thread reports
//! what it sees over a channel, and every check waits for the event it expects
//! with a deadline: nothing sleeps to "let things settle". The only waits on the
//! clock are where time passing is the point (idle eviction, stale recovery,
//! liveness).
//!
//! Lines start with `scenario=<name>`; the last one is
//! `event=summary scenarios=7 ok=N failed=M` (6 without the `demo-tls`
//! feature), and the exit status is 0 only if
//! every scenario behaved as expected.

/// Bad input closes only the offending link.
mod bad_input;
/// The scenarios' listener thread, clients and checks.
mod harness;
/// Liveness: silent and mute peers are closed within the bound.
mod liveness;
/// Seed 000's pairings, idle eviction and stale recovery.
mod policies;
/// Reliable sessions across cut links.
mod sessions;
/// TLS: mutual authentication, an allow-list, a refusal by name.
#[cfg(feature = "demo-tls")]
mod tls;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::line::{escape, Line};

/// Five realistic messages (admit, update, lab results, discharge, radiology
/// result), MSH-10 `MSG00001`..`MSG00005`, segments ended by CR as on the wire.
pub(super) const MESSAGES: [&str; 5] = [
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260114083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|20260114083000\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F|||123 MAIN ST^^SPRINGFIELD^IL^62701||(217)555-0134\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED||||ADM|||||V1001|||||||||||||||||||||||||20260114083000\r",
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260114091500||ADT^A08^ADT_A01|MSG00002|P|2.5.1\r\
EVN|A08|20260114091500\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F|||125 MAIN ST^^SPRINGFIELD^IL^62701||(217)555-0199\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED\r",
    "MSH|^~\\&|LAB|GOODHEALTH|EHR|GOODHEALTH|20260114103000||ORU^R01^ORU_R01|MSG00003|P|2.5.1\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
OBR|1|ORD5551|LAB7781|80048^BASIC METABOLIC PANEL^CPT|||20260114094500\r\
OBX|1|NM|2345-7^GLUCOSE^LN||98|mg/dL|70-99|N|||F\r\
OBX|2|NM|2951-2^SODIUM^LN||140|mmol/L|136-145|N|||F\r\
OBX|3|NM|2823-3^POTASSIUM^LN||4.1|mmol/L|3.5-5.1|N|||F\r",
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260116140000||ADT^A03^ADT_A03|MSG00004|P|2.5.1\r\
EVN|A03|20260116140000\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED||||ADM|||||V1001|||||||||||||||||01||||||||20260114083000|20260116140000\r",
    "MSH|^~\\&|RIS|GOODHEALTH|EHR|GOODHEALTH|20260115120000||ORU^R01^ORU_R01|MSG00005|P|2.5.1\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
OBR|1|ORD5560|RAD2210|71046^XR CHEST 2 VIEWS^CPT|||20260115113000\r\
OBX|1|TX|71046^XR CHEST 2 VIEWS^CPT||No acute cardiopulmonary abnormality.||||||F\r",
];

/// How long any expected event may take. Loopback answers in microseconds; this
/// bounds the demo when something is broken instead of hanging.
pub(super) const EXPECT_WITHIN: Duration = Duration::from_secs(2);

/// A scenario's failure, explained.
pub(super) type Outcome = Result<(), String>;

/// A named scenario.
type Scenario = (&'static str, fn() -> Outcome);

/// Runs every scenario and prints the summary.
pub fn run() -> ExitCode {
    let scenarios: &[Scenario] = &[
        ("pairings", policies::pairings),
        ("idle", policies::idle),
        ("stale", policies::stale),
        ("bad-input", bad_input::bad_input),
        ("liveness", liveness::liveness),
        ("sessions", sessions::sessions),
        // Without `demo-tls` (e.g. --no-default-features) there is no
        // certificate generator in the binary: six scenarios.
        #[cfg(feature = "demo-tls")]
        ("tls", tls::tls),
    ];
    let started = Instant::now();
    let mut ok = 0;
    for &(name, scenario) in scenarios {
        let result = scenario();
        let l = Line::new("scenario", name);
        match result {
            Ok(()) => {
                ok += 1;
                l.kv("result", "ok").print();
            }
            Err(why) => {
                log::error!("scenario {name}: {why}");
                l.kv("result", "failed")
                    .kv("why", escape(why.as_bytes()))
                    .print();
            }
        }
    }
    let failed = scenarios.len() - ok;
    Line::new("event", "summary")
        .kv("scenarios", scenarios.len())
        .kv("ok", ok)
        .kv("failed", failed)
        .print();
    log::debug!("demo took {:?}", started.elapsed());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

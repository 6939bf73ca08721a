//! The relay's plain data in the header: its configuration, events and stats
//! (`#[repr(C)]` structs and `#[repr(u32)]` enums the C caller owns).

use core::ffi::c_char;

use super::types::MOORING_ADDR_MAX;

/// When a device gets its ACK (`mooring_relay_config.ack_after`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_ack_after {
    /// `QUEUED` with a spool (a directory, or the in-memory queue asked for
    /// by `MOORING_SPOOL_KIND_MEMORY`), else `UPSTREAM`: never an AA a crash can
    /// lose unless the in-memory queue was chosen (default; as `mooring relay`).
    Default = 0,
    /// Once the message is queued: with a spool directory, after the sync
    /// that covers it ("on disk"); with the in-memory queue, lost if the
    /// process dies.
    Queued = 1,
    /// Once the upstream acknowledged it.
    Upstream = 2,
}

/// Where the relay keeps its queue (`mooring_relay_config.spool`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_spool_kind {
    /// In memory; the default ACK waits for the upstream (default).
    None = 0,
    /// In memory, asked for by name: the default ACK is sent once queued, and
    /// a crash of the process loses what was acknowledged and not forwarded.
    Memory = 1,
    /// A durable spool in `spool_dir`: recovered and forwarded first on start.
    Directory = 2,
}

/// When the spool calls `fdatasync` (`mooring_relay_config.fsync`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_fsync {
    /// Once per poll for everything accepted in it, before their AAs (default).
    Batch = 0,
    /// At most every `fsync_interval_ms`: a power cut can lose up to one
    /// interval of acknowledged messages.
    Interval = 1,
    /// Never at commits (the OS writes back when it likes): a power cut can
    /// lose acknowledged messages.
    Off = 2,
}

/// What a `mooring_relay_event` reports; one kind per `RelayEvent` of the
/// Rust API, in its order.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_relay_event_kind {
    /// A device connected: `peer`.
    DeviceConnected = 1,
    /// A device's message arrived (reported before what is done with it):
    /// `peer`, `bytes`, `id` (NULL when it has no MSH-10).
    DeviceMessage = 2,
    /// A device message was answered MSA|AR and not queued: `peer`, `bytes`,
    /// `refusal`, `detail` its name.
    Refused = 3,
    /// A resend of a message the relay already has, not forwarded again:
    /// `peer`, `id`, `pending` (1: it still awaits the upstream, and its ACK
    /// now goes to this device link).
    Duplicate = 4,
    /// The queue is full: the device got MSA|AR. `peer`, `id`, `queued`.
    QueueFull = 5,
    /// A message was queued for the upstream: `peer`, `id`, `seq`.
    Queued = 6,
    /// Ack-after upstream: no upstream ACK within the response timeout; the
    /// device got `ack` (AR), the message stays queued. `peer`, `id`, `seq`.
    ReplyTimeout = 7,
    /// A device link closed: `peer`, `reason`, `peer_reason`, `detail`.
    DeviceClosed = 8,
    /// A device connection was refused by policy: `peer`, `reason`, `detail`.
    Rejected = 9,
    /// A connect attempt (raw) or a new session (mooring) starts: `attempt`.
    UpstreamConnecting = 10,
    /// The upstream is up: `session` (1 for a mooring session), `resumed`,
    /// `replaying`.
    UpstreamConnected = 11,
    /// The raw link closed or the session ended: what was in flight is in
    /// doubt (`in_doubt_first`..`in_doubt_last`, 0 when none), `resent` or
    /// `failed`. `lost` says why, with `reason` or `session_end`; `detail`
    /// names it.
    UpstreamLost = 12,
    /// Mooring: the session's link dropped and the session resumes by
    /// itself: `reason`, `unacked` (-1 when not known), `detail`.
    UpstreamLinkLost = 13,
    /// The next connect attempt waits `delay_ms`: `attempt`, `reason` of the
    /// last failure when known, `detail`.
    UpstreamReconnecting = 14,
    /// A message was written upstream: `id`, `seq`, `attempt`.
    Forwarded = 15,
    /// The upstream acknowledged a message: `id`, `seq`, `elapsed_ms` since
    /// it arrived, `ack` (raw: the upstream's MSA-1; NULL for a session).
    Acked = 16,
    /// A raw upstream frame that answers nothing in flight: `id` its MSA-2,
    /// `ack` its MSA-1 (each NULL when missing).
    UnexpectedReply = 17,
    /// Mooring: a reply the upstream sent through the session: `id`, `ack`.
    UpstreamReply = 18,
    /// A message ran out of retries: `id`, `seq`, `attempt` (times written),
    /// `acked_to_device` (1: the device had AA already, the message is lost).
    Failed = 19,
    /// The spool was opened and recovered (once, at the first poll):
    /// `detail` its directory, `size`, `recovered`, `corrupt`.
    SpoolOpened = 20,
    /// The spool's pressure changed: `pressure`, `used` bytes, `records`;
    /// `detail` the state's name, or the disk error's text.
    SpoolPressure = 21,
    /// A device's message could not be made durable; the device got MSA|AR
    /// (its resend is a new message): `peer`, `id`, `pressure`, `detail`.
    SpoolRefused = 22,
    /// A raw upstream's ACK (in a window) names another message than the
    /// oldest awaited: the link closes and what was in flight is resent.
    /// `id` the ACK's MSA-2, `detail` the MSH-10 awaited.
    ReplyOutOfOrder = 23,
    /// While on a backup: a probe of the primary starts: `peer` the primary,
    /// `attempt`.
    PrimaryProbe = 24,
    /// While on a backup: the primary answered a probe: `peer` the primary.
    PrimaryAnswered = 25,
    /// The relay moved to another upstream: `peer` the one now active,
    /// `active` its position in the list (0: the primary), `attempt` the
    /// failed attempts that caused it (0 when returning to the primary),
    /// `detail` why (`failover` or `primary_back`).
    UpstreamSwitched = 26,
    /// TLS: a link's handshake completed: `peer`, `upstream` (1: the
    /// upstream's link, 0: a device's), `ack` the version (`TLSv1_3`), `id`
    /// the suite, `detail` the peer's identity (NULL when it sent no
    /// certificate).
    Tls = 27,
    /// TLS: a link failed for a TLS reason (its close follows): `peer`,
    /// `upstream`, `reason` the `MOORING_CLOSE_REASON_TLS_*` reason, `detail`
    /// rustls's text.
    TlsFailed = 28,
    /// Spool and mooring upstream, at the first session after a start:
    /// `resumed` (1: the session kept in the spool was resumed, exactly
    /// once), `possible_duplicates` (a new session: recovered messages the
    /// upstream may get twice).
    SpoolSession = 29,
}

/// Why a device message was refused (`mooring_relay_event.refusal`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_relay_refusal {
    /// Not a REFUSED event.
    None = 0,
    /// The payload is not HL7 (no MSH segment).
    NotHl7 = 1,
    /// HL7 without an MSH-10: it could not be deduplicated or matched.
    NoControlId = 2,
}

/// Why the upstream lost what it had in flight (`mooring_relay_event.lost`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_relay_lost {
    /// Not an UPSTREAM_LOST event.
    None = 0,
    /// The raw link closed: `reason`.
    Link = 1,
    /// The mooring session ended: `session_end`.
    Session = 2,
    /// The upstream speaks the mooring protocol but keeps no sessions: it
    /// cannot work until it is started with sessions on.
    NoSessions = 3,
    /// A raw upstream acknowledged out of order (see REPLY_OUT_OF_ORDER).
    ReplyOutOfOrder = 4,
    /// The relay moved to another upstream with messages in doubt.
    Failover = 5,
}

/// The spool's pressure (`mooring_relay_event.pressure`, `mooring_relay_stats.spool_pressure`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_spool_pressure {
    /// No spool, or not a spool event.
    None = 0,
    /// Messages are accepted and committed.
    Ok = 1,
    /// The spool holds as much undelivered data as it can: devices get MSA|AR
    /// until the upstream acknowledges some.
    Full = 2,
    /// Writing or syncing failed (`ENOSPC`, `EIO`): devices get MSA|AR; the
    /// relay retries and recovers by itself.
    DiskError = 3,
    /// Recovered messages go first: new messages get MSA|AR until they are queued.
    Recovering = 4,
}

/// A relay: its device listener, upstream and spool, with defaults from
/// `mooring_relay_config_default`. Strings are read during `mooring_relay_new`
/// only. Durations are milliseconds; 0 is invalid unless "0 = off" is stated.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mooring_relay_config {
    /// Where devices connect: `"ip:port"` (port 0: any; read it back with
    /// `mooring_relay_local_addr`). Default NULL: required.
    pub listen: *const c_char,
    /// A `mooring_framing` value, for device links and a raw upstream.
    /// Default `MOORING_FRAMING_MLLP`.
    pub framing: u32,
    /// Largest message taken from a device or the upstream, in bytes. Default 1 MiB.
    pub max_frame: u32,
    /// Devices connected at once. Default 10.
    pub max_connections: u32,
    /// Devices one address may connect at once; 0 = no limit (default).
    pub max_connections_per_ip: u32,
    /// A link whose queued bytes make no progress this long closes. Default 10000.
    pub write_timeout_ms: u32,
    /// Where messages go: `"ip:port"`. Default NULL: required.
    pub upstream: *const c_char,
    /// A `mooring_protocol` value for the upstream: raw (MLLP/len32, one
    /// message in flight, matched by MSA-2) or mooring (a reliable session).
    /// Default `MOORING_PROTOCOL_RAW`.
    pub protocol: u32,
    /// Mooring upstream: send PING after this long without sending; 0 = off (default).
    pub heartbeat_interval_ms: u32,
    /// Mooring upstream: dead after this long without receiving (> interval); 0 = off.
    pub heartbeat_timeout_ms: u32,
    /// A `mooring_ack_after` value. Default `MOORING_ACK_AFTER_DEFAULT`.
    pub ack_after: u32,
    /// Messages held for the upstream; a device message arriving when it is
    /// full gets MSA|AR. Default 1000.
    pub queue: u32,
    /// Resends of a message in doubt before it fails. Default 3.
    pub retries: u32,
    /// Raw: the upstream's ACK must come within this; ack-after upstream: a
    /// device waiting this long gets MSA|AR. Default 10000.
    pub response_timeout_ms: u32,
    /// Each connect attempt. Default 5000.
    pub connect_timeout_ms: u32,
    /// The first reconnect waits up to this (full jitter). Default 1000.
    pub reconnect_min_ms: u32,
    /// The reconnect wait doubles up to this. Default 30000.
    pub reconnect_max_ms: u32,
    /// Messages remembered to spot resends (same MSH-3, MSH-4, MSH-10). Default 10000.
    pub dedup_window: u32,
    /// Seeds the reconnect jitter. Default 0.
    pub seed: u64,
    /// A `mooring_spool_kind` value. Default `MOORING_SPOOL_KIND_NONE`.
    pub spool: u32,
    /// `MOORING_SPOOL_KIND_DIRECTORY`: the spool directory (created if
    /// missing, locked while the relay runs). Default NULL.
    pub spool_dir: *const c_char,
    /// `MOORING_SPOOL_KIND_DIRECTORY`: total bytes on disk, preallocated.
    /// Default 256 MiB.
    pub spool_size: u64,
    /// `MOORING_SPOOL_KIND_DIRECTORY`: a `mooring_fsync` value. Default
    /// `MOORING_FSYNC_BATCH`.
    pub fsync: u32,
    /// `MOORING_FSYNC_INTERVAL`: the interval. Default 1000.
    pub fsync_interval_ms: u32,
    /// Events kept for `mooring_relay_next_event` between polls; more are
    /// counted in `mooring_relay_stats.events_dropped`. Default 1024.
    pub event_queue: u32,
    /// Bytes kept for those events' ids and texts. Default 65536.
    pub event_bytes: u32,
    /// Upstreams to fail over to after `upstream`, in order: a
    /// comma-separated list of `ip:port`. NULL or `""`: none (default).
    pub backup_upstreams: *const c_char,
    /// Failed attempts on the active upstream before the relay moves to the
    /// next (0 counts as 1). Default 3.
    pub failover_after: u32,
    /// Raw upstream: messages written before their ACKs arrive (ACKs matched
    /// in order). Default 1; 0 counts as 1.
    pub upstream_window: u32,
    /// TLS on device links: the certificate chain, a PEM file's path or the
    /// PEM text itself (set together with `tls_key`). NULL: plain TCP (default).
    pub tls_cert: *const c_char,
    /// The device side's private key (path or PEM text). Default NULL.
    pub tls_key: *const c_char,
    /// A `mooring_tls_client_auth` value: device certificates. Default
    /// `MOORING_TLS_CLIENT_AUTH_NONE`.
    pub tls_client_auth: u32,
    /// CA certificates that device certificates must chain to (path or PEM
    /// text). Default NULL.
    pub tls_client_ca: *const c_char,
    /// Comma-separated device identities allowed (certificate names). NULL or
    /// `""`: any verified device (default).
    pub tls_allow_peers: *const c_char,
    /// TLS on the upstream link: the CA certificates the upstream's
    /// certificate must chain to (path or PEM text). Set: TLS on. NULL: plain
    /// TCP (default).
    pub upstream_tls_ca: *const c_char,
    /// The name the upstream's certificate must carry. NULL: the upstream's
    /// IP address (default).
    pub upstream_tls_server_name: *const c_char,
    /// The relay's client certificate for the upstream (path or PEM text).
    /// Default NULL.
    pub upstream_tls_client_cert: *const c_char,
    /// Its private key (path or PEM text). Default NULL.
    pub upstream_tls_client_key: *const c_char,
    /// Each TLS handshake (device side and upstream) must finish within this.
    /// Default 10000.
    pub tls_handshake_timeout_ms: u32,
}

/// One relay event, filled by `mooring_relay_next_event`. Fields that do not
/// apply to `kind` are zero, NULL or `""`.
///
/// `id`, `ack` and `detail` are bytes (not NUL-terminated; `detail` is
/// UTF-8) owned by the relay: valid until the next `mooring_relay_poll` or
/// `mooring_relay_free`. Copy them to keep them longer.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mooring_relay_event {
    /// What happened.
    pub kind: mooring_relay_event_kind,
    /// Device events: the device as NUL-terminated `ip:port`.
    pub peer: [c_char; MOORING_ADDR_MAX],
    /// The message's MSH-10 (replies: their MSA-2); NULL when none.
    pub id: *const u8,
    /// Length of `id`.
    pub id_len: usize,
    /// An MSA-1 (`"AA"`, `"AR"`, ...); NULL when none.
    pub ack: *const u8,
    /// Length of `ack`.
    pub ack_len: usize,
    /// Text: the name of the reason, refusal or pressure (as `mooring relay`
    /// prints it), the spool directory, or a disk error; NULL when none.
    pub detail: *const u8,
    /// Length of `detail`.
    pub detail_len: usize,
    /// DEVICE_MESSAGE, REFUSED: payload size in bytes.
    pub bytes: u64,
    /// The relay's number of the message (from 1).
    pub seq: u64,
    /// A `mooring_close_reason` value (`MOORING_CLOSE_REASON_NONE` when none).
    pub reason: u32,
    /// DEVICE_CLOSED: the `mooring_close_reason` the peer claimed.
    pub peer_reason: u32,
    /// REFUSED: a `mooring_relay_refusal` value.
    pub refusal: u32,
    /// UPSTREAM_LOST: a `mooring_relay_lost` value.
    pub lost: u32,
    /// UPSTREAM_LOST by a session's end: a `mooring_session_end` value.
    pub session_end: u32,
    /// SPOOL_PRESSURE, SPOOL_REFUSED: a `mooring_spool_pressure` value.
    pub pressure: u32,
    /// UPSTREAM_CONNECTING, UPSTREAM_RECONNECTING: the attempt; FORWARDED:
    /// times written so far; FAILED: times written.
    pub attempt: u32,
    /// UPSTREAM_RECONNECTING: the wait, in ms.
    pub delay_ms: u32,
    /// ACKED: ms since the relay received the message.
    pub elapsed_ms: u64,
    /// DUPLICATE: 1 when the message still awaits the upstream.
    pub pending: u32,
    /// FAILED: 1 when the device had AA already (the message is lost).
    pub acked_to_device: u32,
    /// UPSTREAM_CONNECTED: 1 for a mooring session, 0 for a raw link.
    pub session: u32,
    /// UPSTREAM_CONNECTED: 1 when the session resumed.
    pub resumed: u32,
    /// UPSTREAM_CONNECTED: messages the session replays.
    pub replaying: u64,
    /// QUEUE_FULL: messages queued.
    pub queued: u64,
    /// UPSTREAM_LOST: the first and last seq left in doubt (0 when none).
    pub in_doubt_first: u64,
    /// See `in_doubt_first`.
    pub in_doubt_last: u64,
    /// UPSTREAM_LOST: in-doubt messages to be resent.
    pub resent: u64,
    /// UPSTREAM_LOST: in-doubt messages out of retries.
    pub failed: u64,
    /// UPSTREAM_LINK_LOST: messages handed to the session and not yet
    /// acknowledged; -1 when not known.
    pub unacked: i64,
    /// SPOOL_OPENED: the spool's size on disk, in bytes.
    pub size: u64,
    /// SPOOL_OPENED: undelivered messages recovered (forwarded first).
    pub recovered: u64,
    /// SPOOL_OPENED: damaged records skipped (never delivered).
    pub corrupt: u64,
    /// SPOOL_PRESSURE: bytes in use in the spool.
    pub used: u64,
    /// SPOOL_PRESSURE: undelivered messages in the spool.
    pub records: u64,
    /// UPSTREAM_SWITCHED: the active upstream's position (0: the primary).
    pub active: u32,
    /// TLS, TLS_FAILED: 1 for the upstream's link, 0 for a device's.
    pub upstream: u32,
    /// SPOOL_SESSION: recovered messages the upstream may get twice.
    pub possible_duplicates: u64,
}

/// A relay's numbers, filled by `mooring_relay_get_stats`. Counters count
/// since `mooring_relay_new`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mooring_relay_stats {
    /// Messages queued for the upstream now (not yet acknowledged or failed).
    pub queued: u64,
    /// Devices connected now.
    pub devices: u64,
    /// 1 while the upstream link (or session) is up.
    pub upstream_connected: u32,
    /// Device messages received.
    pub received: u64,
    /// Resends answered without forwarding again.
    pub duplicates: u64,
    /// Device messages answered MSA|AR without being kept (refused, queue
    /// full, spool refused).
    pub refused: u64,
    /// Messages accepted into the queue.
    pub accepted: u64,
    /// Writes upstream (a resend counts again).
    pub forwarded: u64,
    /// Messages the upstream acknowledged.
    pub acked: u64,
    /// Messages out of retries.
    pub failed: u64,
    /// Devices that got MSA|AR after waiting for the upstream too long.
    pub reply_timeouts: u64,
    /// Of `refused`: not HL7.
    pub refused_not_hl7: u64,
    /// Of `refused`: HL7 without an MSH-10.
    pub refused_no_control_id: u64,
    /// Of `refused`: the queue was full.
    pub queue_full: u64,
    /// Of `refused`: the spool could not make it durable (full or failing disk).
    pub spool_refused: u64,
    /// Raw upstream ACKs by MSA-1: `AA`.
    pub acks_aa: u64,
    /// Raw upstream ACKs: `AE`.
    pub acks_ae: u64,
    /// Raw upstream ACKs: `AR`.
    pub acks_ar: u64,
    /// Upstream replies that matched nothing in flight.
    pub unexpected_replies: u64,
    /// Times the upstream came up.
    pub upstream_connects: u64,
    /// Times the upstream link or session was lost.
    pub upstream_losses: u64,
    /// Reconnect attempts scheduled.
    pub upstream_reconnects: u64,
    /// Events not kept for `mooring_relay_next_event` (its queue or bytes
    /// were full); the counters above include them.
    pub events_dropped: u64,
    /// 1 with a spool directory; the `spool_*` fields are 0 without one.
    pub spool: u32,
    /// A `mooring_spool_pressure` value.
    pub spool_pressure: u32,
    /// Bytes in the spool's segments holding undelivered messages.
    pub spool_bytes_used: u64,
    /// The spool's total bytes on disk.
    pub spool_bytes_total: u64,
    /// Undelivered messages (records) in the spool.
    pub spool_records: u64,
    /// Age of the oldest undelivered message in ms (0 when none; a message
    /// recovered from an earlier run counts from this run's start).
    pub spool_oldest_age_ms: u64,
    /// Recovery at start: undelivered messages recovered.
    pub spool_recovered: u64,
    /// Recovery at start: damaged records skipped.
    pub spool_corrupt: u64,
    /// Recovery at start: undelivered messages beyond the index (lost).
    pub spool_unindexed: u64,
    /// Recovery at start: torn bytes truncated at the tail.
    pub spool_truncated_bytes: u64,
    /// Moves to the next upstream after `failover_after` failed attempts
    /// (`MOORING_RELAY_EVENT_UPSTREAM_SWITCHED`, detail `failover`).
    pub upstream_switches_failover: u64,
    /// Returns to the primary once it answered a probe again.
    pub upstream_switches_primary_back: u64,
}

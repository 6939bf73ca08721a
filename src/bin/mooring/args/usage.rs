//! The usage texts: `mooring --help` and each subcommand's `--help`.

/// `mooring --version`: the name and the crate's version.
pub const VERSION: &str = concat!("mooring ", env!("CARGO_PKG_VERSION"), "\n");

/// The top-level usage, printed by `mooring --help`.
pub const USAGE: &str = "\
mooring: keeps TCP message links (HL7 MLLP, len32) healthy

Usage:
  mooring listen [--bind ADDR] [flags]     serve, print one line per event
  mooring send ADDR [FILE|-] [flags]       send HL7 messages, print one line per reply
  mooring relay --listen ADDR --upstream ADDR [flags]
                                           forward devices' messages upstream, in order
  mooring demo                             run the built-in scenarios on loopback

Global flags (anywhere on the line):
  -v, -vv    log debug / trace to stderr      -q   log errors only (default: warnings)
  -h, --help this text (or `mooring listen --help`, `mooring send --help`,
             `mooring relay --help`)
  -V, --version
             print `mooring VERSION` and exit (before a subcommand)

Service flags (after the subcommand; every subcommand):
  --config FILE           the same flags, one `flag = value` per line (long
                          names without --; repeatable flags repeat the line;
                          switches bare or = true/false; # comments); the
                          command line overrides the file
  --shutdown-timeout DUR  on SIGTERM/SIGINT, how long finishing what is in
                          flight may take before exiting anyway (default 5s)
  --check-config          parse the flags and the config file, print
                          config=ok, run nothing
  systemd: with NOTIFY_SOCKET set, READY=1 once listening, STOPPING=1 on a
  signal, WATCHDOG=1 every WATCHDOG_USEC / 2.

Output: one line per event on stdout, space-separated key=value pairs.
Exit status: 0 success, 1 run-time failure, 2 bad command line or configuration,
3 (send) every message was answered but at least one was rejected (AR, AE,
CR or CE).
";

/// The liveness flags' help, shared by `listen`, `send` (and `relay` by reference).
macro_rules! liveness_help {
    () => {
        "Liveness (notice a dead peer within a bound; see the README):
  --protocol raw|mooring  raw: payloads as they are, any HL7 peer (default);
                          mooring: the mooring session protocol, both ends
  --heartbeat DUR         mooring: PING after DUR without sending (default off)
  --heartbeat-timeout DUR mooring: dead after DUR without a byte (default 3 x
                          --heartbeat)
  --keepalive-message FILE
                          raw peers: send FILE's first HL7 message (or its bytes
                          as they are, if it holds none; at most 1024) on a link
                          that received nothing for --keepalive-every
  --keepalive-every DUR   with --keepalive-message (required with it)
  --keepalive-timeout DUR some frame must come back within DUR (default: none
                          expected)
  --tcp-keepalive IDLE,INTVL,COUNT
                          OS keepalive, e.g. 45s,10s,3 (default off)
  --tcp-user-timeout DUR  TCP_USER_TIMEOUT: the OS closes a link whose written
                          data stays unacknowledged for DUR (default off)
  --handshake-timeout DUR mooring: the handshake must complete within DUR
                          (default 10s)
  --frame-timeout DUR     slow peers: a frame must be complete DUR after its
                          first byte, plus 1 s per --frame-min-rate bytes of it
                          received, at most 10m in all; else the link closes
                          with FrameTimeout (default 30s; 0 or off: no limit)
  --frame-min-rate N      bytes per second that buy a frame more time
                          (default 500; 0: a fixed --frame-timeout)
"
    };
}

/// What the event=liveness line says, shared by `listen` and `send`.
macro_rules! liveness_line_help {
    () => {
        "\
The event=liveness line (printed at start) shows the settings as integer ms
and detection_bound: the worst-case time to notice a silently dead peer with
the mechanisms that are on (heartbeat, keep-alive message with a timeout, OS
keepalive), or none when nothing bounds it. TCP_USER_TIMEOUT only bounds links
with unacknowledged data: it counts together with a keep-alive message (which
is such data), as every + user timeout + 1 s of retransmit slack.
"
    };
}

/// Usage of `mooring listen`.
pub const LISTEN_USAGE: &str = concat!(
    "\
Usage: mooring listen [flags]

  --bind ADDR             address to listen on (default 127.0.0.1:2575; port 0 picks one)
  --framing mllp|len32    framing (default mllp)
  --max-conns N           connections served at once; more are rejected (default 10)
  --max-conns-per-ip N    links one peer address may hold at once; more are
                          rejected (TooManyConnectionsFromPeer); 0 or off: no
                          limit (default off)
  --idle-timeout DUR      close a link that received nothing for DUR (default off)
  --stale-recovery DUR    with --max-conns 1: a newcomer replaces a link idle for DUR
  --close-after-reply     close each link once its first message is answered
  --allow IP_OR_CIDR      accept only these peers (repeatable; default everyone)
  --reply hl7-ack|echo|none
                          hl7-ack: HL7 ACK (AA; AR for a payload that is not
                          HL7, or for HL7 without MSH-10, with MSA-3 saying so);
                          echo: the payload back; none: no reply (default hl7-ack)
  --max-frame BYTES       largest frame accepted (default 1048576)
  --write-timeout DUR     close a link whose queued replies make no progress for
                          DUR: a peer that sends but never reads (WriteTimeout;
                          default 10s). Until then its link is read no further.
  --mllp-commit-ack       MLLP release 2: answer every frame with a commit ACK
  --quiet                 no event=message lines (other events still print)
  --metrics ADDR          serve Prometheus metrics on http://ADDR/metrics (port
                          0 picks one: see event=metrics addr=); default off

TLS (TLS 1.2 and 1.3 only; see the README):
  --tls-cert FILE         serve TLS with this certificate chain (PEM, leaf
                          first); needs --tls-key (default: plain TCP)
  --tls-key FILE          its private key (PEM: PKCS#8, PKCS#1 or SEC1)
  --tls-ca FILE           CA certificates (PEM) client certificates must chain to
  --tls-client-auth none|optional|required
                          ask clients for a certificate: none, optional (a
                          client without one is served), required (default:
                          required with --tls-ca, else none)
  --tls-allow-peer NAME   after the handshake, accept only clients whose
                          certificate names NAME (a DNS, IP or URI SAN, or the
                          subject CN; whole, no wildcards); others close with
                          TlsPeerNotAllowed (repeatable; needs client auth;
                          default: any client the CAs vouch for)
  --tls-handshake-timeout DUR
                          the TLS handshake must complete within DUR (default
                          10s; TlsHandshakeTimeout)

",
    liveness_help!(),
    "
Reliable sessions (mooring clients that resume after a lost link, nothing
lost, nothing repeated; see the README):
  --session               serve sessions (needs --protocol mooring); replies go
                          through the client's session
  --resume-window DUR     keep a disconnected session this long for its client
                          to resume it (default 60s); then it ends as Expired
  --queue N               unacknowledged messages kept per session while
                          connected (default 1000); 10 x N while disconnected
                          (replies: 10 x N, connected or not)
  --queue-bytes BYTES     ... and at most BYTES of them (default 8388608, one
                          ring per session allocated at its first use: memory
                          is at most 2 x --max-conns x BYTES)
  --max-sessions-per-ip N sessions one address may hold (connected or waiting
                          for a resume; default: no limit); at the limit its
                          new session replaces its own session disconnected
                          longest, or is closed TooManySessionsFromPeer
  A full session table (2 x --max-conns) gives a new session the slot of the
  session disconnected longest; that one ends how=Evicted.

DUR is a number with a unit: 500ms, 10s, 5m, 1h.
Service flags: --config FILE, --shutdown-timeout DUR, --check-config (see
mooring --help).

Lines (stdout, flushed at once):
  event=listening addr=127.0.0.1:2575
  event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off
                 tcp_user_timeout=off detection_bound=none   (one line; see below)
  event=connected peer=IP:PORT
  event=tls peer=IP:PORT version=TLSv1_3|TLSv1_2 suite=TLS13_AES_256_GCM_SHA384
                 peer_identity=NAME|-   (TLS: after each handshake; NAME: the
                                         client certificate's first name)
  event=message peer=IP:PORT bytes=N [id=MSH-10]
  event=commit_ack peer=IP:PORT accepted=true|false
  event=closed peer=IP:PORT reason=IdleTimeout|HeartbeatTimeout|HandshakeTimeout|...
                 [peer_reason=R]   (mooring: the reason the peer's CLOSE claimed;
                                    reason is then PeerClosed)
                 [detail=TEXT]     (TLS failures, reason=Tls...: the TLS
                                    library's text, e.g. the alert received,
                                    with spaces and '=' as '_')
  event=rejected peer=IP:PORT reason=TooManyConnections|NotAllowed|TooManyConnectionsFromPeer
With --session (session=N numbers the sessions of this process, from 1):
  event=session session=N note=established resumed=true|false replaying=K
  event=session_message session=N bytes=N [id=MSH-10]   (in order, exactly once)
  event=session session=N note=ended how=Lost|Expired|QueueFull|Closed|Evicted undelivered=K
replaying: replies sent again on a resumed link (the client lacked them);
undelivered: replies whose delivery is not confirmed (Expired: the client
did not resume within --resume-window; Lost: a side could not replay what
the other missed). --quiet drops event=session_message lines too.
id is printed only for HL7 payloads; bytes outside printable ASCII, spaces and
'=' in it are replaced with '_' so that every line splits on spaces and '='.
",
    liveness_line_help!(),
    "Runs until SIGTERM or SIGINT: then stops accepting, answers what it took,
closes every link and prints event=stopped reason=signal signal=SIGTERM
drained=true|false ms=N, exit 0 (within --shutdown-timeout).
"
);

/// Usage of `mooring send`.
pub const SEND_USAGE: &str = concat!(
    "\
Usage: mooring send ADDR [FILE|-] [flags]

Reads FILE (stdin when - or absent), splits it into HL7 messages (each starts at
a line beginning with MSH; line ends become CR) and sends them one by one,
waiting for each reply. An HL7 batch file (FHS, BHS ... BTS, FTS) is sent as
its messages without the envelope (an event=batch line says so), or whole as
one frame with --batch-as-frame.

  --framing mllp|len32    framing (default mllp)
  --max-frame BYTES       largest message sent and reply accepted (default
                          1048576; the listener needs as large a --max-frame)
  --batch-as-frame        send an HL7 batch file as ONE frame, envelope (FHS,
                          BHS, BTS, FTS) included (default: its messages one by
                          one, without the envelope)
  --close-each            one connection per message (default: keep one open)
  --response-timeout DUR  wait this long for each reply (default 10s)
  --connect-timeout DUR   wait this long to connect (default 5s)
  --retries N             resend a failed message up to N times (default 0),
                          retry n after a random pause of up to
                          200 ms x 2^(n-1), at most 2 s
  --no-correlate          take any reply, even one whose MSA-2 is another id
  --hold DUR              after the last message keep the link open and idle for
                          DUR (heartbeats and keep-alive messages go on); a close
                          meanwhile prints event=closed and ends the hold
  --pace DUR              wait DUR between messages (default: none)
  --write-timeout DUR     close the link when queued bytes make no progress for
                          DUR (WriteTimeout; default 10s)

TLS (TLS 1.2 and 1.3 only):
  --tls                   connect with TLS (needs --tls-ca; default: plain TCP)
  --tls-ca FILE           CA certificates (PEM) the server's certificate must
                          chain to (no built-in roots)
  --tls-server-name NAME  the name the server's certificate must carry
                          (default: the IP address of ADDR)
  --tls-cert FILE         a client certificate chain (PEM), for servers that
                          authenticate clients; needs --tls-key
  --tls-key FILE          its private key (PEM)
  --tls-handshake-timeout DUR
                          the TLS handshake must complete within DUR (default
                          10s)

",
    liveness_help!(),
    "
Reliable session (one session for the whole file; a lost link is resumed
with nothing lost or repeated; the listener needs --session too):
  --session               send through a session (needs --protocol mooring):
                          messages go out without waiting for replies (up to
                          --queue unacknowledged), replies come back in order;
                          --response-timeout bounds the wait for the next reply
                          (the session keeps everything across reconnects);
                          --retries and --close-each do not apply
  --resume-window DUR     how long this side keeps the session (default 60s)
  --queue N               unacknowledged messages kept while connected
                          (default 1000; 10 x N while disconnected); a full
                          queue holds the next message back until acknowledged
  --queue-bytes BYTES     ... and at most BYTES of them (default 8388608)
  --reconnect-min DUR     first reconnect waits up to DUR, doubling each attempt
  --reconnect-max DUR     ... up to DUR (defaults 1s and 30s; full jitter,
                          unlimited attempts)

Service flags: --config FILE, --shutdown-timeout DUR, --check-config (see
mooring --help).

Lines (stdout):
  event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off
                 tcp_user_timeout=off detection_bound=none   (one line, first)
  event=tls peer=IP:PORT version=TLSv1_3|TLSv1_2 suite=NAME peer_identity=NAME
                 (--tls: after each handshake; NAME: the server certificate's
                  first name)
  event=closed peer=IP:PORT reason=Tls... detail=TEXT
                 (--tls: a failed handshake, then the message's error line;
                  TEXT: the TLS library's, spaces and '=' as '_')
  event=reply n=1 [id=MSG00001] [ack=AA] bytes=95 ms=3
  event=retry n=2 attempt=1 error=ResponseTimeout
  event=error n=2 [id=MSG00002] error=ResponseTimeout
  event=error n=2 [id=MSG00002] error=IncompleteResponse reason=TcpTimeout
  event=closed reason=HeartbeatTimeout        (the link closed during --hold)
  event=batch header=FHS,BHS messages=N trailer=BTS,FTS sent_as=messages|frame
                 (first, for a batch file; header/trailer: the envelope
                  segments present, or none)
  event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=0
rejected: replies whose MSA-1 refused the message (AR, AE, CR or CE);
unexpected: replies that answered no message of ours (e.g. a peer repeating
old ACKs); they are warned about once per 10 s on stderr, with a count.
With --session (session=1: the one session of this run):
  event=session session=1 note=established resumed=true|false replaying=K
  event=closed reason=HeartbeatTimeout [peer_reason=R]   (the session's link
                                              was lost; R: the peer's claim)
  event=session session=1 note=reconnecting attempt=N delay_ms=D
  event=session session=1 note=ended how=Lost|Expired|QueueFull|Closed undelivered=K
  event=error n=7 [id=MSG00007] error=SessionExpired|SessionLost|QueueFull|
                 SessionClosed|ResponseTimeout|TooLarge   (messages not replied)
replaying: our messages sent again on a resumed link; undelivered: ours not
confirmed delivered when the session ended (Expired: the listener no longer
had it when we came back). The run ends with note=ended how=Closed. A reply
whose MSA-2 is not the message's id is an error (unless --no-correlate).
reason= (on error lines) is how the link closed, when it closed.
",
    liveness_line_help!(),
    "Exit status: 0 when every message got a reply accepting it (and there was
at least one); 1 when a message got no reply (or nothing was sent); 3 when
every message got a reply but at least one reply rejected its message (AR,
AE, CR or CE); 2 for a bad command line. A close during --hold is reported but
does not change it (nor does a session that ends during --hold after every
reply came).
"
);

/// Usage of `mooring relay`.
pub const RELAY_USAGE: &str = "\
Usage: mooring relay --listen ADDR --upstream ADDR [flags]

Accepts HL7 messages from local devices (raw MLLP or len32: any HL7 sender) and
forwards them in order over ONE keep-open link to the upstream, which is
re-established with backoff whenever it drops. Each message is acknowledged
to its device with an HL7 ACK (MSA|AA, or MSA|AR when it was not kept).

  --listen ADDR           where devices connect (port 0 picks one)
  --upstream ADDR         where messages go; repeat for backups, in order of
                          preference: messages go to the first that answers
  --failover-after N      failed attempts on the active upstream (a connect
                          that fails, or a link lost with messages in doubt
                          and none acknowledged) before moving to the next
                          (default 3); on a backup the relay probes the first
                          with the reconnect backoff and returns to it between
                          messages once it answers
  --upstream-window N     raw: messages written before their ACKs arrive, for
                          receivers that process pipelined messages in order
                          (default 1: MLLP request/response); ACKs are matched
                          in order by MSA-2; an ACK out of order closes the
                          link and what was in flight is resent
  --framing mllp|len32    framing, devices and upstream (default mllp)
  --max-frame BYTES       largest message taken from a device or sent upstream
                          (default 1048576; the upstream needs as large a one)
  --protocol raw|mooring  upstream protocol: raw (any HL7 receiver that answers
                          with an HL7 ACK; default) or mooring (a reliable
                          session; the upstream runs `mooring listen --protocol
                          mooring --session`)
  --queue N               messages held for the upstream (default 1000); a
                          device message arriving when it is full gets MSA|AR
  --spool DIR|memory      DIR: the queue is also kept on disk in DIR (created,
                          locked while the relay runs; recovered and forwarded
                          first on start). memory: the queue is in memory only
                          and --ack-after defaults to queued (see Guarantees for
                          its loss case). Default: in memory, --ack-after
                          upstream
  --spool-size BYTES      disk taken by --spool DIR, preallocated at start
                          (default 256M; K, M, G suffixes); full: MSA|AR
  --fsync batch|interval=DUR|off
                          --spool DIR: when to fdatasync. batch (default): once
                          per loop turn for everything accepted in it, then the
                          AAs; interval=DUR: at most every DUR (a power cut can
                          lose up to DUR of acknowledged messages); off: never
                          (a power cut can lose anything the OS has not
                          written back); a process crash loses nothing in any
  --ack-after queued|upstream
                          queued (default with --spool): the device gets AA
                          once the message is in the queue (with --spool DIR:
                          on disk); upstream (default without --spool): only
                          once the upstream
                          acknowledged it (raw: its HL7 ACK, whose MSA-1 the
                          device gets; mooring: the session's acknowledgement),
                          or MSA|AR if that takes longer than
                          --response-timeout (the message stays queued)
  --retries N             resends of a message in doubt before it fails
                          (default 3)
  --response-timeout DUR  raw: the upstream's ACK must come within DUR, else the
                          link is closed and the message is in doubt (default 10s);
                          --ack-after upstream: a device waiting DUR for its
                          ACK gets MSA|AR
  --reconnect-min DUR     first reconnect waits up to DUR, doubling each attempt
  --reconnect-max DUR     ... up to DUR (defaults 1s and 30s; full jitter,
                          unlimited attempts)
  --connect-timeout DUR   each connect attempt (default 5s)
  --dedup-window N        messages remembered to spot resends (default 10000);
                          a resend has the same MSH-3, MSH-4 and MSH-10
  --max-conns N           devices served at once (default 10)
  --max-conns-per-ip N    links one device address may hold at once; more are
                          rejected (TooManyConnectionsFromPeer); 0 or off: no
                          limit (default off)
  --write-timeout DUR     close a link (device or upstream) whose queued bytes
                          make no progress for DUR (WriteTimeout; default 10s)
  --metrics ADDR          serve Prometheus metrics on http://ADDR/metrics (port
                          0 picks one: see event=metrics addr=); default off

TLS (TLS 1.2 and 1.3 only; as on listen and send):
  --tls-cert FILE, --tls-key FILE, --tls-ca FILE,
  --tls-client-auth none|optional|required, --tls-allow-peer NAME
                          devices connect with TLS (as `mooring listen`)
  --upstream-tls          the upstream link uses TLS (needs --upstream-tls-ca)
  --upstream-tls-ca FILE  CA certificates the upstream's certificate must
                          chain to
  --upstream-tls-server-name NAME
                          the name the upstream's certificate must carry
                          (default: the IP address of --upstream)
  --upstream-tls-cert FILE, --upstream-tls-key FILE
                          the relay's client certificate and key for the
                          upstream
  --tls-handshake-timeout DUR
                          every TLS handshake, both sides (default 10s)

Liveness of the upstream link (as on listen/send): --heartbeat DUR,
--heartbeat-timeout DUR (mooring), --keepalive-message FILE, --keepalive-every
DUR, --keepalive-timeout DUR, --tcp-keepalive IDLE,INTVL,COUNT,
--tcp-user-timeout DUR, --handshake-timeout DUR (mooring), --frame-timeout DUR
and --frame-min-rate N (slow peers; defaults 30s and 500). --tcp-keepalive,
--tcp-user-timeout, --frame-timeout and --frame-min-rate apply to device links
too.

Guarantees:
  Messages go upstream in the order the relay accepted them. A message is
  reported acked only after the upstream acknowledged it. A message whose
  sender (MSH-3, MSH-4) and MSH-10 are in the duplicate window is acknowledged
  again, not forwarded again; the same MSH-10 from another sender is another
  message.
  Raw upstream: at least once. A message written when the link dropped (or
  whose ACK did not come in time) is in doubt: it is resent after the
  reconnect, so the upstream may see it twice (HL7 receivers deduplicate by
  MSH-10). After --retries resends it fails.
  Mooring upstream: exactly once while the session lives (resumed across lost
  links); if the session ends (e.g. the upstream restarted), what it had not
  acknowledged is resent on a new session (at least once), up to --retries.
  Across a failover (--upstream given more than once) order holds and what was
  in doubt is resent to the new upstream first: at least once.
  With --spool, --ack-after queued means on disk: the AA is sent after the
  fsync that covers the message (with --fsync batch). A relay killed and
  restarted on the same DIR forwards every message it acknowledged and had not
  delivered, in order, before anything new (raw upstream: at least once across
  restarts). Mooring upstream with --spool DIR: exactly once across restarts
  within the upstream's resume window: the session (id, token, sequence state)
  is kept in the spool and resumed, and the upstream drops what it already had
  (event=spool_session state=resumed). Beyond the window (the upstream dropped
  the session) a new session is opened: at least once, and
  event=spool_session state=new possible_duplicates=N says how many recovered
  messages it may get twice. Spool full or a disk error (ENOSPC, EIO): devices get MSA|AR,
  event=spool_pressure names the cause, and the relay recovers by itself.
  Without --spool, the default must not acknowledge what a crash can lose: the
  default is --ack-after upstream. --spool memory (or --ack-after queued)
  asks for the in-memory behaviour explicitly:
  --ack-after queued without --spool DIR: the device's AA means \"kept by the
  relay\" in memory, so a message in the queue is LOST if the relay dies, and
  a message that fails (out of retries) was already acknowledged:
  the relay prints event=failed and logs an error. That is the documented loss
  case; use --ack-after upstream to avoid it (a failed message then gets MSA|AR
  and the device may resend it).
  Messages without an MSH-10 (or not HL7) are answered MSA|AR, not forwarded
  (without MSH-10: MSA-3 says \"MSH-10 (message control id) is missing\", as
  mooring listen answers).

Service flags: --config FILE, --shutdown-timeout DUR, --check-config (see
mooring --help).

Lines (stdout, flushed at once):
  event=listening addr=127.0.0.1:2576
  event=liveness protocol=raw ...            (the upstream link; as on listen)
  event=connected peer=IP:PORT               (a device)
  event=tls peer=IP:PORT version=V suite=S peer_identity=NAME|-
                 (TLS, after each handshake: a device's, and the upstream's
                  with peer=the upstream's address)
  event=message peer=IP:PORT bytes=N [id=MSH-10]
  event=duplicate peer=IP:PORT id=MSH-10 [pending=true]
  event=queue_full peer=IP:PORT id=MSH-10 queued=N
  event=refused peer=IP:PORT bytes=N reason=NotHl7|NoControlId
  event=queued peer=IP:PORT id=MSH-10 seq=N
  event=reply_timeout peer=IP:PORT id=MSH-10 seq=N ack=AR
                 (--ack-after upstream: no upstream ACK within
                  --response-timeout; the message stays queued)
  event=closed peer=IP:PORT reason=... [peer_reason=R] [detail=TEXT]
  event=rejected peer=IP:PORT reason=TooManyConnections|NotAllowed|TooManyConnectionsFromPeer
  event=upstream state=connecting addr=ADDR attempt=N
                 (N: the attempt the reconnecting line before announced; 0
                  for the first)
  event=upstream state=connected addr=ADDR [resumed=B replaying=K]
  event=upstream state=lost addr=ADDR reason=R in_doubt=FIRST-LAST|none
                 resent=N failed=N           (one line; mooring link: unacked=N)
                 (reason=NoSessions hint=start_the_upstream_with_--session: the
                  upstream speaks mooring but keeps no sessions; retried with
                  backoff)
  event=upstream state=reconnecting addr=ADDR [reason=R] attempt=N delay_ms=D
                 (every upstream line also has active=I: the active upstream's
                  position in the --upstream list, 0 the first)
  event=upstream state=switched addr=NEW active=I from=OLD
                 reason=failover failures=N|primary_back
  event=upstream state=probing addr=FIRST active=I attempt=N
  event=upstream state=primary_answered addr=FIRST active=I
                 (on a backup: the first upstream answers again; the relay
                  returns to it once nothing is in flight)
  event=reply_out_of_order expected=MSH-10 id=MSA-2
                 (--upstream-window: the link is closed, state=lost
                  reason=ReplyOutOfOrder follows)
  event=forwarded id=MSH-10 seq=N attempt=N
  event=acked id=MSH-10 seq=N ms=M [ack=AA]  (ms: since the relay received it)
  event=unexpected_reply [id=MSA-2] [ack=CODE]
                 (the first of each 10 s; the others are counted:)
  event=unexpected_replies count=N interval_s=10
                 (N: all unexpected replies of that interval, the first
                  included; printed when there was more than one)
  event=upstream_reply [id=MSA-2] [ack=CODE] (mooring: the upstream's replies)
  event=failed id=MSH-10 seq=N attempts=N acked_to_device=true|false
  event=spool dir=DIR size=BYTES recovered=N corrupt=N   (--spool DIR, at start)
  event=spool_pressure state=ok|full|disk_error|recovering [cause=ENOSPC|EIO|...]
                 used=BYTES records=N        (on each change)
  event=spool_refused peer=IP:PORT id=MSH-10 reason=full|disk_error|recovering
                 [cause=...]                 (the device got MSA|AR)
  event=spool_session state=resumed|new session=N possible_duplicates=N
                 (--spool DIR, mooring: the first session after a start)
  event=stopped reason=signal signal=SIGTERM drained=B ms=N queued=N spooled=B
                 (after SIGTERM/SIGINT: the spool synced, the replies due
                  written; queued: not yet delivered, kept in the spool or,
                  spooled=false, lost)
seq numbers the messages the relay accepted, from 1; in_doubt names seqs.
Runs until SIGTERM or SIGINT, then stops within --shutdown-timeout (exit 0).
";

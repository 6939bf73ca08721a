//! A tiny, bounded HTTP/1.x request reader for `GET /metrics`: what to answer
//! to the bytes received so far. Pure: no sockets, no clock.
//!
//! Only the request line decides: `GET` (or `GET` of `/metrics?...`) of
//! `/metrics` is served; another method is `405`, another path `404`, and
//! anything that is not an HTTP/1.0 or 1.1 request is `400`. Header lines are
//! only checked for shape; a body is never read. The connection is closed
//! after every answer, so there is no keep-alive and no pipelining.

/// What to do with the bytes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The request is not complete yet: read more (within the size limit).
    Incomplete,
    /// A complete `GET /metrics`: serve the exposition.
    Metrics,
    /// Answer with this status, then close.
    Refuse(Status),
}

/// The statuses this server answers besides `200`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not an HTTP/1.x request.
    BadRequest,
    /// A path other than `/metrics`.
    NotFound,
    /// A method other than `GET`.
    MethodNotAllowed,
    /// The request is longer than the server reads.
    TooLarge,
    /// The exposition did not fit the response buffer.
    InternalError,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::TooLarge => 431,
            Status::InternalError => 500,
        }
    }

    /// The whole response: status line, headers and a one-line body; the
    /// connection closes after it.
    pub fn response(self) -> &'static [u8] {
        match self {
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nnot found: try /metrics\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\nmethod not allowed\n",
            Status::TooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n",
            Status::InternalError => b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 43\r\nConnection: close\r\n\r\nthe metrics do not fit the response buffer\n",
        }
    }
}

/// What the request in `buf` (everything received so far) asks for. `limit`
/// is the most the server reads: a request not complete within it is
/// [`Status::TooLarge`].
pub fn parse(buf: &[u8], limit: usize) -> Parsed {
    // A method is a token: anything else is refused at its first byte (an
    // MLLP or TLS client that found the wrong port gets its answer at once).
    let method_end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
    if !buf[..method_end].iter().all(|&b| is_tchar(b)) {
        return Parsed::Refuse(Status::BadRequest);
    }
    // The request line decides as soon as it is complete.
    let Some(line_end) = find(buf, b"\n") else {
        return incomplete_or_too_large(buf, limit);
    };
    let line = trim_cr(&buf[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Refuse(Status::BadRequest);
    };
    if method.is_empty()
        || !method.iter().all(|&b| is_tchar(b))
        || target.is_empty()
        || !target.iter().all(|&b| b.is_ascii_graphic())
        || !matches!(version, b"HTTP/1.0" | b"HTTP/1.1")
    {
        return Parsed::Refuse(Status::BadRequest);
    }
    // The headers end with an empty line.
    let mut rest = &buf[line_end + 1..];
    loop {
        let Some(end) = find(rest, b"\n") else {
            return incomplete_or_too_large(buf, limit);
        };
        let header = trim_cr(&rest[..end]);
        if header.is_empty() {
            break;
        }
        match header.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 && header[..colon].iter().all(|&b| is_tchar(b)) => {}
            _ => return Parsed::Refuse(Status::BadRequest),
        }
        rest = &rest[end + 1..];
    }
    if method != b"GET" {
        return Parsed::Refuse(Status::MethodNotAllowed);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    if path != b"/metrics" {
        return Parsed::Refuse(Status::NotFound);
    }
    Parsed::Metrics
}

fn incomplete_or_too_large(buf: &[u8], limit: usize) -> Parsed {
    if buf.len() >= limit {
        Parsed::Refuse(Status::TooLarge)
    } else {
        Parsed::Incomplete
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A token character (RFC 9110): what methods and header names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::XorShift64;

    const LIMIT: usize = 1024;

    #[test]
    fn get_metrics_is_served_once_the_headers_end() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
        for n in 0..req.len() {
            assert_eq!(parse(&req[..n], LIMIT), Parsed::Incomplete, "{n} bytes");
        }
        assert_eq!(parse(req, LIMIT), Parsed::Metrics);
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\n\n", LIMIT),
            Parsed::Metrics
        );
    }

    #[test]
    fn other_methods_paths_and_garbage_are_refused() {
        let cases: [(&[u8], Status); 7] = [
            (b"POST /metrics HTTP/1.1\r\n\r\n", Status::MethodNotAllowed),
            (b"HEAD /metrics HTTP/1.1\r\n\r\n", Status::MethodNotAllowed),
            (b"GET / HTTP/1.1\r\n\r\n", Status::NotFound),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Status::NotFound),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
                Status::BadRequest,
            ),
            (b"GET /metrics SPDY/3\r\n", Status::BadRequest),
            (
                b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
                Status::BadRequest,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(parse(req, LIMIT), Parsed::Refuse(want), "{req:?}");
        }
        // Garbage is refused as soon as its first line is complete, or at
        // its first byte that cannot be part of a method.
        assert_eq!(parse(b"hello\n", LIMIT), Parsed::Refuse(Status::BadRequest));
        assert_eq!(parse(b"hello", LIMIT), Parsed::Incomplete);
        for early in [&b"\x0bMSH|"[..], b"\x16\x03", b"GET\r"] {
            assert_eq!(parse(early, LIMIT), Parsed::Refuse(Status::BadRequest));
        }
    }

    #[test]
    fn a_request_longer_than_the_limit_is_too_large() {
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        req.resize(LIMIT, b'a');
        assert_eq!(parse(&req, LIMIT), Parsed::Refuse(Status::TooLarge));
        assert_eq!(parse(&req[..LIMIT - 1], LIMIT), Parsed::Incomplete);
        assert_eq!(
            parse(&[b'G'; LIMIT], LIMIT),
            Parsed::Refuse(Status::TooLarge)
        );
    }

    #[test]
    fn every_response_states_its_body_length() {
        for s in [
            Status::BadRequest,
            Status::NotFound,
            Status::MethodNotAllowed,
            Status::TooLarge,
            Status::InternalError,
        ] {
            let r = s.response();
            let text = std::str::from_utf8(r).expect("ASCII");
            assert!(text.starts_with(&format!("HTTP/1.1 {} ", s.code())));
            let (head, body) = text.split_once("\r\n\r\n").expect("a header end");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .expect("a Content-Length");
            assert_eq!(len, body.len(), "{text}");
        }
    }

    /// Many seeds of random and mutated requests, cut at every length and
    /// read with several limits: never a panic.
    #[test]
    fn random_inputs_never_panic() {
        let seeds: [&[u8]; 3] = [
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.0\n\n",
            b"\r\n\r\n",
        ];
        for seed in 1..=2_000u64 {
            let mut rng = XorShift64::new(seed);
            let base = seeds[(seed % 3) as usize];
            let mut buf = base.to_vec();
            let edits = rng.next_u64() % 8;
            for _ in 0..edits {
                let r = rng.next_u64();
                let at = (r as usize >> 8) % (buf.len() + 1);
                match r % 4 {
                    0 if at < buf.len() => buf[at] = (r >> 32) as u8,
                    1 => buf.insert(at, (r >> 40) as u8),
                    2 if at < buf.len() => {
                        buf.remove(at);
                    }
                    _ => buf.extend((0..(r >> 48) % 64).map(|i| (r >> (i % 56)) as u8)),
                }
            }
            for limit in [0, 1, 16, LIMIT] {
                let _ = parse(&buf, limit);
                for cut in 0..buf.len().min(64) {
                    let _ = parse(&buf[..cut], limit);
                }
            }
        }
    }
}

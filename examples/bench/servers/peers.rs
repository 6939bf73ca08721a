//! (c) tokio current_thread + tokio-util codecs; over tokio-rustls for the
//! `tls-*` workloads.

use crate::{loopback, Serve, Wire, ACK, MAX_FRAME};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{future, StreamExt, TryStreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec};

/// A small MLLP codec: `0x0B payload 0x1C 0x0D`, resuming its scan.
#[derive(Default)]
pub struct MllpCodec {
    scan: usize,
}

impl Decoder for MllpCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        if src.is_empty() {
            return Ok(None);
        }
        if src[0] != 0x0B {
            match src.iter().position(|&b| b == 0x0B) {
                Some(i) => src.advance(i),
                None => {
                    src.clear();
                    return Ok(None);
                }
            }
            self.scan = 0;
        }
        let from = self.scan.max(1);
        match src[from..].iter().position(|&b| b == 0x1C) {
            Some(i) => {
                let end = from + i;
                if end + 1 >= src.len() {
                    self.scan = end;
                    return Ok(None);
                }
                if src[end + 1] != 0x0D {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                let mut frame = src.split_to(end + 2);
                self.scan = 0;
                frame.advance(1);
                frame.truncate(end - 1);
                Ok(Some(frame))
            }
            None => {
                if src.len() > MAX_FRAME + 3 {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                self.scan = src.len();
                Ok(None)
            }
        }
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        dst.reserve(item.len() + 3);
        dst.put_u8(0x0B);
        dst.put_slice(&item);
        dst.put_slice(&[0x1C, 0x0D]);
        Ok(())
    }
}

/// The ACK of an HL7 message, as a tokio user would write it in ten lines:
/// split MSH on `|`, swap sender and receiver, MSA-2 = MSH-10.
fn ack(msg: &[u8]) -> Bytes {
    let msh = msg.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let f: Vec<&[u8]> = msh.split(|&b| b == b'|').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(&[]);
    let mut ts = [0u8; 14];
    let ts = mooring::hl7::timestamp_utc(crate::unix_secs(), &mut ts);
    let trigger = get(8).split(|&b| b == b'^').nth(1).unwrap_or(&[]);
    let mut out = BytesMut::with_capacity(msh.len() + 64);
    for part in [
        &b"MSH|^~\\&|"[..],
        get(4),
        b"|",
        get(5),
        b"|",
        get(2),
        b"|",
        get(3),
        b"|",
        ts,
        b"||ACK^",
        trigger,
        b"|A",
        get(9),
        b"|P|",
        get(11),
        b"\rMSA|AA|",
        get(9),
        b"\r",
    ] {
        out.extend_from_slice(part);
    }
    out.freeze()
}

fn len32() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

async fn conn<C, R, W>(r: R, w: W, rc: C, wc: C, s: Serve) -> io::Result<()>
where
    C: Decoder<Item = BytesMut, Error = io::Error> + Encoder<Bytes, Error = io::Error>,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut count = 0u64;
    let ack_every = s.ack_every;
    let replies = FramedRead::new(r, rc).try_filter_map(move |frame| {
        count += 1;
        let reply = if s.hl7 {
            Some(ack(&frame))
        } else if ack_every == 1 {
            Some(frame.freeze())
        } else if count.is_multiple_of(ack_every) {
            Some(Bytes::from_static(ACK))
        } else {
            None
        };
        future::ready(Ok(reply))
    });
    let writer = FramedWrite::new(w, wc);
    if s.close_after_reply {
        replies.take(1).forward(writer).await
    } else {
        replies.forward(writer).await
    }
}

/// One connection, with the codec of its framing.
async fn serve_conn<R, W>(r: R, w: W, s: Serve)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = match s.wire {
        Wire::Len32 => conn(r, w, len32(), len32(), s).await,
        Wire::Mllp => conn(r, w, MllpCodec::default(), MllpCodec::default(), s).await,
    };
}

pub fn serve_tokio(s: Serve) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(loopback()).await?;
        let tls = match s.tls {
            true => Some(tokio_rustls::TlsAcceptor::from(crate::tls::rustls_server()?)),
            false => None,
        };
        crate::announce(listener.local_addr()?);
        loop {
            let (sock, _) = listener.accept().await?;
            sock.set_nodelay(true)?;
            match tls.clone() {
                None => {
                    let (r, w) = sock.into_split();
                    tokio::spawn(serve_conn(r, w, s));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(sock).await {
                            let (r, w) = tokio::io::split(stream);
                            serve_conn(r, w, s).await;
                        }
                    });
                }
            }
        }
    })
}

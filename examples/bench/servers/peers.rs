//! (c) tokio current_thread + tokio-util codecs.

use crate::{loopback, Serve, Wire, ACK, MAX_FRAME};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{future, StreamExt, TryStreamExt};
use std::io;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

fn len32() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

async fn conn<C>(r: OwnedReadHalf, w: OwnedWriteHalf, rc: C, wc: C, s: Serve) -> io::Result<()>
where
    C: Decoder<Item = BytesMut, Error = io::Error> + Encoder<Bytes, Error = io::Error>,
{
    let mut count = 0u64;
    let ack_every = s.ack_every;
    let replies = FramedRead::new(r, rc).try_filter_map(move |frame| {
        count += 1;
        let reply = if ack_every == 1 {
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

pub fn serve_tokio(s: Serve) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(loopback()).await?;
        crate::announce(listener.local_addr()?);
        loop {
            let (sock, _) = listener.accept().await?;
            sock.set_nodelay(true)?;
            let (r, w) = sock.into_split();
            tokio::spawn(async move {
                let _ = match s.wire {
                    Wire::Len32 => conn(r, w, len32(), len32(), s).await,
                    Wire::Mllp => conn(r, w, MllpCodec::default(), MllpCodec::default(), s).await,
                };
            });
        }
    })
}

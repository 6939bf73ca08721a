#!/usr/bin/env python3
"""An MLLP server written with python hl7's asyncio ``hl7.mllp`` module: a
third-party peer for mooring's interop tests (tests/interop_python.rs).

Binds 127.0.0.1 on a free port, prints ``listening <port>`` on stdout (flushed,
so the test can wait for it), answers every message with the ACK that
``hl7.Message.create_ack()`` builds, and runs until killed.

With ``--tls-cert FILE --tls-key FILE`` it serves TLS through python's ``ssl``
module (``start_hl7_server(..., ssl=ctx)``); with ``--tls-ca FILE`` too it
requires a client certificate from that CA.
"""

import argparse
import asyncio
import ssl
import sys

from hl7.mllp import start_hl7_server


async def serve_client(reader, writer):
    """Answers each message of one connection until the peer closes it."""
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        # The peer closed the connection, possibly mid-message: nothing to answer.
        pass
    except Exception as e:  # report, but keep serving other connections
        print(f"error {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        writer.close()


def tls_context(args):
    """The server's TLS context from the flags, or None for plain TCP."""
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_ca:
        ctx.load_verify_locations(args.tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-ca")
    args = parser.parse_args()
    server = await start_hl7_server(
        serve_client, host="127.0.0.1", port=0, ssl=tls_context(args)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

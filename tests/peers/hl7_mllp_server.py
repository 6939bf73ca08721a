#!/usr/bin/env python3
"""An MLLP server written with python hl7's asyncio ``hl7.mllp`` module: a
third-party peer for mooring's interop tests (tests/interop_python.rs).

Binds 127.0.0.1 on a free port, prints ``listening <port>`` on stdout (flushed,
so the test can wait for it), answers every message with the ACK that
``hl7.Message.create_ack()`` builds, and runs until killed.
"""

import asyncio
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


async def main():
    server = await start_hl7_server(serve_client, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""An MLLP client over python's ``ssl`` module: a third-party TLS peer for
mooring's interop tests (tests/interop_tls.rs).

Usage: tls_mllp_client.py HOST PORT FILE --ca CA [--cert CERT --key KEY]
[--server-name NAME]

Connects with TLS (1.2 or later, the server verified against CA), sends each
HL7 message of FILE (a message starts at a line beginning with MSH; line ends
become CR) in an MLLP frame and waits for its reply. Prints
``tls version=<TLSv1.3> cipher=<name>`` after the handshake, then
``reply <MSA-1> <MSA-2>`` per reply, and exits 0 when every message got one;
an error (a refused handshake included) is printed as ``error <type>: <text>``
and exits 1.
"""

import argparse
import socket
import ssl
import sys

START, END = b"\x0b", b"\x1c\x0d"


def messages(path):
    """The HL7 messages of a file, CR line ends."""
    out, cur = [], []
    with open(path, "rb") as f:
        for line in f.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
            if line.startswith(b"MSH") and cur:
                out.append(b"\r".join(cur) + b"\r")
                cur = []
            if line:
                cur.append(line)
    if cur:
        out.append(b"\r".join(cur) + b"\r")
    return out


def read_frame(sock):
    """One MLLP frame's payload."""
    buf = b""
    while END not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before a whole reply")
        buf += chunk
    return buf[buf.index(START) + 1 : buf.index(END)]


def msa(reply):
    """MSA-1 and MSA-2 of an ACK."""
    for seg in reply.split(b"\r"):
        if seg.startswith(b"MSA|"):
            f = seg.decode("ascii", "replace").split("|")
            return f[1], f[2] if len(f) > 2 else ""
    return "-", "-"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("file")
    p.add_argument("--ca", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--server-name")
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    try:
        with socket.create_connection((a.host, a.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=a.server_name or a.host) as s:
                print(f"tls version={s.version()} cipher={s.cipher()[0]}", flush=True)
                for m in messages(a.file):
                    s.sendall(START + m + END)
                    code, id_ = msa(read_frame(s))
                    print(f"reply {code} {id_}", flush=True)
                # A graceful TLS close: our close_notify (the server's answer,
                # or its plain close, is not this client's business).
                try:
                    s.unwrap()
                except (OSError, ssl.SSLError):
                    pass
    except Exception as e:  # noqa: BLE001 - the test reads the line
        print(f"error {type(e).__name__}: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

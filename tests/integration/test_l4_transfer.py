"""Bulk transfer: 100 MiB each way at the same time through one connection,
on both forwarding paths (splice and user-space buffers), with identical
SHA-256 checksums on both sides."""

import socket
import threading
import time

import pytest

from conftest import MiB, Payload, recv_hash, send_payload, simple_config

SIZE = 100 * MiB
LIMIT = 60.0     # seconds for the whole transfer


def duplex(sock, payload):
    """Send payload (then FIN) while reading until EOF. Returns
    ((bytes sent, sha256 sent), (bytes received, sha256 received))."""
    out = {}

    def sender():
        try:
            out["sent"] = send_payload(sock, payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    received = recv_hash(sock, max_bytes=SIZE)
    t.join(LIMIT)
    assert not t.is_alive(), "sender still running"
    if "error" in out:
        raise out["error"]
    return out["sent"], received


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_100mib_each_way(fulcrum, backend, connect, port, forwarding):
    up, down = Payload(SIZE, seed=1), Payload(SIZE, seed=2)

    def handler(b, conn):
        conn.sock.settimeout(LIMIT)
        conn.info["sent"], conn.info["received"] = duplex(conn.sock, down)

    b = backend("BULK", handler=handler)
    f = fulcrum(simple_config([b], port, workers=2, listener_kw={"forwarding": forwarding}))

    t0 = time.monotonic()
    s = connect(port, timeout=LIMIT)
    c_sent, c_received = duplex(s, up)
    s.close()
    elapsed = time.monotonic() - t0
    assert b.wait_accepted(1) and b.conns[0].done.wait(10)
    conn = b.conns[0]
    assert conn.error is None, conn.error
    b_sent, b_received = conn.info["sent"], conn.info["received"]

    # client -> backend
    assert c_sent[0] == SIZE and b_received[0] == SIZE
    assert b_received[1] == c_sent[1]
    # backend -> client
    assert b_sent[0] == SIZE and c_received[0] == SIZE
    assert c_received[1] == b_sent[1]
    assert elapsed < LIMIT
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed"
    assert int(rec["bytes_in"]) == SIZE and int(rec["bytes_out"]) == SIZE


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_sender_closes_before_slow_reader_reads(fulcrum, backend, connect, port, forwarding):
    """The backend writes 16 MiB and closes at once while the client is not
    reading yet (fulcrum's buffers and the socket buffers fill up); the client
    then reads everything, and only after that sees EOF. And the other way
    round: the client sends 16 MiB and closes, the backend reads late."""
    size = 16 * MiB
    down, up = Payload(size, seed=5), Payload(size, seed=6)

    def handler(b, conn):
        conn.sock.settimeout(LIMIT)
        conn.info["sent"] = send_payload(conn.sock, down)
        conn.sock.shutdown(socket.SHUT_WR)
        time.sleep(0.5)                # the client's upload piles up meanwhile
        conn.info["received"] = recv_hash(conn.sock, max_bytes=size)

    b = backend("LATE", handler=handler)
    f = fulcrum(simple_config([b], port, listener_kw={"forwarding": forwarding}))

    s = connect(port, timeout=LIMIT)
    time.sleep(0.5)                    # let the download pile up first
    c_received = recv_hash(s, max_bytes=size)
    c_sent = send_payload(s, up)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b""
    s.close()
    assert b.wait_accepted(1) and b.conns[0].done.wait(LIMIT)
    conn = b.conns[0]
    assert conn.error is None, conn.error
    assert c_received == conn.info["sent"] == (size, down.sha256())
    assert conn.info["received"] == c_sent
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed"
    assert (int(rec["bytes_in"]), int(rec["bytes_out"])) == (size, size)

"""Servers that fail: a backend killed mid-test, a port with nothing
listening, a connect that times out, retries: 0, and a pool with no server
left."""

import re
import socket
import time

from conftest import closed_by_peer, fmt_addr, recv_line, simple_config


def ask_name(connect, port, source=None, ports=None):
    """Read the greeting of the backend fulcrum picked; ports collects the
    client's port numbers (to find its access log lines)."""
    s = connect(port, source=source)
    if ports is not None:
        ports.append(s.getsockname()[1])
    line = recv_line(s)
    s.close()
    assert line.endswith(b"\n"), f"connection through fulcrum got no greeting ({line!r})"
    return line.decode().strip()


def test_killed_backend_traffic_moves_to_the_others(fulcrum, backend, connect, port):
    a, b, c = backend("A"), backend("B"), backend("C")
    f = fulcrum(simple_config([a, b, c], port, workers=2))

    before = [ask_name(connect, port) for _ in range(9)]
    assert set(before) == {"A", "B", "C"}

    # B dies with a connection open through fulcrum.
    for _ in range(10):                # round robin: B within three tries
        held = connect(port)
        if recv_line(held) == b"B\n":
            break
        held.close()
    else:
        raise AssertionError("no connection reached B")
    b.stop()
    assert closed_by_peer(held), "the connection to the killed backend stayed open"
    held.close()
    accepted_b = b.accepted

    ports = []
    after = [ask_name(connect, port, ports=ports) for _ in range(15)]
    assert set(after) == {"A", "C"}, after
    assert b.accepted == accepted_b

    # Round robin reaches B at least once in every three picks of a worker,
    # so some of those 15 connections were retried after B refused.
    clients = {f"127.0.0.1:{p}" for p in ports}
    later = f.wait_access(len(after), pred=lambda r: r["client"] in clients)
    assert all(r["server"] in (a.address, c.address) and r["cause"] == "closed" for r in later)
    assert any(r["retries"] == "1" for r in later)
    f.wait_error_log(rf"\[warn\] .*connect to server {re.escape(b.address)} of pool backs "
                     r"failed: Connection refused")
    assert f.stop() == 0
    assert f.counters("pool", "backs", server=b.address)["connect_fail"] >= 1


def test_nothing_listening_counts_as_a_failed_try(fulcrum, backend, connect, port, dead_address):
    dead = dead_address()
    live = backend("LIVE")
    f = fulcrum(simple_config([dead, live], port, workers=1))

    # The first pick is the dead server (workers: 1, round robin): it fails
    # and the same client is served by the next server, bytes it sent
    # before that included.
    s = connect(port)
    first = fmt_addr(*s.getsockname()[:2])
    s.sendall(b"sent before any server answered\n")
    assert recv_line(s) == b"LIVE\n"
    assert recv_line(s) == b"sent before any server answered\n"
    s.close()
    assert [ask_name(connect, port) for _ in range(3)] == ["LIVE"] * 3
    rec = f.record_of(first)
    assert rec["retries"] == "1" and rec["server"] == live.address
    assert all(r["cause"] == "closed" for r in f.wait_access(4))
    f.wait_error_log(rf"connect to server {re.escape(dead)} of pool backs failed: "
                     r"Connection refused \(try 1 of 2\)")


def test_retries_zero_closes_the_client(fulcrum, backend, connect, port, dead_address):
    dead = dead_address()
    live = backend("LIVE")
    f = fulcrum(simple_config([dead, live], port, workers=1, pool_kw={"retries": 0}))

    s = connect(port)          # round robin picks the dead server first
    assert closed_by_peer(s), "a client whose only allowed try failed must be closed"
    s.close()
    assert ask_name(connect, port) == "LIVE"
    recs = f.wait_access(2)
    assert recs[0]["cause"] == "connect_failed" and recs[0]["retries"] == "0"
    assert recs[1]["cause"] == "closed" and recs[1]["server"] == live.address
    assert live.accepted == 1


def test_every_server_down(fulcrum, connect, port, dead_address):
    dead = [dead_address() for _ in range(3)]
    f = fulcrum(simple_config(dead, port, workers=2))

    for _ in range(3):
        s = connect(port)
        assert closed_by_peer(s)
        s.close()
    recs = f.wait_access(3)
    # Each client was tried on every server once (retries = servers - 1).
    assert all(r["cause"] == "connect_failed" and r["retries"] == "2" for r in recs)
    for d in dead:
        f.wait_error_log(rf"connect to server {re.escape(d)} of pool backs failed: "
                         r"Connection refused")
    assert f.stop() == 0
    assert f.counters("pool", "backs")["connect_fail"] == 9


def test_connect_timeout_moves_to_the_next_server(fulcrum, backend, connect, port):
    """A server whose accept queue is full drops SYNs: the connect times out
    after timeouts.connect and the next server is tried."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)                     # never accepted: the queue fills up
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(hole.getsockname())
            fillers.append(s)
        time.sleep(0.2)
        hole_addr = f"127.0.0.1:{hole.getsockname()[1]}"
        live = backend("LIVE")
        f = fulcrum(simple_config([hole_addr, live], port, workers=1,
                                  listener_kw={"timeouts": {"connect": "300ms"}}))

        t0 = time.monotonic()
        s = connect(port)
        s.sendall(b"waiting for a server\n")
        s.shutdown(socket.SHUT_WR)     # even the client's FIN waits for it
        assert recv_line(s) == b"LIVE\n"
        waited = time.monotonic() - t0
        assert recv_line(s) == b"waiting for a server\n"
        assert recv_line(s) == b""
        s.close()
        assert 0.25 <= waited < 3.0, f"served after {waited:.2f}s, connect timeout is 300ms"
        rec = f.wait_access(1)[0]
        assert rec["retries"] == "1" and rec["server"] == live.address
        f.wait_error_log(rf"connect to server {re.escape(hole_addr)} of pool backs failed: "
                         r"timed out")
    finally:
        for s in fillers:
            s.close()
        hole.close()


def test_more_than_64_servers_all_tried(fulcrum, backend, connect, port, dead_address):
    """retries reaches past the 64th server: a client is tried on 70 dead
    servers, one after the other, and served by the 71st."""
    live = backend("LIVE")
    dead = [dead_address() for _ in range(70)]
    f = fulcrum(simple_config(dead + [live], port, workers=1))

    ports = []
    assert [ask_name(connect, port, ports=ports) for _ in range(3)] == ["LIVE"] * 3
    # Round robin with equal weights goes in order: the first client met
    # every dead server before the live one.
    rec = f.record_of(f"127.0.0.1:{ports[0]}")
    assert rec["retries"] == "70" and rec["server"] == live.address
    assert f.stop() == 0
    assert f.counters("pool", "backs")["connect_fail"] >= 70
    assert f.counters("pool", "backs", server=live.address)["streams"] == 3


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_client_reset_is_logged_and_passed_on(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port))

    s = connect(port)
    assert recv_line(s) == b"B\n"
    s.sendall(b"x\n")
    assert recv_line(s) == b"x\n"
    rst_close(s)
    assert b.wait_accepted(1) and b.conns[0].done.wait(5)   # the backend's side ended
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "client_reset", rec


def reset_after_greeting(b, conn):
    conn.sock.sendall(b"bye\n")
    time.sleep(0.1)
    rst_close(conn.sock)


def test_server_reset_is_logged_and_passed_on(fulcrum, backend, connect, port):
    b = backend("B", handler=reset_after_greeting)
    f = fulcrum(simple_config([b], port))

    s = connect(port)
    assert recv_line(s) == b"bye\n"
    assert closed_by_peer(s)
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "server_reset", rec
    assert rec["bytes_out"] == "4"

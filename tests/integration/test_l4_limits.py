"""Limits a listener enforces: allow/deny networks, max_connections (per
listener and global) and idle timeouts."""

import select
import socket
import threading
import time

import pytest

from conftest import (closed_by_peer, fmt_addr, free_port, make_config, listener, pool,
                      proc_cpu_seconds, recv_line, silent, simple_config)


def served_by(s):
    """The greeting line of the backend behind socket s ('' if none)."""
    return recv_line(s).decode().strip()


def assert_denied(f, connect, port, host="127.0.0.1", source=None):
    s = connect(port, host=host, source=source)
    client = s.getsockname()
    assert closed_by_peer(s), f"client {client} was not closed by fulcrum"
    s.close()
    addr = fmt_addr(client[0], client[1])
    rec = f.wait_access(1, pred=lambda r: r["client"] == addr)[0]
    assert rec["cause"] == "denied" and rec["server"] == "-"
    assert rec["bytes_in"] == "0" and rec["bytes_out"] == "0"


def assert_served(connect, port, name, host="127.0.0.1", source=None):
    s = connect(port, host=host, source=source)
    assert served_by(s) == name
    s.sendall(b"ok?\n")
    assert recv_line(s) == b"ok?\n"
    s.close()


def test_deny_closes_client_before_any_backend_contact(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port, listener_kw={"deny": ["127.0.0.2/32"]}))

    assert_denied(f, connect, port, source="127.0.0.2")
    assert_denied(f, connect, port, source="127.0.0.2")
    assert_served(connect, port, "B", source="127.0.0.1")
    assert_served(connect, port, "B", source="127.0.0.3")
    time.sleep(0.1)
    assert b.accepted == 2
    assert f.stop() == 0
    ctr = f.counters("listener", "front")
    assert (ctr["accepted"], ctr["refused_acl"], ctr["active"]) == (4, 2, 0)


def test_allow_list_and_deny_precedence(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port, listener_kw={
        "allow": ["127.0.0.1/32", "127.0.0.2/31", "127.0.0.8/29"],
        "deny": ["127.0.0.3/32", "127.0.0.12/30"]}))

    for src in ("127.0.0.1", "127.0.0.2", "127.0.0.9", "127.0.0.11"):
        assert_served(connect, port, "B", source=src)
    for src in ("127.0.0.3",            # allowed by 127.0.0.2/31, but denied
                "127.0.0.4",            # in no allowed network
                "127.0.0.13", "127.0.0.16"):
        assert_denied(f, connect, port, source=src)
    time.sleep(0.1)
    assert b.accepted == 4


def test_ipv4_rules_and_ipv6_clients(fulcrum, backend, connect):
    b = backend("B")
    p1, p2, p3 = free_port(), free_port(), free_port()
    both = lambda p: [fmt_addr("127.0.0.1", p), fmt_addr("::1", p)]   # noqa: E731
    cfg = make_config(
        [listener("only4", both(p1), "backs", allow=["127.0.0.0/8"]),
         listener("only6", both(p2), "backs", allow=["::1/128"]),
         # An IPv4-mapped IPv6 network matches the IPv4 client it maps.
         listener("mapped", both(p3), "backs", allow=["::ffff:127.0.0.1/128"])],
        [pool("backs", [b.address])])
    f = fulcrum(cfg)

    assert_served(connect, p1, "B", host="127.0.0.1")
    assert_denied(f, connect, p1, host="::1")
    assert_served(connect, p2, "B", host="::1")
    assert_denied(f, connect, p2, host="127.0.0.1")
    assert_served(connect, p3, "B", host="127.0.0.1")
    assert_denied(f, connect, p3, host="127.0.0.1", source="127.0.0.2")
    assert_denied(f, connect, p3, host="::1")
    time.sleep(0.1)
    assert b.accepted == 3
    assert f.stop() == 0
    for name in ("only4", "only6"):
        assert f.counters("listener", name)["refused_acl"] == 1
    assert f.counters("listener", "mapped")["refused_acl"] == 2


def waits_without_service(s, backend_, expect_accepted, seconds=0.6):
    """s is connected (kernel backlog) but nothing gets through for a while."""
    s.settimeout(seconds)
    with pytest.raises(socket.timeout):
        s.recv(1)
    s.settimeout(5)
    assert backend_.accepted == expect_accepted


def test_listener_max_connections(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port, workers=2, listener_kw={"max_connections": 2}))

    c1, c2 = connect(port), connect(port)
    assert served_by(c1) == "B" and served_by(c2) == "B"
    c3 = connect(port)                 # TCP connect succeeds: the kernel queues it
    c3.sendall(b"third\n")
    cpu0 = proc_cpu_seconds(f.pid)
    waits_without_service(c3, b, 2)
    c4 = connect(port)
    c4.sendall(b"fourth\n")
    waits_without_service(c4, b, 2, seconds=0.3)
    cpu = proc_cpu_seconds(f.pid) - cpu0
    assert cpu < 0.3, f"fulcrum burnt {cpu:.2f}s of CPU while at its limit (busy loop?)"

    # One slot frees: exactly one of the waiting clients is served. (Which
    # one is not specified: each worker has its own accept queue.)
    c1.close()
    ready, _, _ = select.select([c3, c4], [], [], 5)
    assert ready, "no waiting client was served after a connection closed"
    first = ready[0]
    second = c4 if first is c3 else c3
    assert served_by(first) == "B"
    assert recv_line(first) == (b"third\n" if first is c3 else b"fourth\n")
    assert b.wait_accepted(3)
    waits_without_service(second, b, 3, seconds=0.3)
    c2.close()
    assert served_by(second) == "B"
    assert recv_line(second) == (b"third\n" if second is c3 else b"fourth\n")
    assert b.wait_accepted(4)
    for s in (c3, c4):
        s.close()
    recs = f.wait_access(4)
    assert all(r["cause"] == "closed" for r in recs)


def test_global_max_connections_across_listeners(fulcrum, backend, connect):
    b = backend("B")
    p1, p2 = free_port(), free_port()
    cfg = make_config([listener("one", fmt_addr("127.0.0.1", p1), "backs"),
                       listener("two", fmt_addr("127.0.0.1", p2), "backs")],
                      [pool("backs", [b.address])], workers=2, max_connections=2)
    f = fulcrum(cfg)
    f.wait_error_log(r"at most 2 connections")

    c1, c2 = connect(p1), connect(p2)
    assert served_by(c1) == "B" and served_by(c2) == "B"
    c3 = connect(p2)
    waits_without_service(c3, b, 2)
    c1.close()                         # a slot frees on the other listener
    assert served_by(c3) == "B"
    assert b.wait_accepted(3)
    c2.close()
    c3.close()
    f.wait_access(3)


def test_client_idle_timeout(fulcrum, backend, connect, port):
    b = backend("QUIET", handler=silent)
    f = fulcrum(simple_config([b], port, listener_kw={
        "timeouts": {"client_idle": "400ms", "server_idle": "30s"}}))

    s = connect(port)
    t0 = time.monotonic()
    assert closed_by_peer(s, timeout=5)
    idle = time.monotonic() - t0
    assert 0.3 <= idle < 3, f"closed after {idle:.2f}s, client_idle is 400ms"
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "client_idle_timeout"
    assert b.wait_accepted(1) and b.conns[0].done.wait(5)   # the backend was closed too


def test_traffic_keeps_a_connection_alive(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port, listener_kw={
        "timeouts": {"client_idle": "500ms", "server_idle": "500ms"}}))

    s = connect(port)
    assert served_by(s) == "B"
    for i in range(6):                 # 1.5 s in all, three times the idle limit
        time.sleep(0.25)
        s.sendall(b"tick %d\n" % i)
        assert recv_line(s) == b"tick %d\n" % i
    assert closed_by_peer(s, timeout=5)
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] in ("client_idle_timeout", "server_idle_timeout")
    assert int(rec["duration_ms"]) >= 1500


def test_server_idle_timeout(fulcrum, backend, connect, port):
    b = backend("QUIET", handler=silent)
    f = fulcrum(simple_config([b], port, listener_kw={
        "timeouts": {"client_idle": "30s", "server_idle": "400ms"}}))

    s = connect(port)
    assert closed_by_peer(s, timeout=5)
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "server_idle_timeout"
    assert 300 <= int(rec["duration_ms"]) < 3000


def test_listener_max_connections_spans_its_binds(fulcrum, backend, connect):
    b = backend("B")
    p = free_port()
    f = fulcrum(make_config([listener("dual", [fmt_addr("127.0.0.1", p), fmt_addr("::1", p)],
                                      "backs", max_connections=1)],
                            [pool("backs", [b.address])], workers=2))

    c1 = connect(p, host="127.0.0.1")
    assert served_by(c1) == "B"
    c2 = connect(p, host="::1")
    waits_without_service(c2, b, 1)
    c1.close()
    assert served_by(c2) == "B"
    c2.close()
    f.wait_access(2)


def test_one_way_traffic_is_not_idle(fulcrum, backend, connect, port):
    """A client that only receives is not idle: client_idle counts bytes in
    either direction."""
    def ticker(b, conn):
        for i in range(8):             # 1.6 s, four times client_idle
            conn.sock.sendall(b"tick\n")
            time.sleep(0.2)

    b = backend("T", handler=ticker)
    f = fulcrum(simple_config([b], port, listener_kw={
        "timeouts": {"client_idle": "400ms", "server_idle": "400ms"}}))

    s = connect(port)
    assert recv_all_lines(s) == [b"tick\n"] * 8
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed" and rec["bytes_out"] == str(8 * 5)


def recv_all_lines(s, max_lines=1000):
    out = []
    for _ in range(max_lines):
        line = recv_line(s)
        if not line:
            break
        out.append(line)
    return out


def test_out_of_file_descriptors_clients_wait(fulcrum, backend, connect, port):
    """With more connections allowed than file descriptors (RLIMIT_NOFILE 40,
    max_connections 1000), the clients fulcrum has no descriptors for wait
    (like max_connections) and are served once others close; running out is
    logged at most about once per second; no busy loop."""
    b = backend("B")
    f = fulcrum(simple_config([b], port, workers=1, max_connections=1000,
                              listener_kw={"forwarding": "buffer"}), nofile=40)

    socks = [connect(port) for _ in range(30)]
    cpu0 = proc_cpu_seconds(f.pid)
    time.sleep(1.0)
    served, waiting, dropped = [], [], []
    for s in socks:
        s.settimeout(0.1)
        try:
            line = recv_line(s)
        except socket.timeout:
            waiting.append(s)
            continue
        except ConnectionResetError:
            line = b""
        (served if line == b"B\n" else dropped).append(s)
    assert served and (waiting or dropped), "40 descriptors should not serve 30 clients"
    cpu = proc_cpu_seconds(f.pid) - cpu0
    assert cpu < 0.3, f"fulcrum burnt {cpu:.2f}s of CPU while out of descriptors"
    assert not dropped, (f"{len(dropped)} of 30 clients were closed unserved when fulcrum ran "
                         f"out of descriptors ({len(served)} served, {len(waiting)} waiting); "
                         "access log causes: "
                         f"{sorted(set(r['cause'] for r in f.access_records()))}")
    emfile = [ln for ln in f.error_log().splitlines() if "Too many open files" in ln]
    assert len(emfile) <= 3, ("running out of descriptors was logged %d times in about a "
                              "second:\n%s" % (len(emfile), "\n".join(emfile)))
    for s in served:
        s.close()
    for s in waiting:
        s.settimeout(5)
        assert served_by(s) == "B"
        s.close()


def test_backlog_bounds_the_waiting_clients(fulcrum, backend, connect, port):
    """At max_connections, clients wait in the kernel's accept queue, whose
    length is the listener's backlog: beyond it a connect does not complete."""
    b = backend("B")
    f = fulcrum(simple_config([b], port, workers=1,
                              listener_kw={"max_connections": 1, "backlog": 1}))

    c1 = connect(port)
    assert served_by(c1) == "B"
    queued = [connect(port) for _ in range(2)]      # Linux queues backlog + 1
    with socket.socket() as probe:
        probe.settimeout(0.5)
        with pytest.raises(socket.timeout):
            probe.connect(("127.0.0.1", port))
    c1.close()
    for s in queued:
        assert served_by(s) == "B"
        s.close()
    assert b.wait_accepted(3)
    f.wait_access(3)


def test_denied_clients_do_not_freeze_a_listener_at_its_limit(fulcrum, backend, connect, port):
    """max_connections 1, two workers, and a stream of denied clients: a
    denied client holds the only slot for a moment (accept, check, close). A
    worker that found the slot taken then must still be woken when it is
    given back, or its waiting clients wait until some real connection
    closes - here, forever."""
    b = backend("B")
    f = fulcrum(simple_config([b], port, workers=2, listener_kw={
        "max_connections": 1, "deny": ["127.0.0.2/32"]}))

    stop = threading.Event()
    denied = [0]

    def flood():
        deadline = time.monotonic() + 10
        for _ in range(20000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            with socket.socket() as s:
                s.settimeout(2)
                s.bind(("127.0.0.2", 0))
                try:
                    s.connect(("127.0.0.1", port))
                except OSError:
                    continue
            denied[0] += 1

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        served = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            s = connect(port, timeout=2)
            try:
                line = recv_line(s)
            except socket.timeout:
                line = None
            s.close()
            assert line == b"B\n", (
                f"client {served + 1} waited 2 s unserved although no other client was "
                f"being served (max_connections 1; {denied[0]} denied clients so far)")
            served += 1
            # Let fulcrum finish this one, so the slot is really free again.
            f.wait_access(served, pred=lambda r: r["cause"] == "closed")
    finally:
        stop.set()
        t.join(5)
    assert denied[0] > 50

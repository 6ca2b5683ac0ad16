"""Forwarding and balancing through a TCP listener: round robin and weights,
IPv6, half-close in both directions, least_connections, source_hash and
maglev, weight 0 and backup servers."""

import re
import socket
import subprocess

import pytest

from conftest import (MiB, Payload, echo, fmt_addr, free_port, fulcrum_bin, recv_all,
                      recv_exact, recv_line, simple_config, socket_ccs, available_ccs, to_yaml)


def ask_name(connect, port, host="127.0.0.1", source=None, clients=None):
    """Open a connection, read the backend's greeting line, close. clients
    collects (client address, name) pairs."""
    s = connect(port, host, source)
    line = recv_line(s)
    if clients is not None:
        clients.append((fmt_addr(*s.getsockname()[:2]), line.decode().strip()))
    s.close()
    assert line.endswith(b"\n"), f"no greeting through fulcrum (got {line!r})"
    return line.decode().strip()


def test_round_robin_alternates_exactly(fulcrum, backend, connect, port):
    a, b = backend("A"), backend("B")
    f = fulcrum(simple_config([a, b], port, workers=1))

    clients = []
    names = [ask_name(connect, port, clients=clients) for _ in range(10)]

    first, second = names[0], ({"A", "B"} - {names[0]}).pop()
    assert names == [first, second] * 5, clients
    # Both backends saw every connection they were given, and nothing else.
    assert a.wait_accepted(5) and b.wait_accepted(5)
    assert (a.accepted, b.accepted) == (5, 5)
    # The access log names, for each client, the server that answered it.
    recs = f.wait_access(10)
    by_addr = {a.address: "A", b.address: "B"}
    assert {r["client"]: by_addr[r["server"]] for r in recs} == dict(clients)
    assert all(r["cause"] == "closed" and r["listener"] == "front" for r in recs)


def test_round_robin_honours_weights(fulcrum, backend, connect, port):
    a, b = backend("A"), backend("B")
    f = fulcrum(simple_config([{"address": a.address, "weight": 3},
                               {"address": b.address, "weight": 1}], port, workers=1))

    names = [ask_name(connect, port) for _ in range(40)]

    assert names.count("A") == 30 and names.count("B") == 10, names
    # Smooth weighted round robin: every run of 4 picks holds exactly one B.
    for i in range(0, 40, 4):
        assert names[i:i + 4].count("B") == 1, names
    assert (a.accepted, b.accepted) == (30, 10)
    f.wait_access(40)


def test_ipv6_listener_to_ipv4_and_ipv6_backends(fulcrum, backend, connect):
    v4 = backend("V4", host="127.0.0.1")
    v6 = backend("V6", host="::1")
    p6, p4 = free_port("::1"), free_port("127.0.0.1")
    cfg = simple_config([v4, v6], p6, workers=1, host="::1")
    # A second, IPv4 listener in front of the IPv6 backend alone.
    cfg["listeners"].append({"name": "v4front", "bind": fmt_addr("127.0.0.1", p4),
                             "protocol": "tcp", "pool": "only6"})
    cfg["pools"].append({"name": "only6", "protocol": "tcp",
                         "servers": [{"address": v6.address}]})
    f = fulcrum(cfg)

    names, clients = [], []
    for i in range(4):
        s = connect(p6, host="::1")
        names.append(recv_line(s).decode().strip())
        msg = f"hello over v6 #{i}\n".encode()
        s.sendall(msg)
        assert recv_line(s) == msg
        clients.append(s.getsockname()[1])
        s.close()
    assert sorted(names) == ["V4", "V4", "V6", "V6"] and names[0] != names[1]

    s = connect(p4, host="127.0.0.1")
    assert recv_line(s) == b"V6\n"
    s.sendall(b"v4 client\n")
    assert recv_line(s) == b"v4 client\n"
    s.close()

    assert v4.wait_accepted(2) and v6.wait_accepted(3)
    # Each backend saw fulcrum connect from its own family's loopback.
    assert {c.peer[0] for c in v4.conns} == {"127.0.0.1"}
    assert {c.peer[0] for c in v6.conns} == {"::1"}
    assert b"hello over v6 #" in v4.conns[0].received
    assert any(c.received == b"v4 client\n" for c in v6.conns)
    recs = f.wait_access(5)
    front = [r for r in recs if r["listener"] == "front"]
    assert sorted(r["client"] for r in front) == sorted(f"[::1]:{p}" for p in clients)
    assert {r["server"] for r in front} == {v4.address, v6.address}
    assert all(r["bytes_in"] == str(len(b"hello over v6 #0\n")) for r in front)


def request_then_respond(response):
    """Handler: read the whole request (until EOF), then send response, close."""
    def handler(b, conn):
        while conn.recv_record():
            pass
        conn.info["eof_before_reply"] = conn.eof.is_set()
        conn.sock.sendall(response)
    return handler


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_half_close_from_client(fulcrum, backend, connect, port, forwarding):
    """Client sends a request and shuts down its write side; the backend sees
    EOF, answers with a large response and closes; the client gets all of it."""
    response = b"".join(bytes(c) for c in Payload(3 * MiB + 12345, seed=7).chunks())
    b = backend("R", handler=request_then_respond(response))
    f = fulcrum(simple_config([b], port, listener_kw={"forwarding": forwarding}))

    request = b"PUT /thing\n" + bytes(range(256)) * 400
    s = connect(port, timeout=15)
    s.sendall(request)
    s.shutdown(socket.SHUT_WR)
    got = recv_all(s)
    s.close()

    assert len(got) == len(response) and got == response
    assert b.wait_accepted(1)
    conn = b.conns[0]
    assert conn.done.wait(5)
    assert conn.info.get("eof_before_reply") is True
    assert bytes(conn.received) == request
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed"
    assert (int(rec["bytes_in"]), int(rec["bytes_out"])) == (len(request), len(response))


def greet_then_shut(b, conn):
    """Handler: send a greeting, shut down the write side, then keep reading
    until the client is done."""
    conn.sock.sendall(b"early words, then silence\n")
    conn.sock.shutdown(socket.SHUT_WR)
    while conn.recv_record():
        pass


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_half_close_from_server(fulcrum, backend, connect, port, forwarding):
    """The backend shuts down its write side first: the client sees EOF, can
    still send, and the backend receives it."""
    b = backend("S", handler=greet_then_shut)
    f = fulcrum(simple_config([b], port, listener_kw={"forwarding": forwarding}))

    s = connect(port)
    assert recv_all(s) == b"early words, then silence\n"     # EOF from the server
    late = b"still talking after your FIN\n" * 1000
    s.sendall(late)
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b""
    s.close()

    assert b.wait_accepted(1) and b.conns[0].done.wait(5)
    assert bytes(b.conns[0].received) == late
    assert b.conns[0].error is None
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed" and int(rec["bytes_in"]) == len(late)


def test_least_connections_avoids_busy_server(fulcrum, backend, connect, port):
    a, b = backend("A"), backend("B")
    f = fulcrum(simple_config([a, b], port, workers=1, algorithm="least_connections"))

    held = connect(port)
    busy = recv_line(held).decode().strip()
    other = ({"A", "B"} - {busy}).pop()

    for i in range(6):
        assert ask_name(connect, port) == other
        # Wait until fulcrum has closed it, so the next pick sees it gone.
        f.wait_access(i + 1)
    held.sendall(b"still here\n")
    assert recv_line(held) == b"still here\n"
    held.close()
    srv = {"A": a, "B": b}
    assert srv[busy].accepted == 1 and srv[other].accepted == 6


@pytest.mark.parametrize("algorithm", ["source_hash", "maglev"])
def test_hashing_keeps_a_client_on_its_server(fulcrum, backend, connect, port, algorithm):
    backs = [backend(n) for n in ("A", "B", "C")]
    f = fulcrum(simple_config(backs, port, workers=2, algorithm=algorithm))

    sources = [f"127.0.0.{i}" for i in range(10, 26)]
    home = {}
    for src in sources:
        got = {ask_name(connect, port, source=src) for _ in range(3)}
        assert len(got) == 1, f"{algorithm}: client {src} went to {got}"
        home[src] = got.pop()
    assert len(set(home.values())) >= 2, f"{algorithm}: every client hashed to one server"
    # The backends saw each client's connections arrive from fulcrum; the
    # access log has the client address as fulcrum saw it.
    recs = f.wait_access(3 * len(sources))
    by_addr = {b.address: b.name for b in backs}
    for r in recs:
        assert by_addr[r["server"]] == home[r["client"].rsplit(":", 1)[0]]

    # One server dies: only its clients move, and they move consistently.
    victim = max("ABC", key=lambda n: list(home.values()).count(n))
    next(b for b in backs if b.name == victim).stop()
    for src in sources:
        got = {ask_name(connect, port, source=src) for _ in range(2)}
        assert len(got) == 1, f"{algorithm}: client {src} went to {got} after {victim} died"
        now = got.pop()
        if home[src] == victim:
            assert now != victim
        else:
            assert now == home[src], f"{algorithm}: {src} moved from {home[src]} to {now}"


def test_weight_zero_and_backup(fulcrum, backend, connect, port):
    a, z, bk = backend("A"), backend("Z"), backend("BK")
    f = fulcrum(simple_config([{"address": a.address, "weight": 1},
                               {"address": z.address, "weight": 0},
                               {"address": bk.address, "backup": True}], port, workers=2))

    assert [ask_name(connect, port) for _ in range(8)] == ["A"] * 8
    a.stop()
    # With the only usable primary gone, the backup takes over (never Z).
    assert [ask_name(connect, port) for _ in range(6)] == ["BK"] * 6
    assert z.accepted == 0
    f.wait_error_log(rf"connect to server {a.address} of pool backs failed: Connection refused")


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_concurrent_clients_echo(fulcrum, backend, connect, port, forwarding):
    """Many interleaved connections over two workers each get exactly their
    own bytes back."""
    backs = [backend(n, handler=echo) for n in ("E1", "E2")]
    f = fulcrum(simple_config(backs, port, workers=2, listener_kw={"forwarding": forwarding}))

    socks = [connect(port) for _ in range(20)]
    for rnd in range(5):
        msgs = [f"client {i} round {rnd} ".encode() * (1 + 50 * i) + b"\n"
                for i in range(len(socks))]
        for s, m in zip(socks, msgs):
            s.sendall(m)
        for s, m in zip(socks, msgs):
            assert recv_exact(s, len(m)) == m
    for s in socks:
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
        s.close()
    recs = f.wait_access(20)
    assert all(r["cause"] == "closed" and r["bytes_in"] == r["bytes_out"] for r in recs)
    assert sum(b.accepted for b in backs) == 20


def test_random_two_prefers_the_less_loaded(fulcrum, backend, connect, port):
    """With two servers, both choices are always drawn: an idle pool spreads
    connections over both, and a busy server gets no new ones."""
    a, b = backend("A"), backend("B")
    f = fulcrum(simple_config([a, b], port, workers=2, algorithm="random_two"))

    spread = []
    for i in range(30):
        spread.append(ask_name(connect, port))
        f.wait_access(i + 1)
    assert set(spread) == {"A", "B"}, spread

    held = connect(port)
    busy = recv_line(held).decode().strip()
    other = ({"A", "B"} - {busy}).pop()
    for i in range(8):
        assert ask_name(connect, port) == other
        f.wait_access(31 + i)
    held.close()


# --------------------------------------------------------------------------
# congestion control

def test_tcp_congestion_applies_to_each_side(fulcrum, backend, connect, port):
    """A listener's tcp_congestion is used by its accepted connections and a
    pool's by the connections to its servers; everything else keeps the
    system's."""
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        system = f.read().strip()
    assert "reno" in available_ccs()  # always built in
    to_servers = next((c for c in available_ccs() if c not in ("reno", system)), "reno")
    a = backend("A", handler=echo)
    fulcrum(simple_config([a], port, workers=1, listener_kw={"tcp_congestion": "reno"},
                          pool_kw={"tcp_congestion": to_servers}))
    s = connect(port)
    s.sendall(b"ping\n")
    assert recv_exact(s, 5) == b"ping\n"
    client_side = socket_ccs(port)
    server_side = socket_ccs(a.port)
    mine = fmt_addr(*s.getsockname()[:2])
    assert client_side[(fmt_addr("127.0.0.1", port), mine)] == "reno", client_side
    assert client_side[(mine, fmt_addr("127.0.0.1", port))] == system, client_side
    fulcrum_to_server = [cc for (local, peer), cc in server_side.items()
                         if peer == fmt_addr("127.0.0.1", a.port)]
    assert fulcrum_to_server == [to_servers], server_side


def test_unknown_tcp_congestion_is_a_config_error(tmp_path, port):
    path = tmp_path / "cc.yaml"
    path.write_text(to_yaml(simple_config(["127.0.0.1:9"], port,
                                          pool_kw={"tcp_congestion": "nosuch"})) + "\n")
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert 'pools[0].tcp_congestion: congestion control "nosuch" cannot be used' in r.stderr, r.stderr
    # The error points at the key's own line, not at the pool's.
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if "tcp_congestion" in t)
    assert re.search(rf":{line}:\d+: pools\[0\]\.tcp_congestion:", r.stderr), r.stderr
    assert "reno" in r.stderr.split("this kernel has:")[1], r.stderr

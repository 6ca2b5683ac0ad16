"""TLS passthrough: a tcp listener with tls_passthrough reads the
ClientHello without terminating TLS, picks a pool by its server name, and
forwards every byte untouched. The backends here are TLS servers over
memory BIOs that record every byte they receive and the server name their
own ssl context saw."""

import time

import pytest

from conftest import MiB, fmt_addr, make_config, recv_line
from tls_helpers import (BioClient, bio_tls_server, client_ctx, s_client_until, server_ctx,
                         split_records, tls_counters)


def tls_servers(backend, p):
    """Backends A (*.example.com), B (exact.test) and C (default), each a TLS
    server with a certificate for a.example.com (what the client checks)."""
    out = {}
    for name in "ABC":
        b = backend(name)
        b.handler = bio_tls_server(server_ctx(p.a))
        out[name] = b
    return out


def passthrough_config(port, servers, default="pc", routes=None, **lkw):
    lst = {"name": "front", "bind": fmt_addr("127.0.0.1", port), "protocol": "tcp",
           "tls_passthrough": True}
    if default:
        lst["pool"] = default
    lst["routes"] = routes if routes is not None else [
        {"match": {"sni": "*.example.com"}, "pool": "pa"},
        {"match": {"sni": "exact.test"}, "pool": "pb"},
    ]
    lst.update(lkw)
    pools = [{"name": f"p{n.lower()}", "protocol": "tcp", "servers": [{"address": b.address}]}
             for n, b in servers.items()]
    return make_config([lst], pools, workers=1, log={"level": "debug"})


def through(connect, port, p, sni, pieces=None, verify_name="a.example.com"):
    """A TLS conversation through the passthrough listener. Returns (the
    greeting line 'NAME SNI', the ClientHello bytes as sent)."""
    s = connect(port)
    ctx = client_ctx(p)
    if sni is None or sni != verify_name:
        ctx.check_hostname = False   # the backends' certificate names a.example.com only
    c = BioClient(s, ctx, sni)
    sent = pieces(c.hello) if pieces else [c.hello]
    c.send_hello(sent)
    c.finish()
    line = b""
    while not line.endswith(b"\n"):
        d = c.read()
        assert d, f"closed after {line!r}"
        line += d
    c.write(b"ping")
    got = b""
    while len(got) < 4:
        d = c.read()
        assert d
        got += d
    assert got == b"ping"
    s.close()
    return line.decode().strip(), b"".join(sent)


@pytest.mark.parametrize("sni,want", [
    ("a.example.com", "A"),
    ("deep.sub.example.com", "A"),      # *.example.com: any depth
    ("A.EXAMPLE.COM", "A"),             # server names are case-insensitive
    ("exact.test", "B"),
    ("Exact.Test", "B"),
    ("sub.exact.test", "C"),            # exact means exact
    ("example.com", "C"),               # the wildcard does not cover the bare domain
    ("other.test", "C"),
    (None, "C"),                        # no SNI: the default route
])
def test_routing_by_sni(fulcrum, backend, connect, port, p, sni, want):
    srv = tls_servers(backend, p)
    fulcrum(passthrough_config(port, srv))
    greeting, hello = through(connect, port, p, sni)
    assert greeting == f"{want} {sni}", greeting
    # The server saw the client's ClientHello byte for byte, first.
    b = srv[want]
    assert b.wait_accepted(1)
    conn = b.conns[0]
    assert bytes(conn.received[:len(hello)]) == hello, "the ClientHello was changed on the way"
    assert conn.info["sni"] == sni
    for other, ob in srv.items():
        if other != want:
            assert ob.accepted == 0, f"{other} got a connection for SNI {sni!r}"


def test_default_route_without_match(fulcrum, backend, connect, port, p):
    """A route without match is the default, like the listener's pool."""
    srv = tls_servers(backend, p)
    routes = [{"match": {"sni": "exact.test"}, "pool": "pb"}, {"pool": "pa"}]
    fulcrum(passthrough_config(port, srv, default=None, routes=routes))
    assert through(connect, port, p, "exact.test")[0] == "B exact.test"
    assert through(connect, port, p, "zzz.test")[0] == "A zzz.test"
    assert through(connect, port, p, None)[0] == "A None"


def test_no_route_closes_the_connection(fulcrum, backend, connect, port, p):
    srv = tls_servers(backend, p)
    f = fulcrum(passthrough_config(port, srv, default=None,
                                   routes=[{"match": {"sni": "exact.test"}, "pool": "pb"}]))
    s = connect(port)
    c = BioClient(s, client_ctx(p, verify=False), "nowhere.test")
    c.send_hello()
    s.settimeout(5)
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    assert all(b.accepted == 0 for b in srv.values())
    f.wait_error_log(r'no route for server name "nowhere\.test"')


def test_clienthello_one_byte_at_a_time(fulcrum, backend, connect, port, p):
    srv = tls_servers(backend, p)
    fulcrum(passthrough_config(port, srv))
    s = connect(port)
    c = BioClient(s, client_ctx(p), "a.example.com")
    for i in range(len(c.hello)):
        s.sendall(c.hello[i:i + 1])
        if i % 16 == 0:
            time.sleep(0.002)
    c.finish()
    assert c.read().startswith(b"A a.example.com")
    assert bytes(srv["A"].conns[0].received[:len(c.hello)]) == c.hello


@pytest.mark.parametrize("at", [10, 60, 200])
def test_clienthello_split_over_two_records(fulcrum, backend, connect, port, p, at):
    """A ClientHello may span several TLS records (large key shares do);
    the server name can lie in the second one."""
    srv = tls_servers(backend, p)
    fulcrum(passthrough_config(port, srv))
    greeting, sent = through(connect, port, p, "exact.test",
                             pieces=lambda h: [split_records(h, at)])
    assert greeting == "B exact.test"
    assert bytes(srv["B"].conns[0].received[:len(sent)]) == sent


def test_s_client_through_passthrough(fulcrum, backend, port, p):
    """A real client: openssl s_client verifies the backend's certificate,
    which proves fulcrum did not terminate TLS (it has none)."""
    srv = tls_servers(backend, p)
    fulcrum(passthrough_config(port, srv))
    out = s_client_until(port, [], "hello again", input=b"hello again\n", sni="a.example.com",
                         cafile=p.root.crt)
    assert "Verify return code: 0 (ok)" in out, out
    assert "A a.example.com" in out, out
    assert "hello again" in out, out


def test_bulk_data_through_passthrough(fulcrum, backend, connect, port, p):
    srv = tls_servers(backend, p)
    fulcrum(passthrough_config(port, srv))
    s = connect(port)
    s.settimeout(30)
    c = BioClient(s, client_ctx(p), "a.example.com")
    c.send_hello()
    c.finish()
    assert recv_greeting(c) == b"A a.example.com\n"
    block = bytes(range(256)) * 256     # 64 KiB
    echoed = bytearray()
    for i in range(16):                 # 1 MiB in all
        c.write(block)
        while len(echoed) < len(block) * (i + 1):
            d = c.read()
            assert d, "closed during the transfer"
            echoed += d
    assert echoed == block * 16
    assert len(srv["A"].conns[0].received) > 1 * MiB


def recv_greeting(c):
    line = b""
    while not line.endswith(b"\n"):
        d = c.read()
        assert d
        line += d
    return line


def test_not_tls_is_closed_and_counted(fulcrum, backend, connect, port, p):
    srv = tls_servers(backend, p)
    f = fulcrum(passthrough_config(port, srv))
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
    assert recv_line(s) == b"", "a non-TLS client got an answer"
    s.close()
    f.wait_error_log(r"listener front: client 127\.0\.0\.1:\d+: not a TLS ClientHello")
    assert all(b.accepted == 0 for b in srv.values())
    assert through(connect, port, p, "a.example.com")[0] == "A a.example.com"
    c = tls_counters(f, "front")
    assert c["tls_failed_not_tls"] == 1, c


def test_silent_client_times_out(fulcrum, backend, connect, port, p):
    srv = tls_servers(backend, p)
    f = fulcrum(passthrough_config(port, srv, timeouts={"handshake": "500ms"}))
    s = connect(port)
    s.sendall(b"\x16\x03\x01")        # the start of a record, then nothing
    t0 = time.monotonic()
    s.settimeout(5)
    assert recv_line(s) == b""
    took = time.monotonic() - t0
    assert 0.3 <= took <= 3.0, f"closed after {took:.2f}s with handshake: 500ms"
    assert all(b.accepted == 0 for b in srv.values())
    c = tls_counters(f, "front")
    assert c["tls_failed_timeout"] == 1, c

"""HTTP timeouts, each with its status: a slowloris client is cut at
timeouts.header with a 408 and never costs a server connection; a server
that never answers gets a 504 at timeouts.server; an idle keep-alive client
connection is closed at timeouts.keepalive; a client that stalls in its body
gets a 408 at timeouts.client_idle; a client that connects and stays silent
holds no connection slot and is still closed."""

import select
import time

import pytest

from http_helpers import Resp, build, client, http_backend, http_config, wait_records


def test_slowloris_gets_408_at_the_header_timeout(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"header": "1s"}}))
    c = client(connect, port)
    head = build("GET", "/slow", headers=[("X-Padding", "p" * 40)])
    t0 = time.monotonic()
    sent = 0
    # One byte every 300 ms: the head (~100 bytes) would take 30 s.
    for byte in head:
        try:
            c.sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        readable, _, _ = select.select([c.sock], [], [], 0.3)
        if readable or time.monotonic() - t0 > 4:
            break
    r = c.response()
    took = time.monotonic() - t0
    assert r.status == 408 and r.closes, r
    assert c.closed()
    assert 0.8 <= took <= 2.5, f"408 after {took:.2f}s with timeouts.header 1s"
    assert sent < len(head)
    assert a.accepted == 0, "a slowloris client cost a server connection"
    rec = wait_records(f, 1)[0]
    assert rec["status"] == "408"


def test_header_timeout_counts_from_the_first_byte_of_the_head(fulcrum, backend, connect, port):
    """timeouts.header bounds the whole head, not each read: a head that
    trickles in steadily is still cut."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"header": "1s",
                                                                     "client_idle": "10s"}}))
    c = client(connect, port)
    t0 = time.monotonic()
    c.send(b"GET / HTTP/1.1\r\n")
    for i in range(30):
        time.sleep(0.1)
        try:
            c.send(b"X-%d: y\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            break
        if time.monotonic() - t0 > 2.5:
            break
    r = c.response()
    assert r.status == 408, r
    assert time.monotonic() - t0 < 2.5
    assert a.accepted == 0


def test_server_that_never_answers_gets_504(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(action="hang"))
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"server": "1s"}}))
    c = client(connect, port)
    t0 = time.monotonic()
    r = c.request("GET", "/never")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.8 <= took <= 2.5, f"504 after {took:.2f}s with timeouts.server 1s"
    assert len(a.wait_requests(1)) == 1
    # The server connection that timed out is not reused: it is closed.
    assert a.backend.conns[0].eof.wait(3)
    assert wait_records(f, 1)[0]["status"] == "504"


def test_slow_server_within_the_timeout_is_fine(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"late", delay=0.5))
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"server": "2s"}}))
    r = client(connect, port).request()
    assert r.status == 200 and r.body == b"late"


def test_keepalive_idle_client_connection_is_closed(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"keepalive": "1s"}}))
    c = client(connect, port)
    assert c.request().status == 200
    t0 = time.monotonic()
    assert c.closed(timeout=5), "the idle keep-alive connection was never closed"
    took = time.monotonic() - t0
    assert 0.7 <= took <= 2.5, f"closed after {took:.2f}s with timeouts.keepalive 1s"


def test_keepalive_timeout_resets_with_each_request(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"keepalive": "1s"}}))
    c = client(connect, port)
    for i in range(4):              # 4 x 0.6 s: longer than 1 s in all
        assert c.request("GET", f"/{i}").status == 200
        time.sleep(0.6)
    assert c.request("GET", "/last").status == 200


def test_client_idle_during_the_body_gets_408(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"client_idle": "1s"}}))
    c = client(connect, port)
    t0 = time.monotonic()
    c.send(build("POST", "/upload", headers=[("Content-Length", "100")]) + b"x" * 10)
    r = c.response()
    took = time.monotonic() - t0
    assert r.status == 408 and r.closes, r
    assert c.closed()
    assert 0.8 <= took <= 2.5, f"408 after {took:.2f}s with timeouts.client_idle 1s"
    # The server never got a complete request, and its connection was closed.
    assert a.requests == []
    assert all(conn.eof.wait(3) for conn in a.backend.conns)
    assert wait_records(f, 1)[0]["status"] == "408"


def test_server_stalling_in_its_body_is_cut_at_server_idle(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(
        raw=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, hang_after=True))
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"server_idle": "1s"}}))
    c = client(connect, port)
    c.send(build("GET", "/stall"))
    t0 = time.monotonic()
    got = bytearray()
    for _ in range(1000):
        try:
            data = c.sock.recv(4096)
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    took = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"x" * 10), got
    assert 0.8 <= took <= 2.5, f"closed after {took:.2f}s with timeouts.server_idle 1s"
    assert all(conn.eof.wait(3) for conn in a.backend.conns)
    assert wait_records(f, 1)[0]["status"] == "200"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_client_waiting_for_a_slow_answer_is_not_idle(fulcrum, backend, connect, port, method):
    """client_idle is for a client that stops sending; a client that sent
    its whole request and waits for the answer is governed by
    timeouts.server, with or without a request body."""
    a = http_backend(backend, "A", respond=Resp(200, b"worth the wait", delay=1.2))
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {
        "client_idle": "500ms", "server": "5s"}}))
    r = client(connect, port).request(method, "/slow", body=b"x" if method == "POST" else None)
    assert r.status == 200 and r.body == b"worth the wait", r


def test_silent_connections_take_no_connection_slot(fulcrum, backend, connect, port):
    """HTTP listeners take a connection once its first bytes arrive (the
    client speaks first): connections that stay silent do not hold the
    listener's only slot while a real client waits."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"max_connections": 1,
                                                        "timeouts": {"header": "10s"}}))
    silent = [connect(port) for _ in range(3)]
    time.sleep(0.3)
    c = client(connect, port)
    c.sock.settimeout(3)
    t0 = time.monotonic()
    c.send(build("GET", "/"))
    r = c.response()
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took < 1.0, f"answered after {took:.2f}s behind {len(silent)} silent connections"


def test_silent_client_is_still_closed(fulcrum, backend, connect, port):
    """A client that connects and never sends is taken after about a second
    and then closed at timeouts.header, without contacting a server."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"timeouts": {"header": "500ms"}}))
    s = connect(port)
    s.settimeout(6)
    t0 = time.monotonic()
    while s.recv(4096):
        pass
    took = time.monotonic() - t0
    assert took <= 4.0, f"a silent client was closed only after {took:.2f}s"
    assert a.accepted == 0

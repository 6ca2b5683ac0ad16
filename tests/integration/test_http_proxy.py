"""Proxying HTTP/1.1: hop-by-hop fields, X-Forwarded-* and Forwarded,
keep-alive and the server connection pool, pipelining, HTTP/1.0 clients,
and retries (connect failures, servers closing without an answer, and the
non-retry of POST)."""

import socket
import time

import pytest

from conftest import fmt_addr, free_port, socket_ccs
from http_helpers import (Resp, build, client, http_backend, http_config, wait_records)


# --------------------------------------------------------------------------
# hop-by-hop fields

def test_hop_by_hop_request_fields_are_not_forwarded(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("GET", "/", headers=[
        ("Connection", "keep-alive, X-Drop-Me, x-drop-too"),
        ("Keep-Alive", "timeout=5, max=100"),
        ("TE", "trailers"),
        ("Proxy-Connection", "keep-alive"),
        ("Upgrade", "h2c"),
        ("X-Drop-Me", "secret"),
        ("X-Drop-Too", "secret"),
        ("X-Keep", "kept"),
    ])
    assert r.status == 200, r
    got = a.wait_requests(1)[0]
    names = got.headers.names()
    for gone in ("connection", "keep-alive", "te", "proxy-connection", "upgrade", "x-drop-me",
                 "x-drop-too"):
        assert gone not in names, got
    assert got.headers.all("x-keep") == ["kept"], got
    # The client connection is still usable (keep-alive was honoured).
    assert c.request("GET", "/again").status == 200


def test_connection_cannot_remove_framing_or_added_fields(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("POST", "/submit", body=b"hello", headers=[
        ("Connection", "Content-Length, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, "
                       "X-Forwarded-Port, Host, Transfer-Encoding, Forwarded"),
    ])
    assert r.status == 200, r
    got = a.wait_requests(1)[0]
    assert got.body == b"hello" and got.headers.all("content-length") == ["5"], got
    assert got.headers.all("x-forwarded-for") == ["127.0.0.1"], got
    assert got.headers.all("x-forwarded-proto") == ["http"], got
    assert got.headers.all("x-forwarded-host") == ["example.com"], got
    assert got.headers.all("x-forwarded-port") == [str(port)], got
    assert got.headers.all("host") == ["example.com"], got
    assert "connection" not in got.headers.names()


def test_hop_by_hop_response_fields_are_not_forwarded(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"ok", headers=[
        ("Connection", "X-Internal"), ("X-Internal", "secret"), ("Keep-Alive", "timeout=9"),
        ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"), ("X-Public", "yes")]))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request()
    assert r.status == 200 and r.body == b"ok", r
    names = r.headers.names()
    for gone in ("x-internal", "keep-alive", "proxy-connection", "upgrade"):
        assert gone not in names, r
    assert r.headers.all("x-public") == ["yes"]
    assert c.request().status == 200


# --------------------------------------------------------------------------
# X-Forwarded-* and Forwarded

def test_x_forwarded_fields_added_and_spoofed_ones_replaced(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("GET", "/", host="Shop.Example:8443", headers=[
        ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "1"),
        ("Forwarded", "for=6.6.6.6")])
    assert r.status == 200
    got = a.wait_requests(1)[0]
    assert got.headers.all("x-forwarded-for") == ["127.0.0.1"], got
    assert got.headers.all("x-forwarded-proto") == ["http"], got
    assert got.headers.all("x-forwarded-host") == ["Shop.Example:8443"], got
    assert got.headers.all("x-forwarded-port") == [str(port)], got
    assert got.headers.all("forwarded") == [], got


def test_x_forwarded_for_from_trusted_proxy_is_appended_to(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"trusted_proxies": ["127.0.0.2/32"]}))
    # 127.0.0.2 is a trusted proxy: its X-Forwarded-For is kept and appended to.
    c = client(connect, port, source="127.0.0.2")
    assert c.request(headers=[("X-Forwarded-For", "203.0.113.7, 198.51.100.1")]).status == 200
    # 127.0.0.1 is not: the same field is replaced.
    c2 = client(connect, port, source="127.0.0.1")
    assert c2.request(headers=[("X-Forwarded-For", "203.0.113.7")]).status == 200
    reqs = a.wait_requests(2)
    assert reqs[0].headers.all("x-forwarded-for") == ["203.0.113.7, 198.51.100.1, 127.0.0.2"]
    assert reqs[1].headers.all("x-forwarded-for") == ["127.0.0.1"]


def test_trusted_x_forwarded_for_on_two_lines_keeps_both(fulcrum, backend, connect, port):
    """Two X-Forwarded-For lines are one list (RFC 9110 5.3): none of the
    earlier hops may be lost."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"trusted_proxies": "127.0.0.0/8"}))
    c = client(connect, port)
    assert c.request(headers=[("X-Forwarded-For", "203.0.113.7"),
                              ("X-Forwarded-For", "198.51.100.1")]).status == 200
    got = a.wait_requests(1)[0]
    joined = ", ".join(got.headers.all("x-forwarded-for"))
    assert joined == "203.0.113.7, 198.51.100.1, 127.0.0.1", got


def test_forwarded_rfc7239(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    p6 = free_port("::1")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={
        "forwarded": True, "bind": [fmt_addr("127.0.0.1", port), fmt_addr("::1", p6)]}))
    assert client(connect, port).request(host="example.com").status == 200
    assert client(connect, p6, host="::1").request(host="example.com").status == 200
    reqs = a.wait_requests(2)
    assert reqs[0].headers.all("forwarded") == ['for=127.0.0.1;proto=http;host="example.com"']
    assert reqs[1].headers.all("forwarded") == ['for="[::1]";proto=http;host="example.com"']
    assert reqs[1].headers.all("x-forwarded-for") == ["::1"]


def test_x_forwarded_port_is_the_port_the_client_connected_to(fulcrum, backend, connect, port):
    """A listener bound to two ports: each request says which one it came in on."""
    a = http_backend(backend, "A")
    p2 = free_port()
    fulcrum(http_config(port, {"p": [a]}, listener_kw={
        "bind": [fmt_addr("127.0.0.1", port), fmt_addr("127.0.0.1", p2)]}))
    assert client(connect, port).request().status == 200
    assert client(connect, p2).request().status == 200
    reqs = a.wait_requests(2)
    assert [r.headers.all("x-forwarded-port") for r in reqs] == [[str(port)], [str(p2)]]


# --------------------------------------------------------------------------
# field names with underscores (CGI-style servers read '_' as '-')

SPOOFS = [("X_Forwarded_For", "6.6.6.6"), ("x_forwarded_proto", "https"),
          ("X-Forwarded_Host", "evil.example"), ("X_Client_Cert_Subject", "CN=admin"),
          ("X_Client_Cert_Verify", "SUCCESS"), ("Content_Length", "99"),
          ("Transfer_Encoding", "chunked"), ("X_Route", "client-value"), ("X_Secret", "s")]
HEADER_ROUTE = [{"request_headers": {"set": {"X-Route": "api"}, "remove": ["X-Secret"]},
                 "pool": "p"}]


def test_underscore_fields_posing_as_fulcrums_own_are_dropped(fulcrum, backend, connect, port):
    """By default fields with '_' pass, but not one that a CGI-style server
    (HTTP_X_FORWARDED_FOR) would take for a field fulcrum sets or controls:
    forwarding and client-certificate fields, framing, the route's edits."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, routes=HEADER_ROUTE))
    c = client(connect, port)
    r = c.request("GET", "/", headers=SPOOFS + [("api_key", "k1"), ("X_Custom", "c")])
    assert r.status == 200, r
    got = a.wait_requests(1)[0]
    names = got.headers.names()
    for spoof, _ in SPOOFS:
        assert spoof.lower() not in names, got
    assert got.headers.all("api_key") == ["k1"] and got.headers.all("x_custom") == ["c"], got
    assert got.headers.all("x-forwarded-for") == ["127.0.0.1"], got
    assert got.headers.all("x-route") == ["api"], got
    assert got.body == b"" and got.framing_headers() == [], got
    assert c.request("GET", "/again").status == 200


def test_underscore_fields_drop(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"underscore_fields": "drop"}))
    c = client(connect, port)
    assert c.request("GET", "/", headers=[("api_key", "k1"), ("X-Plain", "p"),
                                          ("X_Custom", "c")]).status == 200
    got = a.wait_requests(1)[0]
    assert "api_key" not in got.headers.names() and "x_custom" not in got.headers.names(), got
    assert got.headers.all("x-plain") == ["p"], got


def test_underscore_fields_reject(fulcrum, backend, connect, port):
    """reject: 400 and close, logged, the server sees nothing; requests
    without '_' in their field names (values may have it) pass."""
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"underscore_fields": "reject"}))
    c = client(connect, port)
    r = c.request("GET", "/", headers=[("api_key", "k1")])
    assert r.status == 400 and r.closes, r
    assert c.closed()
    rec = wait_records(f, 1)[0]
    assert int(rec["status"]) == 400, rec
    assert a.accepted == 0 and not a.received_anything()
    c2 = client(connect, port)
    assert c2.request("GET", "/ok_path", headers=[("X-Key", "a_b")]).status == 200
    got = a.wait_requests(1)[0]
    assert got.target == "/ok_path" and got.headers.all("x-key") == ["a_b"], got


# --------------------------------------------------------------------------
# keep-alive, pooling, pipelining

def test_1000_requests_over_one_client_connection_use_one_server_connection(
        fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, workers=2))
    c = client(connect, port)
    for i in range(1000):
        c.send(build("GET", f"/r{i}"))
        r = c.response()
        assert r.status == 200 and r.body == f"A GET /r{i}\n".encode(), (i, r)
        assert not r.closes
    reqs = a.wait_requests(1000)
    assert len(reqs) == 1000
    assert a.accepted == 1, f"{a.accepted} server connections for 1000 requests"
    assert {r.conn for r in reqs} == {0}


def test_sequential_clients_share_a_pooled_server_connection(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, workers=1))
    for i in range(10):
        c = client(connect, port)
        assert c.request("GET", f"/c{i}").status == 200
        c.sock.close()
    assert len(a.wait_requests(10)) == 10
    assert a.accepted == 1


def test_pool_max_idle_zero_closes_each_server_connection(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, pool_kw={"p": {"keepalive": {"max_idle": 0}}}))
    c = client(connect, port)
    for i in range(5):
        assert c.request("GET", f"/{i}").status == 200
    assert len(a.wait_requests(5)) == 5
    assert a.accepted == 5


def test_pool_idle_timeout_closes_idle_server_connections(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]},
                        pool_kw={"p": {"keepalive": {"max_idle": 8, "idle_timeout": "500ms"}}}))
    c = client(connect, port)
    assert c.request().status == 200
    conn = a.backend.conns[0]
    t0 = time.monotonic()
    assert conn.eof.wait(5), "the idle server connection was never closed"
    assert 0.3 < time.monotonic() - t0 < 3
    # The next request gets a new server connection and works.
    assert c.request().status == 200
    assert a.accepted == 2


def test_pipelined_requests_are_answered_in_order(fulcrum, backend, connect, port):
    def respond(req):
        # The first answer is the slowest: order must still hold.
        return Resp(200, f"{req.method} {req.target} {req.body.decode()}".encode(),
                    delay=0.2 if req.target == "/1" else 0)
    a = http_backend(backend, "A", respond=respond)
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(build("GET", "/1") + build("POST", "/2", body=b"two") + build("GET", "/3"))
    bodies = [c.response().body for _ in range(3)]
    assert bodies == [b"GET /1 ", b"POST /2 two", b"GET /3 "]
    assert [r.target for r in a.wait_requests(3)] == ["/1", "/2", "/3"]


def test_client_connection_close_is_honoured(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request(headers=[("Connection", "close")])
    assert r.status == 200 and r.closes, r
    assert c.closed()


def test_http10_client_without_keepalive(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"old school", framing="close"))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(b"GET /legacy HTTP/1.0\r\n\r\n")
    r = c.response()
    assert r.status == 200 and r.body == b"old school", r
    assert c.closed(), "the HTTP/1.0 connection stayed open"
    got = a.wait_requests(1)[0]
    assert got.version == "HTTP/1.0" and got.target == "/legacy"


def test_http10_client_with_keepalive(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    for i in range(3):
        c.send(f"GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
        r = c.response()
        assert r.status == 200 and r.body == f"A GET /k{i}\n".encode(), r
        assert r.headers.get("content-length") is not None, r
    assert len(a.wait_requests(3)) == 3


def test_http10_requests_with_a_host_share_pooled_server_connections(fulcrum, backend, connect,
                                                                     port):
    """A 1.0 request that names its host is sent as HTTP/1.1, so the server
    connection is pooled as for 1.1 clients (ab -k, old monitors)."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, workers=1))
    c = client(connect, port)
    for i in range(20):
        c.send(f"GET /k{i} HTTP/1.0\r\nHost: example.test\r\n"
               f"Connection: keep-alive\r\n\r\n".encode())
        r = c.response()
        assert r.status == 200 and r.body == f"A GET /k{i}\n".encode(), r
    for i in range(5):  # one request per client connection
        c = client(connect, port)
        c.send(f"GET /once{i} HTTP/1.0\r\nHost: example.test\r\n\r\n".encode())
        r = c.response()
        assert r.status == 200 and r.body == f"A GET /once{i}\n".encode(), r
        assert c.closed(), "the HTTP/1.0 connection stayed open"
    reqs = a.wait_requests(25)
    assert {q.version for q in reqs} == {"HTTP/1.1"}
    assert {q.headers.get("host") for q in reqs} == {"example.test"}
    assert a.accepted == 1, f"{a.accepted} server connections for 25 HTTP/1.0 requests"


def test_chunked_answer_is_decoded_for_an_http10_client(fulcrum, backend, connect, port):
    """An HTTP/1.0 client cannot read chunked coding: it gets the data
    alone, ended by the close of its connection, and no interim 1xx. The
    server connection is still pooled."""
    body = bytes(range(256)) * 40
    a = http_backend(backend, "A", respond=Resp(
        200, body, framing="chunked", chunk_size=997, headers=[("X-Kept", "yes")],
        interim=[(103, [("Link", "</s.css>; rel=preload")])]))
    fulcrum(http_config(port, {"p": [a]}, workers=1))
    for i in range(3):
        c = client(connect, port)
        c.send(b"GET /c HTTP/1.0\r\nHost: h.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.response()
        assert r.status == 200 and r.body == body, r
        assert r.interim == [], r.interim
        assert r.headers.get("transfer-encoding") is None, r
        assert r.headers.get("x-kept") == "yes" and r.closes, r
        assert c.closed(), "a close-delimited answer must end with the close"
    # An HTTP/1.1 client on the same pool still gets the chunked framing.
    c = client(connect, port)
    r = c.request("GET", "/c11")
    assert r.status == 200 and r.body == body and not r.closes, r
    assert r.headers.get("transfer-encoding") == "chunked" and len(r.interim) == 1, r
    assert a.accepted == 1, f"{a.accepted} server connections"


def test_http10_expect_is_not_passed_on(fulcrum, backend, connect, port):
    """Expect in an HTTP/1.0 request is to be ignored (RFC 9110 10.1.1), so
    the HTTP/1.1 server never sees it and sends no 100 to the 1.0 client."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(b"POST /up HTTP/1.0\r\nHost: h.test\r\nExpect: 100-continue\r\n"
           b"Content-Length: 4\r\n\r\ndata")
    r = c.response()
    assert r.status == 200 and r.interim == [], r
    got = a.wait_requests(1)[0]
    assert got.body == b"data" and got.headers.get("expect") is None, got.headers


# --------------------------------------------------------------------------
# retries

def test_refused_first_server_is_retried_on_the_next(fulcrum, backend, connect, port,
                                                      dead_address):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [dead_address(), a]}))
    for i in range(4):
        c = client(connect, port)
        r = c.request("GET", f"/{i}")
        assert r.status == 200 and r.body == f"A GET /{i}\n".encode(), r
    assert len(a.wait_requests(4)) == 4
    recs = wait_records(f, 4)
    assert any(int(r["retries"]) == 1 for r in recs), recs


def test_all_servers_down_is_503(fulcrum, backend, connect, port, dead_address):
    f = fulcrum(http_config(port, {"p": [dead_address(), dead_address()]}))
    c = client(connect, port)
    r = c.request()
    assert r.status == 503, r
    rec = wait_records(f, 1)[0]
    assert rec["status"] == "503"


def test_get_is_retried_when_a_server_closes_without_answering(fulcrum, backend, connect, port):
    closer = http_backend(backend, "closer", respond=Resp(action="close"))
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [closer, a]}))
    for i in range(2):
        c = client(connect, port)
        r = c.request("GET", f"/g{i}")
        assert r.status == 200 and r.body == f"A GET /g{i}\n".encode(), r
    assert len(closer.wait_requests(1)) == 1
    assert [r.target for r in a.wait_requests(2)] == ["/g0", "/g1"]


def test_post_is_not_retried_when_a_server_closes_without_answering(fulcrum, backend, connect,
                                                                     port):
    closer = http_backend(backend, "closer", respond=Resp(action="close"))
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [closer, a]}))
    statuses = []
    for i in range(2):
        c = client(connect, port)
        statuses.append(c.request("POST", f"/p{i}", body=b"pay once").status)
    assert sorted(statuses) == [200, 502], statuses
    assert len(closer.wait_requests(1)) == 1 and len(a.requests) == 1
    # The request closer swallowed was never sent again.
    assert {r.target for r in closer.requests} | {r.target for r in a.requests} == {"/p0", "/p1"}


def test_post_without_body_on_a_reused_connection_is_not_sent_twice(fulcrum, backend, connect,
                                                                     port):
    """A server takes a complete POST over a pooled connection and closes
    without answering: fulcrum must not send the POST again (it may have
    been executed), it answers 502."""
    seen = []

    def respond(req):
        seen.append(req.method)
        if req.method == "POST" and seen.count("POST") == 1:
            return Resp(action="close")
        return Resp(200, b"done")
    a = http_backend(backend, "A", respond=respond)
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    assert c.request("GET", "/warm").status == 200          # pools the connection
    c.send(b"POST /charge HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n")
    r = c.response()
    time.sleep(0.2)
    posts = [q for q in a.requests if q.method == "POST"]
    assert len(posts) == 1, f"the POST reached the server {len(posts)} times"
    assert r.status == 502, r


def test_retries_zero_does_not_try_another_server(fulcrum, backend, connect, port, dead_address):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [dead_address(), a]}, pool_kw={"p": {"retries": 0}}))
    statuses = sorted(client(connect, port).request().status for _ in range(2))
    assert statuses == [200, 503], statuses


# --------------------------------------------------------------------------
# what servers send back

BAD_RESPONSES = [
    ("garbage", b"hello there\r\n\r\n"),
    ("bad-status-code", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    ("http-2.0", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("bare-LF", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
    ("two-content-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
    ("te-and-cl", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
                  b"2\r\nok\r\n0\r\n\r\n"),
    ("te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok"),
    ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
]


@pytest.mark.parametrize("raw", [r for _, r in BAD_RESPONSES], ids=[i for i, _ in BAD_RESPONSES])
def test_invalid_response_is_502(fulcrum, backend, connect, port, raw):
    bad = http_backend(backend, "bad", respond=Resp(raw=raw, close_after=True))
    fulcrum(http_config(port, {"p": [bad]}))
    c = client(connect, port)
    r = c.request("POST", "/", body=b"x")
    assert r.status == 502, r
    assert b"ok" not in r.body


def test_server_connection_close_is_not_reused(fulcrum, backend, connect, port):
    """A server that says Connection: close and closes: the next request on
    the same client connection goes over a new server connection."""
    a = http_backend(backend, "A", respond=lambda req: Resp(200, req.target.encode(),
                                                            close_after=True))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    for i in range(5):
        r = c.request("POST", f"/{i}", body=b"x")
        assert r.status == 200 and r.body == f"/{i}".encode(), r
    assert a.accepted == 5


def test_field_order_and_repeated_fields_are_kept(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"ok", headers=[
        ("Set-Cookie", "a=1; Path=/"), ("X-Mid", "m"), ("Set-Cookie", "b=2; Path=/")]))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request(headers=[("Accept", "text/html"), ("Cookie", "x=1"), ("Accept", "*/*"),
                           ("X-Empty", "")])
    assert r.status == 200
    assert r.headers.all("set-cookie") == ["a=1; Path=/", "b=2; Path=/"], r
    got = a.wait_requests(1)[0]
    sent = [(k.lower(), v) for k, v in got.headers if k.lower() in ("accept", "cookie", "x-empty")]
    assert sent == [("accept", "text/html"), ("cookie", "x=1"), ("accept", "*/*"), ("x-empty", "")]


def test_connect_timeout_moves_on_to_the_next_server(fulcrum, backend, connect, port):
    """A server whose accept queue is full never completes the handshake:
    after timeouts.connect the request goes to the next server."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    try:
        for _ in range(4):      # fill the accept queue; later SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(full.getsockname())
            fillers.append(s)
        time.sleep(0.1)
        a = http_backend(backend, "A")
        f = fulcrum(http_config(port, {"p": [fmt_addr(*full.getsockname()), a]},
                                listener_kw={"timeouts": {"connect": "300ms"}},
                                log={"format": "json"}))
        t0 = time.monotonic()
        r = client(connect, port).request("GET", "/first")
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == b"A GET /first\n", r
        rec = wait_records(f, 1)[0]
        assert rec["retries"] == 1 and rec["server"] == a.address, rec
        assert 0.25 <= took < 2, f"{took:.2f}s with timeouts.connect 300ms"
    finally:
        for s in fillers:
            s.close()
        full.close()


def test_extra_bytes_after_a_response_never_reach_another_request(fulcrum, backend, connect,
                                                                  port):
    """A server sends more than its Content-Length (a desync): the extra
    bytes, shaped like a second response, must never be taken as the answer
    to a later request."""
    evil = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nevil"
    count = []

    def respond(req):
        count.append(req)
        if len(count) == 1:
            return Resp(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + evil)
        return Resp(200, b"genuine")
    a = http_backend(backend, "A", respond=respond)
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("GET", "/1")
    assert r.status == 200 and r.body == b"ok", r
    for i in range(3):
        time.sleep(0.05)
        c2 = client(connect, port)
        r = c2.request("GET", f"/next{i}")
        assert r.status == 200 and r.body == b"genuine" and r.headers.get("x-evil") is None, r
    r = c.request("GET", "/again")
    assert r.status == 200 and r.body == b"genuine", r


def test_connection_close_request_ends_the_pipeline(fulcrum, backend, connect, port):
    """Requests pipelined after one with Connection: close are not served."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(build("GET", "/last", headers=[("Connection", "close")]) + build("GET", "/after"))
    r = c.response()
    assert r.status == 200 and r.closes, r
    c.buf.clear()
    assert c.closed()
    time.sleep(0.1)
    assert [q.target for q in a.requests] == ["/last"]


def test_pipelined_refusal_after_a_good_request(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(build("GET", "/good") + b"GET /bad HTTP/1.1\r\nHost: example.com\r\nX-A : b\r\n\r\n"
           + build("GET", "/never"))
    assert c.response().status == 200
    r = c.response()
    assert r.status == 400 and r.closes, r
    assert c.closed()
    time.sleep(0.1)
    assert [q.target for q in a.requests] == ["/good"]


def test_http10_keepalive_is_confirmed_to_the_client(fulcrum, backend, connect, port):
    """An HTTP/1.0 client keeps a connection only when the answer says
    Connection: keep-alive (RFC 9112 C.2.2); without it, ab -k and other
    1.0 clients close after every response."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    tokens = [t.strip().lower() for v in r.headers.all("connection") for t in v.split(",")]
    assert "keep-alive" in tokens, r


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_server_closing_an_idle_connection_costs_no_request(fulcrum, backend, connect, port,
                                                            method):
    """Servers close idle keep-alive connections without warning; the next
    request, even a POST that cannot be retried, must not be sent into such
    a connection."""
    a = http_backend(backend, "A", respond=lambda req: Resp(200, req.target.encode(),
                                                            idle_close=0.1))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    for i in range(3):
        body = b"data" if method == "POST" else None
        r = c.request(method, f"/{i}", body=body)
        assert r.status == 200 and r.body == f"/{i}".encode(), (i, r)
        time.sleep(0.4)
    assert a.accepted == 3


def test_pool_max_idle_bounds_the_idle_connections(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"slow", delay=0.3))
    fulcrum(http_config(port, {"p": [a]}, pool_kw={"p": {"keepalive": {"max_idle": 1}}}))
    c1, c2 = client(connect, port), client(connect, port)
    c1.send(build("GET", "/1"))
    c2.send(build("GET", "/2"))
    assert c1.response().status == 200 and c2.response().status == 200
    assert a.accepted == 2
    conns = a.backend.conns
    time.sleep(0.5)
    closed = [conn.eof.is_set() for conn in conns]
    assert sorted(closed) == [False, True], closed


def test_pool_tcp_congestion_applies_to_server_connections(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, pool_kw={"p": {"tcp_congestion": "reno"}}))
    c = client(connect, port)
    assert c.request("GET", "/").status == 200
    ccs = socket_ccs(int(a.address.rsplit(":", 1)[1]))
    to_server = [cc for (local, peer), cc in ccs.items() if peer == a.address]
    assert to_server == ["reno"], ccs

"""The request parser's policy end to end (issue 3, "Parsing").

Every malformed request is sent raw to an http listener in front of a
recording backend: the client gets the right status with Connection: close,
the connection is closed, and the backend never sees a request. Every valid
request reaches the backend exactly once, with exactly one framing header
when it has a body, and the body intact."""

import time

import pytest

from http_helpers import (build, chunked, client, http_backend, http_config,
                          wait_records)

H = b"Host: example.com\r\n"


def req(line=b"GET / HTTP/1.1", fields=H, body=b""):
    return line + b"\r\n" + fields + b"\r\n" + body


def post(fields, body=b""):
    return req(b"POST /upload HTTP/1.1", H + fields, body)


BIG_TARGET = b"/" + b"a" * 8300
MANY_FIELDS = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
BIG_HEAD = b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 1000) for i in range(34))

# (id, raw request, expected status)
MALFORMED = [
    # line endings
    ("bare-LF-request-line", b"GET / HTTP/1.1\nHost: example.com\r\n\r\n", 400),
    ("bare-LF-field", b"GET / HTTP/1.1\r\nHost: example.com\nX-A: b\r\n\r\n", 400),
    ("bare-LF-end-of-head", b"GET / HTTP/1.1\r\nHost: example.com\r\n\n", 400),
    ("bare-LF-only-lines", b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    ("bare-CR-field-value", req(fields=H + b"X-A: a\rb\r\n"), 400),
    ("bare-CR-request-line", b"GET /\r HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bare-CR-end-of-field", req(fields=H + b"X-A: b\r\r\n"), 400),
    ("too-many-leading-CRLF", b"\r\n" * 6 + req(), 400),
    # request line
    ("double-space-after-method", req(b"GET  / HTTP/1.1"), 400),
    ("double-space-before-version", req(b"GET /  HTTP/1.1"), 400),
    ("tab-separator", req(b"GET\t/ HTTP/1.1"), 400),
    ("leading-space", req(b" GET / HTTP/1.1"), 400),
    ("trailing-space", req(b"GET / HTTP/1.1 "), 400),
    ("no-version", req(b"GET /"), 400),
    ("lowercase-version", req(b"GET / http/1.1"), 400),
    ("version-1.10", req(b"GET / HTTP/1.10"), 400),
    ("version-no-minor", req(b"GET / HTTP/1"), 400),
    ("version-letters", req(b"GET / HTTP/x.y"), 400),
    ("version-1.2", req(b"GET / HTTP/1.2"), 505),
    ("version-2.0", req(b"GET / HTTP/2.0"), 505),
    ("version-0.9", req(b"GET / HTTP/0.9"), 505),
    ("version-3.0", req(b"GET / HTTP/3.0"), 505),
    ("method-not-token", req(b"GE(T / HTTP/1.1"), 400),
    ("method-non-ascii", req(b"G\xc3\x89T / HTTP/1.1"), 400),
    ("target-fragment", req(b"GET /a#b HTTP/1.1"), 400),
    ("target-CTL", req(b"GET /a\x01b HTTP/1.1"), 400),
    ("target-DEL", req(b"GET /a\x7fb HTTP/1.1"), 400),
    ("target-relative", req(b"GET a/b HTTP/1.1"), 400),
    ("target-asterisk-GET", req(b"GET * HTTP/1.1"), 400),
    ("target-absolute-bad-authority", req(b"GET http://a b/ HTTP/1.1"), 400),
    ("target-absolute-userinfo", req(b"GET http://user@example.com/ HTTP/1.1"), 400),
    ("CONNECT", req(b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443\r\n"), 501),
    # field lines
    ("obs-fold", req(fields=H + b"X-A: a\r\n b\r\n"), 400),
    ("obs-fold-tab", req(fields=H + b"X-A: a\r\n\tb\r\n"), 400),
    ("space-before-colon", req(fields=H + b"X-A : b\r\n"), 400),
    ("tab-before-colon", req(fields=H + b"X-A\t: b\r\n"), 400),
    ("space-before-colon-host", req(fields=b"Host : example.com\r\n"), 400),
    ("field-without-colon", req(fields=H + b"X-A b\r\n"), 400),
    ("empty-field-name", req(fields=H + b": b\r\n"), 400),
    ("field-name-non-ascii", req(fields=H + b"X-\xc3\xa9: b\r\n"), 400),
    ("field-name-separator", req(fields=H + b"X(A): b\r\n"), 400),
    ("NUL-in-value", req(fields=H + b"X-A: a\x00b\r\n"), 400),
    ("CTL-in-value", req(fields=H + b"X-A: a\x01b\r\n"), 400),
    ("DEL-in-value", req(fields=H + b"X-A: a\x7fb\r\n"), 400),
    ("connection-not-token-list", req(fields=H + b"Connection: a b\r\n"), 400),
    # Host
    ("missing-host-1.1", req(fields=b""), 400),
    ("two-hosts", req(fields=H + b"Host: other.example\r\n"), 400),
    ("two-identical-hosts", req(fields=H + H), 400),
    ("host-with-space", req(fields=b"Host: exa mple.com\r\n"), 400),
    ("host-with-userinfo", req(fields=b"Host: user@example.com\r\n"), 400),
    ("host-bad-port", req(fields=b"Host: example.com:99999\r\n"), 400),
    ("host-empty", req(fields=b"Host:\r\n"), 400),
    # Content-Length
    ("CL-plus", post(b"Content-Length: +5\r\n", b"hello"), 400),
    ("CL-minus", post(b"Content-Length: -5\r\n", b"hello"), 400),
    ("CL-hex", post(b"Content-Length: 0x5\r\n", b"hello"), 400),
    ("CL-exponent", post(b"Content-Length: 1e3\r\n", b"hello"), 400),
    ("CL-list-different", post(b"Content-Length: 5, 6\r\n", b"hello"), 400),
    ("CL-two-different", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello"), 400),
    ("CL-inner-space", post(b"Content-Length: 1 0\r\n", b"hello"), 400),
    ("CL-empty", post(b"Content-Length:\r\n", b"hello"), 400),
    ("CL-empty-list-element", post(b"Content-Length: 5,\r\n", b"hello"), 400),
    ("CL-decimal", post(b"Content-Length: 5.0\r\n", b"hello"), 400),
    ("CL-overflow-64bit", post(b"Content-Length: 99999999999999999999\r\n", b"hello"), 400),
    ("CL-overflow-63bit", post(b"Content-Length: 9223372036854775808\r\n", b"hello"), 400),
    # Transfer-Encoding
    ("TE-gzip", post(b"Transfer-Encoding: gzip\r\n", b"hello"), 501),
    ("TE-identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), 501),
    ("TE-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", chunked(b"hello")), 501),
    ("TE-chunked-twice-list", post(b"Transfer-Encoding: chunked, chunked\r\n",
                                   chunked(b"hello")), 400),
    ("TE-chunked-twice-lines", post(b"Transfer-Encoding: chunked\r\n"
                                    b"Transfer-Encoding: chunked\r\n", chunked(b"hello")), 400),
    ("TE-chunked-not-last", post(b"Transfer-Encoding: chunked, gzip\r\n", chunked(b"hello")), 400),
    ("TE-chunked-with-parameter", post(b"Transfer-Encoding: chunked;q=1\r\n",
                                       chunked(b"hello")), 400),
    ("TE-empty", post(b"Transfer-Encoding:\r\n", b""), 400),
    ("TE-http-1.0", b"POST /upload HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     + chunked(b"hello"), 400),
    ("TE-and-CL", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunked(b"hello")),
     400),
    ("CL-and-TE", post(b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n", chunked(b"hello")),
     400),
    # limits
    ("request-line-over-8KiB", req(b"GET " + BIG_TARGET + b" HTTP/1.1"), 414),
    ("head-over-32KiB", req(fields=H + BIG_HEAD), 431),
    ("101-fields", req(fields=H + MANY_FIELDS), 431),
]

# Chunked bodies that turn out malformed after a valid head: (id, body).
BAD_CHUNKED = [
    ("chunk-size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-minus", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-trailing-space", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-underscore", b"5_0\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-empty", b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-overflow", b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("chunk-data-without-CRLF", b"5\r\nhelloXX\r\n0\r\n\r\n"),
    ("chunk-data-bare-LF", b"5\r\nhello\n0\r\n\r\n"),
    ("chunk-size-bare-LF", b"5\nhello\r\n0\r\n\r\n"),
    ("chunk-data-longer-than-size", b"3\r\nhello\r\n0\r\n\r\n"),
    ("chunk-trailer-obs-fold", b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
    ("chunk-trailer-no-colon", b"5\r\nhello\r\n0\r\nX-T a\r\n\r\n"),
]


def assert_refused(c, status, f=None):
    r = c.response()
    assert r.status == status, r
    assert r.closes, f"no Connection: close on the {status}: {r}"
    assert c.closed(), "the connection stayed open after the refusal"
    return r


def start(fulcrum, backend, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}))
    return a, f


@pytest.mark.parametrize("raw,status", [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed_request_is_refused_before_the_backend(fulcrum, backend, connect, port,
                                                         raw, status):
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(raw)
    assert_refused(c, status)
    # The refusal is logged, and no byte of it reached the backend.
    rec = wait_records(f, 1)[0]
    assert int(rec["status"]) == status, rec
    assert a.accepted == 0 and a.requests == [] and not a.received_anything(), a.conn_bytes()


@pytest.mark.parametrize("body", [c[1] for c in BAD_CHUNKED], ids=[c[0] for c in BAD_CHUNKED])
def test_malformed_chunked_body_is_refused(fulcrum, backend, connect, port, body):
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(post(b"Transfer-Encoding: chunked\r\n", body))
    assert_refused(c, 400)
    # The backend never gets a complete request, nor any of the bad bytes:
    # at most the head (fulcrum streams bodies), then its connection closes.
    assert a.requests == [], a.requests
    for data in a.conn_bytes():
        head, _, rest = data.partition(b"\r\n\r\n")
        assert body.startswith(rest) and len(rest) < len(body), (head, rest)


def test_chunked_body_invalid_from_its_first_byte_never_reaches_the_backend(fulcrum, backend,
                                                                            connect, port):
    """Head and a broken first chunk line arrive together: fulcrum has every
    byte it needs to refuse before choosing a server, so the backend must
    not see the head of the refused request (issue 3: "the backend never
    sees a byte of a rejected request")."""
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"))
    assert_refused(c, 400)
    assert a.accepted == 0 and not a.received_anything(), a.conn_bytes()


def test_chunked_error_in_a_later_packet_never_completes_a_request(fulcrum, backend, connect,
                                                                    port):
    """A bad chunk that arrives after a valid one, in a later packet."""
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n"))
    assert wait_heads(a, 1)
    c.send(b"5\r\nworldXX\r\n0\r\n\r\n")
    assert_refused(c, 400)
    assert a.requests == []
    assert b"XX" not in b"".join(a.conn_bytes())


def wait_heads(a, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(a.heads) < n:
        time.sleep(0.01)
    return len(a.heads) >= n


# --------------------------------------------------------------------------
# valid requests: exactly one request, exactly one framing header

# (id, raw, expected method, target, body, framing at the backend)
VALID = [
    ("GET", req(), "GET", "/", b"", None),
    ("POST-CL", post(b"Content-Length: 5\r\n", b"hello"), "POST", "/upload", b"hello", "length"),
    ("POST-CL-empty", post(b"Content-Length: 0\r\n"), "POST", "/upload", b"", "length"),
    ("POST-CL-identical-list", post(b"Content-Length: 5, 5\r\n", b"hello"), "POST", "/upload",
     b"hello", "length"),
    ("POST-CL-identical-lines", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
     "POST", "/upload", b"hello", "length"),
    ("POST-chunked", post(b"Transfer-Encoding: chunked\r\n", chunked(b"hello world, chunked!")),
     "POST", "/upload", b"hello world, chunked!", "chunked"),
    ("POST-chunked-uppercase", post(b"Transfer-Encoding: CHUNKED\r\n", chunked(b"hello")),
     "POST", "/upload", b"hello", "chunked"),
    ("POST-chunked-empty-list-elements", post(b"Transfer-Encoding: , chunked,\r\n",
                                              chunked(b"hello")),
     "POST", "/upload", b"hello", "chunked"),
    ("POST-chunked-extensions", post(b"Transfer-Encoding: chunked\r\n",
                                     chunked(b"hello world", 4, ';name="v a\\"l";x=1')),
     "POST", "/upload", b"hello world", "chunked"),
    ("POST-chunked-empty-body", post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
     "POST", "/upload", b"", "chunked"),
    ("PUT-chunked-hex-uppercase", req(b"PUT /x HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n",
                                      b"1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"),
     "PUT", "/x", b"z" * 26, "chunked"),
    ("one-leading-CRLF", b"\r\n" + req(), "GET", "/", b"", None),
    ("HTTP-1.0-without-host", b"GET /old HTTP/1.0\r\n\r\n", "GET", "/old", b"", None),
    ("absolute-form", req(b"GET http://other.example:8080/p?q=1 HTTP/1.1"), "GET", "/p?q=1", b"",
     None),
    ("OPTIONS-asterisk", req(b"OPTIONS * HTTP/1.1"), "OPTIONS", "*", b"", None),
    ("100-fields", req(fields=H + b"".join(b"X-F%d: v\r\n" % i for i in range(99))), "GET", "/",
     b"", None),
    ("long-target-under-limit", req(b"GET /" + b"a" * 8000 + b" HTTP/1.1"), "GET",
     "/" + "a" * 8000, b"", None),
    ("value-with-obs-text-and-tab", req(fields=H + b"X-A: caf\xe9\tau lait\r\n"), "GET", "/", b"",
     None),
    ("custom-method", req(b"PURGE /cache HTTP/1.1"), "PURGE", "/cache", b"", None),
]


@pytest.mark.parametrize("raw,method,target,body,framing", [c[1:] for c in VALID],
                         ids=[c[0] for c in VALID])
def test_valid_request_reaches_the_backend_once(fulcrum, backend, connect, port,
                                                raw, method, target, body, framing):
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(raw)
    r = c.response(method)
    assert r.status == 200, r
    reqs = a.wait_requests(1)
    assert len(reqs) == 1 and a.garbage == [], (reqs, a.garbage)
    got = reqs[0]
    assert (got.method, got.target, got.body) == (method, target, body), got
    assert got.framing == framing, got
    framing_fields = got.framing_headers()
    if framing is None:
        assert framing_fields == [], got
    else:
        assert len(framing_fields) == 1, got
        if framing == "chunked":
            assert framing_fields[0][1].lower() == "chunked", got
        else:
            assert framing_fields[0][1] == str(len(body)), got
    assert got.headers.number("host") <= 1, got
    # Nothing else reaches the backend on that connection.
    assert a.requests == reqs


def test_absolute_form_authority_replaces_host(fulcrum, backend, connect, port):
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(req(b"GET http://Other.Example:8080/p HTTP/1.1", b"Host: example.com\r\n"))
    assert c.response().status == 200
    got = a.wait_requests(1)[0]
    assert got.headers.all("host") == ["Other.Example:8080"], got


def test_chunked_trailers_are_not_merged_into_the_head(fulcrum, backend, connect, port):
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(post(b"Transfer-Encoding: chunked\r\n",
                b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n"))
    assert c.response().status == 200
    got = a.wait_requests(1)[0]
    assert got.body == b"hello"
    assert got.headers.get("x-checksum") is None and got.headers.get("x-more") is None, got
    assert b"X-Checksum: abc" in got.trailers, got.trailers


def test_refusal_after_a_good_request_on_the_same_connection(fulcrum, backend, connect, port):
    """The good request is answered; the bad one behind it is refused and
    never reaches the backend."""
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    c.send(build("GET", "/good"))
    assert c.response().status == 200
    c.send(req(b"GET /bad HTTP/1.1", H + b"X-A : b\r\n"))
    assert_refused(c, 400)
    assert [r.target for r in a.requests] == ["/good"]
    assert b"/bad" not in b"".join(a.conn_bytes())


def test_smuggling_attempt_cl_te_is_refused(fulcrum, backend, connect, port):
    """A CL.TE smuggling request: the hidden second request never reaches
    the backend."""
    a, f = start(fulcrum, backend, port)
    c = client(connect, port)
    hidden = b"GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n"
    body = b"0\r\n\r\n" + hidden
    c.send(post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body), body))
    assert_refused(c, 400)
    assert a.accepted == 0 and b"/admin" not in b"".join(a.conn_bytes())


def test_refusal_is_logged_with_its_status(fulcrum, backend, connect, port):
    a, f = start(fulcrum, backend, port)
    for raw, status in [(req(b"GET / HTTP/2.0"), 505), (req(fields=b""), 400),
                        (post(b"Transfer-Encoding: gzip\r\n"), 501)]:
        c = client(connect, port)
        c.send(raw)
        assert_refused(c, status)
    recs = wait_records(f, 3)
    assert sorted(int(r["status"]) for r in recs) == [400, 501, 505], recs
    assert a.accepted == 0


def test_configured_limits_at_their_boundaries(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={
        "limits": {"request_line": "1k", "head": "4k", "fields": 10}}))

    def status(raw):
        c = client(connect, port)
        c.send(raw)
        return c.response().status

    line = lambda n: b"GET /" + b"a" * (n - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"  # noqa: E731
    assert len(line(1024)) == 1024
    assert status(req(line(1024))) == 200
    assert status(req(line(1025))) == 414
    fields = lambda n: H + b"".join(b"X-%d: v\r\n" % i for i in range(n - 1))  # noqa: E731
    assert status(req(fields=fields(10))) == 200
    assert status(req(fields=fields(11))) == 431
    big = H + b"X-Big: " + b"b" * 4200 + b"\r\n"
    assert status(req(fields=big)) == 431
    reqs = a.wait_requests(2)
    assert [len(r.target) for r in reqs] == [len(line(1024)) - len(" HTTP/1.1") - 4, 1], reqs
    time.sleep(0.1)
    assert len(a.requests) == 2


@pytest.mark.parametrize("listener_kw", [{"forwarded": True}, {"limits": {"head": "64k"}}],
                         ids=["forwarded", "head-64k"])
def test_long_host_cannot_smuggle_a_request_through_the_rewritten_head(
        fulcrum, backend, connect, port, listener_kw):
    """fulcrum repeats the Host in X-Forwarded-Host (and Forwarded): a head
    within the limits can grow past what fulcrum can write. It must then
    refuse the request, never send a cut head whose missing end lets the
    body be read as a second request by the backend."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw=listener_kw))
    c = client(connect, port)
    host = "h" * (25000 if "forwarded" in listener_kw else 40000)
    hidden = b"\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    c.send(build("POST", "/public", host=host, body=hidden))
    r = c.response()
    time.sleep(0.3)
    assert [q.target for q in a.requests] in ([], ["/public"]), a.requests
    assert b"/admin" not in b"".join(a.conn_bytes()).split(b"\r\n\r\n", 1)[0]
    if a.requests:
        got = a.requests[0]
        assert r.status == 200 and got.body == hidden and got.headers.get("host") == host
    else:
        assert r.status >= 400 and r.closes, r

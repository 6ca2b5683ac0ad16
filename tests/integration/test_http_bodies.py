"""Message bodies through the HTTP proxy: Content-Length and chunked
requests, Content-Length, chunked and close-delimited responses, HEAD, 204
and 304 without a body, 1xx responses, Expect: 100-continue with curl,
100 MiB each way with matching SHA-256, and limits.body."""

import hashlib
import os
import random
import resource
import socket
import struct
import subprocess
import time

import pytest

from conftest import MiB, Payload, send_payload
from http_helpers import (Resp, build, chunked, client, http_backend, http_config,
                          wait_records)

BODY = random.Random(7).randbytes(300 * 1024)


# --------------------------------------------------------------------------
# request bodies

def test_content_length_body_passes_intact(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("PUT", "/blob", body=BODY)
    assert r.status == 200, r
    got = a.wait_requests(1)[0]
    assert got.framing == "length" and got.body == BODY
    assert got.headers.all("content-length") == [str(len(BODY))]
    assert got.headers.number("transfer-encoding") == 0


def test_chunked_body_arrives_chunked_and_unchanged(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    framed = chunked(BODY, size=10000, ext=";sig=abc")
    c.send(build("POST", "/stream", headers=[("Transfer-Encoding", "chunked")]) + framed)
    r = c.response()
    assert r.status == 200, r
    got = a.wait_requests(1)[0]
    assert got.framing == "chunked" and got.body == BODY
    assert got.headers.all("transfer-encoding") == ["chunked"]
    assert got.headers.number("content-length") == 0
    # The chunks (sizes and extensions) are passed through as they were.
    assert got.chunked_raw == framed[:-len(b"\r\n")], "chunk framing changed on the way"


def test_chunked_body_sent_slowly_in_pieces(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    framed = chunked(b"0123456789" * 30, size=37)
    c.send(build("POST", "/drip", headers=[("Transfer-Encoding", "chunked")]))
    for i in range(0, len(framed), 50):
        c.send(framed[i:i + 50])
        time.sleep(0.005)
    assert c.response().status == 200
    assert a.wait_requests(1)[0].body == b"0123456789" * 30
    # The connection is ready for the next request.
    assert c.request("GET", "/next").status == 200


# --------------------------------------------------------------------------
# response bodies

def test_response_with_content_length(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, BODY))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request()
    assert r.status == 200 and r.body == BODY
    assert r.headers.all("content-length") == [str(len(BODY))]
    assert c.request().body == BODY       # still in step on the same connection


def test_chunked_response(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, BODY, framing="chunked", chunk_size=4096))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request()
    assert r.status == 200 and r.body == BODY
    assert r.headers.all("transfer-encoding") == ["chunked"], r
    assert r.headers.number("content-length") == 0
    assert c.request().body == BODY


def test_close_delimited_response(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, BODY, framing="close"))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    c.send(build("GET", "/"))
    r = c.response()
    assert r.status == 200 and r.body == BODY, r
    assert c.eof, "the body was not delimited by the close of the connection"


def test_head_response_has_no_body(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"x" * 1234))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("HEAD", "/")
    assert r.status == 200 and r.body == b""
    assert r.headers.all("content-length") == ["1234"], r
    # No stray body bytes: the next answer on the connection is parsed cleanly.
    r2 = c.request("GET", "/")
    assert r2.status == 200 and r2.body == b"x" * 1234


def test_204_and_304_have_no_body(fulcrum, backend, connect, port):
    def respond(req):
        if req.target == "/204":
            return Resp(204, framing="none")
        if req.target == "/304":
            return Resp(304, framing="none", headers=[("ETag", '"v1"')])
        return Resp(200, b"after")
    a = http_backend(backend, "A", respond=respond)
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("DELETE", "/204")
    assert r.status == 204 and r.headers.number("content-length") == 0, r
    assert r.headers.number("transfer-encoding") == 0, r
    r = c.request("GET", "/304", headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.headers.get("etag") == '"v1"', r
    assert r.headers.number("transfer-encoding") == 0, r
    # Had fulcrum put a body after either, this would read it instead.
    r = c.request("GET", "/after")
    assert r.status == 200 and r.body == b"after", r
    c.sock.settimeout(0.3)
    assert c.closed(timeout=0.3) is False


def test_1xx_early_hints_is_forwarded(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(
        200, b"page", interim=[(103, [("Link", "</style.css>; rel=preload; as=style")])]))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request()
    assert [st for st, _ in r.interim] == [103], r.interim
    assert r.interim[0][1].get("link") == "</style.css>; rel=preload; as=style"
    assert r.status == 200 and r.body == b"page"
    assert c.request().status == 200


def test_expect_100_continue_with_curl(fulcrum, backend, port, tmp_path):
    a = http_backend(backend, "A", send_continue=True,
                     respond=lambda req: Resp(200, hashlib.sha256(req.body).hexdigest()))
    fulcrum(http_config(port, {"p": [a]}))
    data = random.Random(3).randbytes(2 * MiB)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    t0 = time.monotonic()
    # curl waits --expect100-timeout for the 100 before sending the body:
    # only a forwarded 100 Continue makes this quick.
    out = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "--expect100-timeout", "10",
         "-H", "Expect: 100-continue", "--data-binary", f"@{path}",
         f"http://127.0.0.1:{port}/upload"],
        capture_output=True, timeout=30)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert out.stdout.decode() == hashlib.sha256(data).hexdigest()
    assert b"HTTP/1.1 100 Continue" in out.stderr, out.stderr.decode(errors="replace")
    assert took < 5, f"curl waited {took:.1f}s: the 100 Continue did not reach it"
    got = a.wait_requests(1)[0]
    assert got.headers.get("expect") == "100-continue" and got.body == data


def pipes_of(pid):
    """How many pipes the process holds open."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_large_response_bodies_end_where_they_should(fulcrum, backend, connect, port, forwarding):
    """Large bodies (which `forwarding: auto` moves with splice) arrive
    whole, and never a byte more: the server connection carries the next
    answers of the same client connection. A close-delimited body ends with
    the client's connection."""
    big = Payload(32 * MiB + 123, seed=21)
    tail = random.Random(5).randbytes(3 * MiB + 7)

    def respond(req):
        if req.target == "/big":
            return Resp(200, payload=big)
        if req.target == "/close":
            return Resp(200, tail, framing="close")
        return Resp(200, req.target.encode())
    a = http_backend(backend, "A", respond=respond)
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"forwarding": forwarding}))
    c = client(connect, port, timeout=30)
    for target in ["/big", "/small", "/big", "/last"]:
        h = hashlib.sha256()
        n = [0]

        def sink(b):
            h.update(b)
            n[0] += len(b)
        r = c.request("GET", target) if target != "/big" else None
        if target == "/big":
            c.send(build("GET", target))
            time.sleep(0.3)  # a reader that lags: every buffer on the way fills
            r = c.response(sink=sink)
            assert r.status == 200 and n[0] == big.total and h.hexdigest() == big.sha256(), r
        else:
            assert r.status == 200 and r.body == target.encode(), r
        assert not r.closes, r
    c = client(connect, port, timeout=30)
    r = c.request("GET", "/close")
    assert r.status == 200 and r.body == tail, (r.status, len(r.body))
    assert c.closed()
    # One server connection for all five answers: no body was read past its end.
    assert a.accepted == 1, f"{a.accepted} server connections"
    # The path that carried the bodies: splice goes through pipes, which
    # fulcrum keeps for reuse; the buffer path opens none.
    assert (pipes_of(f.pid) > 0) == (forwarding == "auto")


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_large_request_bodies_end_where_they_should(fulcrum, backend, connect, port, forwarding):
    """Uploads (which `forwarding: auto` moves with splice once they are
    large) reach the server whole and never a byte more: the next request
    on the same connections is read as it was sent."""
    up = Payload(32 * MiB + 5, seed=41)
    a = http_backend(backend, "A", respond=lambda req: Resp(200, req.body_sha))
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"forwarding": forwarding}))
    c = client(connect, port, timeout=30)
    for i in range(2):
        c.send(build("POST", f"/up{i}", headers=[("Content-Length", str(up.total))]))
        sent, sha = send_payload(c.sock, up, limit=30)
        r = c.response()
        assert r.status == 200 and r.body.decode() == sha == up.sha256(), r
        r = c.request("POST", "/small", body=b"abc")
        assert r.status == 200 and r.body.decode() == hashlib.sha256(b"abc").hexdigest(), r
    reqs = a.wait_requests(4)
    assert [q.body_len for q in reqs] == [up.total, 3] * 2
    assert a.accepted == 1, f"{a.accepted} server connections"
    assert (pipes_of(f.pid) > 0) == (forwarding == "auto")


def test_large_bodies_go_on_with_buffers_when_no_pipe_can_be_had(fulcrum, backend, connect,
                                                                 port):
    """A pipe costs two descriptors. When fulcrum has none left, large bodies
    in both directions still arrive whole, over the buffer path, and the
    failure is logged (once a second at most)."""
    big = Payload(8 * MiB + 3, seed=17)
    up = Payload(8 * MiB + 5, seed=19)

    def respond(req):
        return Resp(200, payload=big) if req.target == "/big" else Resp(200, req.body_sha)
    a = http_backend(backend, "A", respond=respond)
    f = fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port, timeout=30)
    assert c.request("GET", "/first").status == 200   # both connections are open now
    # One descriptor left: pipe2() fails with EMFILE.
    nfds = len(os.listdir(f"/proc/{f.pid}/fd"))
    hard = resource.prlimit(f.pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(f.pid, resource.RLIMIT_NOFILE, (nfds + 1, hard))
    h = hashlib.sha256()
    n = [0]

    def sink(b):
        h.update(b)
        n[0] += len(b)
    c.send(build("GET", "/big"))
    r = c.response(sink=sink)
    assert r.status == 200 and n[0] == big.total and h.hexdigest() == big.sha256(), r
    c.send(build("POST", "/up", headers=[("Content-Length", str(up.total))]))
    sent, sha = send_payload(c.sock, up, limit=30)
    r = c.response()
    assert r.status == 200 and r.body.decode() == sha == up.sha256(), r
    assert pipes_of(f.pid) == 0
    assert a.accepted == 1, f"{a.accepted} server connections"
    assert "cannot create a pipe for splice" in f.error_log(), f.error_log()


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_client_leaving_mid_upload_costs_no_other_client(fulcrum, backend, connect, port,
                                                         forwarding):
    a = http_backend(backend, "A", respond=lambda req: Resp(200, req.body_sha))
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"forwarding": forwarding}))
    c = client(connect, port, timeout=30)
    c.send(build("POST", "/up", headers=[("Content-Length", str(32 * MiB))]))
    c.send(random.Random(3).randbytes(8 * MiB))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()
    rec = wait_records(f, 1)[0]
    assert rec["cause"] in ("client_reset", "client_closed_in_body"), rec
    r = client(connect, port).request("POST", "/next", body=b"xyz")
    assert r.status == 200 and r.body.decode() == hashlib.sha256(b"xyz").hexdigest(), r
    assert f.running()


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_server_dying_mid_body_ends_only_that_client(fulcrum, backend, connect, port, forwarding):
    """A server that closes 8 MiB into a 32 MiB body: the client gets those
    8 MiB, then the close (a truncated body cannot be mended), the log says
    why, and the next client is served."""
    part = random.Random(9).randbytes(8 * MiB)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {32 * MiB}\r\n\r\n".encode()

    def respond(req):
        if req.target == "/trunc":
            return Resp(raw=head + part, close_after=True)
        return Resp(200, b"fine")
    a = http_backend(backend, "A", respond=respond)
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"forwarding": forwarding}))
    c = client(connect, port, timeout=30)
    c.send(build("GET", "/trunc"))
    got = bytearray()
    with pytest.raises(EOFError):
        c.response(sink=got.extend)
    assert bytes(got) == part, f"{len(got)} of {len(part)} bytes before the close"
    rec = wait_records(f, 1)[0]
    assert rec["cause"] == "server_closed", rec
    r = client(connect, port).request("GET", "/next")
    assert r.status == 200 and r.body == b"fine", r


@pytest.mark.parametrize("forwarding", ["auto", "buffer"])
def test_client_leaving_mid_download_costs_no_other_client(fulcrum, backend, connect, port,
                                                           forwarding):
    big = Payload(32 * MiB, seed=31)
    a = http_backend(backend, "A", respond=Resp(200, payload=big))
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"forwarding": forwarding}))
    for _ in range(3):
        c = client(connect, port, timeout=30)
        c.send(build("GET", "/big"))
        while len(c.buf) < 1 * MiB and c._fill():
            pass
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()  # a reset, with most of the body still on its way
    h = hashlib.sha256()
    n = [0]

    def sink(b):
        h.update(b)
        n[0] += len(b)
    c = client(connect, port, timeout=30)
    c.send(build("GET", "/big"))
    r = c.response(sink=sink)
    assert r.status == 200 and n[0] == big.total and h.hexdigest() == big.sha256(), r
    recs = wait_records(f, 4)
    assert [x["cause"] for x in recs[:3]] == ["client_reset"] * 3, recs
    assert f.running()
    assert pipes_of(f.pid) <= 4  # pipes that held bytes were closed, not kept


def test_100_mib_upload_and_download(fulcrum, backend, connect, port):
    size = 100 * MiB
    up = Payload(size, seed=11)
    down = Payload(size, seed=12)

    def respond(req):
        if req.method == "GET":
            return Resp(200, payload=down)
        return Resp(200, req.body_sha)
    a = http_backend(backend, "A", respond=respond)
    f = fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port, timeout=30)
    t0 = time.monotonic()
    c.send(build("POST", "/up", headers=[("Content-Length", str(size))]))
    sent, sha = send_payload(c.sock, up, limit=30)
    r = c.response()
    assert r.status == 200 and r.body.decode() == sha == up.sha256()
    got = a.wait_requests(1)[0]
    assert got.body_len == size and got.body_sha == sha

    c.send(build("GET", "/down"))
    h = hashlib.sha256()
    n = [0]

    def sink(b):
        h.update(b)
        n[0] += len(b)
    r = c.response(sink=sink)
    assert r.status == 200 and n[0] == size and h.hexdigest() == down.sha256()
    took = time.monotonic() - t0
    assert took < 30, f"200 MiB took {took:.1f}s"
    recs = wait_records(f, 2)
    assert sorted(int(x["bytes_in"]) for x in recs)[-1] > size
    assert sorted(int(x["bytes_out"]) for x in recs)[-1] > size


# --------------------------------------------------------------------------
# limits.body

def test_content_length_over_the_body_limit_is_413(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, listener_kw={"limits": {"body": "1k"}}))
    c = client(connect, port)
    c.send(build("POST", "/big", headers=[("Content-Length", "1025")]) + b"x" * 1025)
    r = c.response()
    assert r.status == 413 and r.closes, r
    assert c.closed()
    assert a.accepted == 0 and not a.received_anything()
    assert wait_records(f, 1)[0]["status"] == "413"
    # At the limit: accepted.
    c = client(connect, port)
    r = c.request("POST", "/fits", body=b"y" * 1024)
    assert r.status == 200 and a.wait_requests(1)[0].body == b"y" * 1024


def test_content_length_over_the_limit_is_refused_before_the_body_is_sent(fulcrum, backend,
                                                                          connect, port):
    """The 413 comes on the head alone: a client need not send the body."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"limits": {"body": "1m"}}))
    c = client(connect, port)
    c.send(build("PUT", "/huge", headers=[("Content-Length", str(10 ** 12))]))
    r = c.response()
    assert r.status == 413 and r.closes, r
    assert a.accepted == 0


def test_chunked_body_over_the_limit_is_refused(fulcrum, backend, connect, port):
    """limits.body holds for chunked bodies too: no request over the limit
    reaches the backend complete."""
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, listener_kw={"limits": {"body": "1k"}}))
    c = client(connect, port)
    c.send(build("POST", "/big", headers=[("Transfer-Encoding", "chunked")])
           + chunked(b"z" * 4096, size=512))
    r = c.response()
    assert r.status == 413, r
    assert a.requests == [], "a chunked body over limits.body reached the backend"


def test_final_answer_to_expect_100_continue_without_the_body(fulcrum, backend, connect, port):
    """A server may refuse on the head alone (here 413) instead of sending
    100 Continue: the client, still holding its body, gets that answer."""
    a = http_backend(backend, "A", early=lambda req: Resp(413, b"too big", close_after=True))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    t0 = time.monotonic()
    c.send(build("PUT", "/big", headers=[("Content-Length", str(50 * MiB)),
                                         ("Expect", "100-continue")]))
    r = c.response()
    assert r.status == 413 and r.body == b"too big", r
    assert time.monotonic() - t0 < 3
    assert a.requests == []


def test_several_1xx_then_the_answer(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", send_continue=True, respond=Resp(
        200, b"done", interim=[(102, []), (103, [("Link", "</a.js>; rel=preload")])]))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("POST", "/work", body=b"x" * 10, headers=[("Expect", "100-continue")])
    assert [st for st, _ in r.interim] == [100, 102, 103], r.interim
    assert r.status == 200 and r.body == b"done"


def test_head_answered_with_chunked_framing_has_no_body(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"abc" * 100, framing="chunked"))
    fulcrum(http_config(port, {"p": [a]}))
    c = client(connect, port)
    r = c.request("HEAD", "/")
    assert r.status == 200 and r.body == b"", r
    r = c.request("GET", "/")
    assert r.status == 200 and r.body == b"abc" * 100, r

"""The per-request access log of http listeners, text and JSON: one record
per request with time, client, listener, route, pool, server, method,
target, status, bytes in and out, request / connect / first byte / total
times, retries and cause; a hostile target cannot break a record."""

import datetime
import json

import pytest

from http_helpers import (Resp, access_records, client, http_backend, http_config,
                          wait_records)

FIELDS = ("time", "client", "listener", "route", "pool", "server", "method", "target", "status",
          "bytes_in", "bytes_out", "request_ms", "connect_ms", "ttfb_ms", "total_ms", "retries",
          "cause")


def log_cfg(fmt):
    return {"format": fmt}


def count_bytes(c):
    """Wrap a Client so the bytes it sends and receives are counted."""
    stats = {"sent": 0, "received": 0}
    send, fill = c.send, c._fill

    def counting_send(data):
        stats["sent"] += len(data)
        send(data)

    def counting_fill():
        before = len(c.buf)
        ok = fill()
        stats["received"] += len(c.buf) - before
        return ok
    c.send, c._fill = counting_send, counting_fill
    return stats


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_record_per_request_with_every_field(fulcrum, backend, connect, port, fmt):
    a = http_backend(backend, "A", respond=Resp(201, b"stored" * 100, delay=0.3))
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg(fmt),
                            routes=[{"name": "uploads", "match": {"path_prefix": "/up"},
                                     "pool": "p"}]))
    c = client(connect, port)
    stats = count_bytes(c)
    before = datetime.datetime.now(datetime.timezone.utc)
    r = c.request("POST", "/up/file?x=1", body=b"q" * 5000)
    assert r.status == 201
    rec = wait_records(f, 1)[0]
    assert set(FIELDS) <= set(rec), sorted(rec)
    v = {k: str(rec[k]) for k in FIELDS}
    assert v["client"] == "127.0.0.1" and v["listener"] == "web"
    assert v["route"] == "uploads" and v["pool"] == "p" and v["server"] == a.address
    assert (v["method"], v["target"], v["status"]) == ("POST", "/up/file?x=1", "201")
    assert int(v["bytes_in"]) == stats["sent"], (rec, stats)
    assert int(v["bytes_out"]) == stats["received"], (rec, stats)
    request_ms, connect_ms, ttfb_ms, total_ms = (int(v[k]) for k in
                                                 ("request_ms", "connect_ms", "ttfb_ms", "total_ms"))
    assert 0 <= request_ms < 200 and 0 <= connect_ms < 200, rec
    assert 300 <= ttfb_ms <= total_ms < 2000, rec
    assert v["retries"] == "0" and v["cause"] == "done", rec
    ts = datetime.datetime.fromisoformat(v["time"].replace("Z", "+00:00"))
    assert abs((ts - before).total_seconds()) < 5, v["time"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_keep_alive_requests_each_get_a_record(fulcrum, backend, connect, port, fmt):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg(fmt)))
    c = client(connect, port)
    for i in range(5):
        assert c.request("GET", f"/n{i}").status == 200
    recs = wait_records(f, 5)
    assert [r["target"] for r in recs] == [f"/n{i}" for i in range(5)]
    assert len({r["client"] for r in recs}) == 1


HOSTILE = [
    b'/a"b\\c',                                     # quote and backslash
    b'/x"}{"status":999,"injected":"1',              # tries to close the JSON object
    b'/caf\xc3\xa9/\xff\x80',                       # bytes above 127
    b'/q?x="\\u0000"&y=%0A%0D',                      # escapes that must stay text
]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_hostile_targets_cannot_break_records(fulcrum, backend, connect, port, fmt):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg(fmt)))
    for t in HOSTILE:
        c = client(connect, port)
        c.send(b"GET " + t + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
        assert c.response().status == 200
    # A raw newline or NUL in the request line is refused, and still logged
    # on a single line.
    for raw in (b"GET /a\nb HTTP/1.1\r\nHost: example.com\r\n\r\n",
                b"GET /a\x00b HTTP/1.1\r\nHost: example.com\r\n\r\n"):
        c = client(connect, port)
        c.send(raw)
        assert c.response().status == 400
    recs = wait_records(f, len(HOSTILE) + 2)
    lines = f.access_lines()
    assert len(lines) == len(HOSTILE) + 2, lines
    if fmt == "json":
        for ln in lines:
            json.loads(ln)
        assert [r["target"] for r in recs[:len(HOSTILE)]] == [t.decode("latin-1") for t in HOSTILE]
        assert "injected" not in recs[1]
    assert [str(r["status"]) for r in recs] == ["200"] * len(HOSTILE) + ["400", "400"]
    assert all(str(r["listener"]) == "web" for r in recs)


def test_retries_and_server_are_logged(fulcrum, backend, connect, port, dead_address):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [dead_address(), a]}, log=log_cfg("json")))
    for i in range(2):
        assert client(connect, port).request().status == 200
    recs = wait_records(f, 2)
    assert sorted(r["retries"] for r in recs) == [0, 1], recs
    assert all(r["server"] == a.address and r["status"] == 200 for r in recs), recs


@pytest.mark.parametrize("kind", ["502", "504"])
def test_failed_exchange_names_the_server(fulcrum, backend, connect, port, kind):
    """When a server fails a request, the record says which server it was."""
    resp = Resp(action="close") if kind == "502" else Resp(action="hang")
    a = http_backend(backend, "A", respond=resp)
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg("json"),
                            listener_kw={"timeouts": {"server": "500ms"}}))
    r = client(connect, port).request("POST", "/x", body=b"once")
    assert r.status == int(kind), r
    rec = wait_records(f, 1)[0]
    assert rec["status"] == int(kind) and rec["pool"] == "p", rec
    assert rec["server"] == a.address, rec
    assert rec["cause"] not in ("done", ""), rec


def test_refused_request_is_logged(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg("json")))
    c = client(connect, port)
    c.send(b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1e3\r\n\r\n")
    assert c.response().status == 400
    rec = wait_records(f, 1)[0]
    assert rec["status"] == 400 and rec["server"] is None and rec["client"] == "127.0.0.1"
    assert rec["cause"] and rec["cause"] != "done", rec
    assert rec["bytes_out"] > 0


def test_http10_version_in_text_record(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=Resp(200, b"x", framing="close"))
    f = fulcrum(http_config(port, {"p": [a]}, log=log_cfg("text")))
    c = client(connect, port)
    c.send(b"GET /v HTTP/1.0\r\n\r\n")
    assert c.response().status == 200
    rec = wait_records(f, 1)[0]
    assert rec["version"] == "HTTP/1.0" and rec["target"] == "/v", rec
    assert access_records(f) == [rec]

"""Active health checks (pools[].health_check): for every check type (tcp,
tcp with send/expect, tcp with tls, http, https) a healthy server stays up
and gets traffic, a failing one goes down after `fall` failed checks in a
row (detected within interval x fall + timeout + jitter) and comes back
after `rise` passes; once a server is down no new traffic reaches it (an
HTTP backend that still accepts connections but answers its checks with a
500 or a wrong body gets no proxied request). Also: expect_status,
expect_body (substring and ~regex), the request an http check sends
(method, path, host, headers), `port` and `address`, timeouts (a server
that never answers, and a host that vanishes: a backend in a network
namespace whose link goes down), and the config checker's rejections.

Checks run every 200 ms here (timeout 180 ms, jitter 20 ms, fall 3, rise 2)
so that every fall and rise takes about a second. Check requests are told
apart from proxied ones by their User-Agent (fulcrum-health-check) or, for
tcp checks with send, by what they send.
"""

import random
import re
import subprocess
import textwrap
import threading
import time

import pytest

from conftest import (Backend, closed_by_peer, fmt_addr, fulcrum_bin, hello, listener,
                      make_config, pool, recv_line, silent, wait_until)
from http_helpers import HttpBackend, Resp, client, http_config
from tls_helpers import (PROC_TIMEOUT, client_ctx, https_config, https_get, server_ctx,
                         tls_http_backend, tls_wrap_handler, write_config)

CHECK_UA = "fulcrum-health-check"

# The checks of every test (unless a test says otherwise). At startup the
# first check decides, so a healthy backend must answer its first check
# within the timeout even while the machine is busy (a sanitized build, a
# loaded CI host): the timeout leaves the Python backends 180 ms.
HC = {"interval": "200ms", "timeout": "180ms", "jitter": "20ms", "rise": 2, "fall": 3}

# Added to every time bound: scheduling of fulcrum's check thread and of the
# Python backends, the 10 ms polling of the log, and the jitter of the
# fall - 1 other waits (each wait between two checks is jittered).
MARGIN = 0.3


def ms(d):
    m = re.fullmatch(r"(\d+)(ms|s)", d)
    return int(m.group(1)) * (1 if m.group(2) == "ms" else 1000)


def hc(type_, **kw):
    d = {"type": type_}
    d.update(HC)
    d.update(kw)
    return d


def down_bound(h):
    """Seconds within which a failure must be detected."""
    return (ms(h["interval"]) * h["fall"] + ms(h["timeout"]) + ms(h["jitter"])) / 1000 + MARGIN


def up_bound(h):
    return (ms(h["interval"]) * h["rise"] + ms(h["timeout"]) + ms(h["jitter"])) / 1000 + MARGIN


def min_detection(h, n):
    """n checks in a row are at least (n - 1) x (interval - jitter) apart."""
    return (n - 1) * (ms(h["interval"]) - ms(h["jitter"])) / 1000 - 0.02


def first_check_bound(h):
    """At startup the first check of each server starts within the jitter
    and decides at once."""
    return (ms(h["jitter"]) + ms(h["timeout"])) / 1000 + MARGIN


# --------------------------------------------------------------------------
# state changes in the error log

TRANS_RX = re.compile(r"^(\S+) \[warn\] pool (\S+): server (\S+) is (up|down) \((.*)\)$", re.M)


def transitions(f, addr=None):
    """[(pool, server, 'up'|'down', reason)] in log order."""
    return [(m.group(2), m.group(3), m.group(4), m.group(5))
            for m in TRANS_RX.finditer(f.error_log()) if addr is None or m.group(3) == addr]


def wait_change(f, addr, state, seen, t0, timeout):
    """Wait for the state change of server ADDR after the SEEN first ones;
    returns (seconds since t0 (monotonic) when it was noticed, reason)."""
    deadline = time.monotonic() + timeout
    while True:
        tr = transitions(f, addr)
        if len(tr) > seen:
            took = time.monotonic() - t0
            assert tr[seen][2] == state, \
                f"expected {addr} {state}, got {tr[seen]}:\n{f.error_log()}"
            return took, tr[seen][3]
        if time.monotonic() > deadline:
            raise AssertionError(f"server {addr} not {state} within {timeout:.2f}s:\n"
                                 f"{f.error_log()}")
        time.sleep(0.01)


def assert_no_change(f, addrs, seconds):
    time.sleep(seconds)
    tr = [t for t in transitions(f) if t[1] in addrs]
    assert tr == [], f"unexpected state changes {tr}:\n{f.error_log()}"


def settle(f, downs, h, up_addrs=()):
    """Startup: wait until every server of DOWNS is down (the first check
    decides), then two more intervals so a wrong verdict would show; the
    servers of UP_ADDRS must not have changed. Returns {addr: reason}."""
    reasons = {}
    t0 = time.monotonic()
    for a in downs:
        took, why = wait_change(f, a, "down", 0, t0, first_check_bound(h) + 2.0)
        reasons[a] = why
    time.sleep(2 * ms(h["interval"]) / 1000 + 0.05)
    for a in downs:
        assert len(transitions(f, a)) == 1, f.error_log()
    for a in up_addrs:
        assert transitions(f, a) == [], f"{a} changed state:\n{f.error_log()}"
    return reasons


# --------------------------------------------------------------------------
# backends

def is_check(req):
    return req.headers.get("user-agent") == CHECK_UA


class Switch:
    """The responder of an HttpBackend whose answer can turn bad mid-test.
    Proxied requests get 'NAME\\n'; checks are recorded as (time, passed)."""

    def __init__(self, name, bad=None, good=None):
        self.name = name
        self.good = good or Resp(200, f"{name}\n".encode())
        self.bad = bad or Resp(500, b"broken\n")
        self.failing = False
        self.checks = []
        self.lock = threading.Lock()

    def __call__(self, req):
        with self.lock:
            failing = self.failing
            if is_check(req):
                self.checks.append((time.monotonic(), not failing))
        return self.bad if failing else self.good

    def count(self, since, until, passed):
        with self.lock:
            return sum(1 for t, ok in self.checks if since <= t <= until and ok == passed)

    def wait_checks(self, n, timeout=5.0):
        assert wait_until(lambda: len(self.checks) >= n, timeout), \
            f"{self.name}: only {len(self.checks)} checks in {timeout}s"


def proxied(hb, since=0.0):
    """Requests HB got from clients (not checks) at or after SINCE."""
    with hb.lock:
        return [r for r in hb.requests if not is_check(r) and r.time >= since]


def checks_of(hb):
    with hb.lock:
        return [r for r in hb.requests if is_check(r)]


def get_names(connect, port, n, ok=(200,)):
    """n GETs, each on its own connection: the bodies (backend names)."""
    out = []
    for i in range(n):
        r = client(connect, port).request("GET", f"/t{i}", headers=[("Connection", "close")])
        assert r.status in ok, r
        out.append(r.body.decode().strip())
    return out


@pytest.fixture
def backend_at():
    """conftest's Backend on a given host and port (0: any), with
    SO_REUSEADDR, optionally holding its port without listening yet."""
    made = []

    def make(name, host, port, handler=None, listening=True):
        b = Backend(name, host, handler, port=port, reuse=True, listening=listening)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def same_port_pair(backend_at, name, other_ip, respond):
    """Two HttpBackends on the same port: NAME on 127.0.0.1 (default
    answers) and NAME-health on OTHER_IP (answering with RESPOND). Ports
    are tried until both are free (other tests may leave many
    TIME_WAIT sockets on 127.0.0.2)."""
    for _ in range(50):
        main = HttpBackend(lambda n, host, handler: backend_at(n, host, 0, handler), name)
        try:
            other = HttpBackend(lambda n, host, handler: backend_at(n, host, main.port, handler),
                                f"{name}-health", respond=respond, host=other_ip)
        except OSError:
            main.stop()
            continue
        return main, other
    raise AssertionError(f"no port free on both 127.0.0.1 and {other_ip}")


def http_switch(backend, name, host="127.0.0.1", **kw):
    sw = Switch(name, **kw)
    hb = HttpBackend(backend, name, respond=sw, host=host)
    hb.switch = sw
    return hb


class RedisLike:
    """A tcp backend: a connection whose first line is PING is a check and
    gets `answer` (+PONG, or a failure) and is closed; any other first
    line is a proxied client, greeted with 'NAME\\n', then everything it
    sends after that line is echoed."""

    GOOD = b"+PONG\r\n"
    BAD = b"-LOADING Redis is loading the dataset in memory\r\n"

    def __init__(self, backend, name):
        self.name = name
        self.answer = self.GOOD
        self.checks = []            # (time, passed)
        self.clients = []           # time of every proxied connection
        self.lock = threading.Lock()
        self.b = backend(name, handler=self.handle)
        self.address = self.b.address

    def handle(self, backend, conn):
        buf = b""
        while b"\n" not in buf and len(buf) < 1024:
            d = conn.recv_record()
            if not d:
                return
            buf += d
        line = buf.split(b"\n", 1)[0] + b"\n"
        if line == b"PING\r\n":
            with self.lock:
                ans = self.answer
                self.checks.append((time.monotonic(), ans == self.GOOD))
            conn.sock.sendall(ans)
            while conn.recv_record():
                pass
            return
        with self.lock:
            self.clients.append(time.monotonic())
        conn.sock.sendall(self.name.encode() + b"\n" + buf.split(b"\n", 1)[1])
        while True:
            d = conn.recv_record()
            if not d:
                return
            conn.sock.sendall(d)

    def count(self, since, until, passed):
        with self.lock:
            return sum(1 for t, ok in self.checks if since <= t <= until and ok == passed)


def tcp_names(connect, port, n, f=None, hello_first=b"WHO\r\n"):
    """n connections through a tcp listener: the greeting line of each; with
    f, also the access records of those clients."""
    names, clients = [], []
    for _ in range(n):
        s = connect(port)
        clients.append(fmt_addr(*s.getsockname()[:2]))
        s.sendall(hello_first)
        line = recv_line(s)
        s.close()
        assert line.endswith(b"\n"), f"no greeting through fulcrum ({line!r})"
        names.append(line.decode().strip())
    if f is None:
        return names
    recs = f.wait_access(n, pred=lambda r: r["client"] in clients)
    return names, recs


def tcp_hc_config(port, servers, h, pool_kw=None, workers=1):
    pk = {"health_check": h}
    pk.update(pool_kw or {})
    return make_config([listener("front", fmt_addr("127.0.0.1", port), "backs")],
                       [pool("backs", [s if isinstance(s, (dict, str)) else s.address
                                       for s in servers], **pk)], workers=workers)


def http_hc_config(port, servers, h, pool_extra=None, **kw):
    pk = {"health_check": h}
    pk.update(pool_extra or {})
    return http_config(port, {"p": servers}, pool_kw={"p": pk}, **kw)


# --------------------------------------------------------------------------
# the fall / rise cycle, per type

def cycle(f, addr, kind, h, set_bad, set_good, counter=None, down_reason=None):
    """SET_BAD at t0: the server must go down within down_bound after exactly
    `fall` failed checks; then SET_GOOD: up within up_bound after exactly
    `rise` passes. COUNTER(since, until, passed) counts checks the backend
    answered. Returns (detection seconds, monotonic time the down state was
    noticed, back()): back() runs SET_GOOD and the rise half."""
    seen = len(transitions(f, addr))
    t0 = time.monotonic()
    set_bad()
    took, why = wait_change(f, addr, "down", seen, t0, down_bound(h) + 3)
    t_down = time.monotonic()
    if down_reason:
        assert re.fullmatch(down_reason, why), why
    assert took <= down_bound(h), (f"{addr}: failure detected after {took:.3f}s, more than "
                                   f"{down_bound(h):.3f}s")
    assert took >= min_detection(h, h["fall"]), (
        f"{addr} went down after {took:.3f}s: too soon for fall={h['fall']}")
    if counter:
        assert counter(t0, t_down, False) == h["fall"], \
            f"went down after {counter(t0, t_down, False)} failed checks"
    return took, t_down, (lambda: recover(f, addr, kind, h, set_good, counter, seen + 1))


def recover(f, addr, kind, h, set_good, counter, seen):
    t1 = time.monotonic()
    set_good()
    took, why = wait_change(f, addr, "up", seen, t1, up_bound(h) + 3)
    t_up = time.monotonic()
    assert why == f"check {kind} passed {h['rise']} times in a row", why
    assert took <= up_bound(h), f"{addr}: back up after {took:.3f}s, more than {up_bound(h):.3f}s"
    assert took >= min_detection(h, h["rise"]), f"{addr} came back too soon ({took:.3f}s)"
    if counter:
        assert counter(t1, t_up, True) == h["rise"]
    return took


def test_tcp_check_connect(fulcrum, backend, backend_at, connect, port):
    """tcp: connecting is enough. B is killed (connects refused): down
    after fall checks, its clients go to A without a failed try; B listens
    again on its port: up after rise, and gets traffic again."""
    h = hc("tcp")
    a, b = backend("A"), backend_at("B", "127.0.0.1", 0)
    f = fulcrum(tcp_hc_config(port, [a, b], h))

    # Healthy: several checks pass, nothing changes, both get traffic.
    assert wait_until(lambda: a.accepted >= h["fall"] + 1 and b.accepted >= h["fall"] + 1, 3)
    assert_no_change(f, {a.address, b.address}, 0.1)
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}

    holder = {}

    def kill():
        b.stop()
        holder["b2"] = backend_at("B", "127.0.0.1", b.port, listening=False)

    took, t_down, back = cycle(f, b.address, "tcp", h, kill, lambda: holder["b2"].serve(),
                               down_reason=r"check tcp: connect: Connection refused")
    names, recs = tcp_names(connect, port, 6, f)
    assert names == ["A"] * 6
    assert all(r["server"] == a.address and r["retries"] == "0" for r in recs), recs
    back()
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}
    assert holder["b2"].accepted >= h["rise"] + 3


def test_tcp_check_send_expect(fulcrum, backend, connect, port):
    """tcp with send/expect (a Redis-like PING / +PONG): a server that
    still accepts connections but answers -LOADING goes down after fall
    checks and gets no client; +PONG again brings it back after rise."""
    h = hc("tcp", send=r"PING\r\n", expect="hex:2b504f4e47")     # +PONG
    a, b = RedisLike(backend, "A"), RedisLike(backend, "B")
    f = fulcrum(tcp_hc_config(port, [a, b], h))

    assert wait_until(lambda: len(a.checks) >= 4 and len(b.checks) >= 4, 3)
    assert_no_change(f, {a.address, b.address}, 0.05)
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}

    def bad():
        b.answer = RedisLike.BAD

    def good():
        b.answer = RedisLike.GOOD

    took, t_down, back = cycle(f, b.address, "tcp", h, bad, good, counter=b.count,
                               down_reason=r"check tcp: unexpected answer")
    names, recs = tcp_names(connect, port, 6, f)
    assert names == ["A"] * 6
    assert all(r["server"] == a.address and r["retries"] == "0" for r in recs), recs
    with b.lock:
        late = [t for t in b.clients if t >= t_down]
    assert late == [], "a client reached the server that failed its check"
    back()
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}


def test_tcp_check_send_expect_short_answer_and_hang(fulcrum, backend, port):
    """At startup the first check decides: a server that answers only part
    of `expect` and closes, and one that never answers (timeout), are down
    at once; the one answering +PONG stays up."""
    h = hc("tcp", send=r"PING\r\n", expect="+PONG\r\n")
    good = RedisLike(backend, "GOOD")

    def short_answer(b, conn):
        conn.recv_record()
        conn.sock.sendall(b"+PO")

    def never_answer(b, conn):
        while conn.recv_record():
            pass

    short = backend("SHORT", handler=short_answer)
    hang = backend("HANG", handler=never_answer)
    f = fulcrum(tcp_hc_config(port, [good, short, hang], h))
    why = settle(f, [short.address, hang.address], h, up_addrs=[good.address])
    assert why[short.address] == "check tcp: closed after 3 of the 7 expected bytes"
    assert why[hang.address] == f"check tcp: timeout after {h['timeout']}"
    with hang.cv:
        assert hang.conns and bytes(hang.conns[0].received) == b"PING\r\n"


def test_tcp_pool_with_every_server_down_closes_clients(fulcrum, backend, connect, port):
    """The only server fails its first check: a tcp client is closed
    without reaching it."""
    h = hc("tcp", send=r"PING\r\n", expect="+PONG")
    b = RedisLike(backend, "B")
    b.answer = RedisLike.BAD
    f = fulcrum(tcp_hc_config(port, [b], h))
    settle(f, [b.address], h)
    s = connect(port)
    s.sendall(b"WHO\r\n")
    assert closed_by_peer(s, timeout=3), "a client got data with every server down"
    assert b.clients == []


def test_tcp_check_with_tls(fulcrum, backend, connect, port, p):
    """tcp with tls: true completes a handshake with the pool's TLS
    settings: a server that accepts but drops the handshake goes down
    (check tcp: TLS: ...), one whose certificate does not verify is down
    from the first check, and neither gets clients."""
    h = hc("tcp", tls=True)
    ctx = server_ctx(p.local)
    a = backend("A")
    a.handler = tls_wrap_handler(ctx, hello)
    b = backend("B")
    good_b = tls_wrap_handler(server_ctx(p.local), hello)
    b.handler = good_b
    rogue = backend("R")
    rogue.handler = tls_wrap_handler(server_ctx(p.rogue_srv), hello)
    f = fulcrum(tcp_hc_config(port, [a, b, rogue], h, pool_kw={
        "tls": {"enabled": True, "ca": p.root.crt, "server_name": "localhost"}}))
    why = settle(f, [rogue.address], h, up_addrs=[a.address, b.address])
    assert re.match(r"check tcp: TLS: .*certificate verify failed", why[rogue.address]), why
    rogue_seen = rogue.accepted
    assert rogue_seen >= 1
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}

    def drop(backend_, conn):
        conn.sock.close()

    def bad():
        b.handler = drop

    def good():
        b.handler = good_b

    took, t_down, back = cycle(f, b.address, "tcp", h, bad, good,
                               down_reason=r"check tcp: TLS: .+")
    names, recs = tcp_names(connect, port, 6, f)
    assert names == ["A"] * 6
    assert all(r["server"] == a.address and r["retries"] == "0" for r in recs), recs
    back()
    assert set(tcp_names(connect, port, 6)) == {"A", "B"}
    # The rogue server is only ever checked: every TLS connection it saw failed.
    with rogue.cv:
        assert all("version" not in c.info for c in rogue.conns)


def test_http_check_status(fulcrum, backend, connect, port):
    """http: a server that accepts connections but answers 500 goes down
    after fall checks; then it gets no proxied request (not even over
    connections fulcrum kept alive); 200 again brings it back."""
    h = hc("http", path="/health")
    a, b = http_switch(backend, "A"), http_switch(backend, "B")
    f = fulcrum(http_hc_config(port, [a, b], h))

    a.switch.wait_checks(4)
    b.switch.wait_checks(4)
    assert_no_change(f, {a.address, b.address}, 0.05)
    # Keep-alive client: fulcrum keeps idle connections to both servers.
    c = client(connect, port)
    assert {c.request("GET", f"/k{i}").body for i in range(4)} == {b"A\n", b"B\n"}
    assert {n for n in get_names(connect, port, 4)} == {"A", "B"}

    def bad():
        b.switch.failing = True

    def good():
        b.switch.failing = False

    took, t_down, back = cycle(f, b.address, "http", h, bad, good, counter=b.switch.count,
                               down_reason=r"check http: status 500")
    assert [c.request("GET", f"/k{i}").body for i in range(4)] == [b"A\n"] * 4
    assert get_names(connect, port, 6) == ["A"] * 6
    assert proxied(b, since=t_down) == [], "a proxied request reached the server that is down"
    assert all(r.target == "/health" for r in checks_of(b))
    back()
    assert {n for n in get_names(connect, port, 6)} == {"A", "B"}


def test_http_check_wrong_body_gets_no_traffic(fulcrum, backend, connect, port):
    """expect_body: a server answering 200 with the wrong body is down and
    gets no proxied request; the right body brings it back."""
    h = hc("http", expect_body="database: ok")
    good = Resp(200, b"status\ndatabase: ok\ncache: ok\n")
    bad_body = Resp(200, b"status\ndatabase: unreachable\ncache: ok\n")
    a = http_switch(backend, "A", good=good)
    b = http_switch(backend, "B", good=good, bad=bad_body)
    f = fulcrum(http_hc_config(port, [a, b], h))
    b.switch.wait_checks(3)
    assert_no_change(f, {a.address, b.address}, 0.05)

    def bad():
        b.switch.failing = True

    def ok():
        b.switch.failing = False

    took, t_down, back = cycle(f, b.address, "http", h, bad, ok, counter=b.switch.count,
                               down_reason=r"check http: status 200, but the body does not match")
    for i in range(6):
        r = client(connect, port).request("GET", f"/x{i}")
        assert r.status == 200 and b"database: ok" in r.body, r
    assert proxied(b, since=t_down) == []
    assert len(proxied(a, since=t_down)) == 6
    back()


def test_https_check(fulcrum, backend, connect, port, p):
    """https: checks over TLS with the pool's settings (verify on, the test
    CA), one connection for all of them while they pass (reuse_limit: 0, so
    that no renewal falls within the test: renewal is tested on http), a 500
    takes B down, a server whose certificate does not verify is down from
    its first check; neither gets a request."""
    h = hc("https", path="/ready", reuse_limit=0)
    a_sw, b_sw = Switch("A"), Switch("B")
    a = tls_http_backend(backend, server_ctx(p.local), "A", respond=a_sw)
    b = tls_http_backend(backend, server_ctx(p.local), "B", respond=b_sw)
    rogue = tls_http_backend(backend, server_ctx(p.rogue_srv), "R")
    f = fulcrum(https_config(port, {"p": [a, b, rogue]}, [p.a], pool_kw={"p": {
        "protocol": "https", "health_check": h,
        "tls": {"ca": p.root.crt, "server_name": "localhost"}}}))
    ctx = client_ctx(p)

    def names(n):
        out = []
        for i in range(n):
            st, _, body, _ = https_get(port, ctx, f"/t{i}")
            assert st == 200, (st, body)
            out.append(body.decode().strip())
        return out

    why = settle(f, [rogue.address], h, up_addrs=[a.address, b.address])
    assert re.match(r"check https: TLS: .*certificate verify failed", why[rogue.address]), why
    assert rogue.requests == []
    b_sw.wait_checks(3)
    assert [r.target for r in checks_of(a)][:2] == ["/ready", "/ready"]
    # One TLS connection (one handshake) carries every check.
    assert len(checks_of(a)) >= 3 and set(check_conns(a)) == {0}, check_conns(a)
    assert set(names(6)) == {"A", "B"}

    def bad():
        b_sw.failing = True

    def good():
        b_sw.failing = False

    took, t_down, back = cycle(f, b.address, "https", h, bad, good, counter=b_sw.count,
                               down_reason=r"check https: status 500")
    assert names(6) == ["A"] * 6
    assert proxied(b, since=t_down) == []
    back()
    assert set(names(6)) == {"A", "B"}
    assert rogue.requests == []


# --------------------------------------------------------------------------
# what passes

@pytest.mark.parametrize("expect_status,ups,downs", [
    (None, [200, 204, 301, 399], [400, 404, 500, 503]),
    ("200-299,301", [200, 204, 299, 301], [302, 304, 404, 500]),
    ("200, 404, 500-502", [200, 404, 500, 502], [201, 301, 503]),
])
def test_expect_status(fulcrum, backend, connect, port, expect_status, ups, downs):
    h = hc("http")
    if expect_status is not None:
        h["expect_status"] = expect_status
    srv = {}
    for st in ups + downs:
        srv[st] = HttpBackend(backend, f"S{st}", respond=Resp(
            st, f"S{st}\n".encode(), framing="none" if st in (204, 304) else "length"))
    f = fulcrum(http_hc_config(port, list(srv.values()), h))
    why = settle(f, [srv[s].address for s in downs], h,
                 up_addrs=[srv[s].address for s in ups])
    for s in downs:
        assert why[srv[s].address] == f"check http: status {s}", why
    for i in range(2 * len(ups)):
        client(connect, port).request("GET", f"/r{i}", headers=[("Connection", "close")])
    for s in ups:
        assert proxied(srv[s]), (s, srv[s].requests)
    for s in downs:
        assert proxied(srv[s]) == [], s
        assert len(checks_of(srv[s])) >= 2     # still checked


EXPECT_BODY_CASES = {
    "substring": ("ready", {b"ready\n": True, b"I am ready to serve": True,
                            b"not yet\n": False, b"READY": False, b"": False}),
    "regex-anchored": (r'~^\{"status":\s*"UP"', {b'{"status": "UP", "db": "UP"}': True,
                                                b'{"status":"UP"}': True,
                                                b'{"status":"DOWN"}': False,
                                                b' {"status":"UP"}': False,
                                                b'{"db":"UP"}': False}),
    "regex-end": (r"~version [0-9]+\.[0-9]+ (ok|degraded)$", {b"version 2.14 ok": True,
                                                            b"build\nversion 3.0 degraded": True,
                                                            b"version 2.x ok": False,
                                                            b"version 2.1 failed": False}),
}


@pytest.mark.parametrize("expect_body,bodies", list(EXPECT_BODY_CASES.values()),
                         ids=list(EXPECT_BODY_CASES))
def test_expect_body(fulcrum, backend, connect, port, expect_body, bodies):
    """expect_body: a substring (case matters), or ~ and a PCRE2 pattern
    (anchors count: a body containing the text elsewhere fails ^)."""
    h = hc("http", expect_body=expect_body)
    srv = {body: HttpBackend(backend, f"S{i}", respond=Resp(200, body))
           for i, body in enumerate(bodies)}
    f = fulcrum(http_hc_config(port, list(srv.values()), h))
    downs = [srv[bd].address for bd, ok in bodies.items() if not ok]
    ups = [srv[bd].address for bd, ok in bodies.items() if ok]
    why = settle(f, downs, h, up_addrs=ups)
    assert set(why.values()) == {"check http: status 200, but the body does not match"}, why
    for i in range(2 * len(ups)):
        client(connect, port).request("GET", f"/r{i}", headers=[("Connection", "close")])
    for bd, ok in bodies.items():
        assert bool(proxied(srv[bd])) == ok, (bd, ok)


def test_expect_body_of_a_chunked_response(fulcrum, backend, connect, port):
    """expect_body looks at the body, whatever its framing: a server that
    sends its body chunked (as most frameworks do for generated content)
    passes a substring that spans two chunks and an anchored pattern."""
    body = b'{"status":"UP","checks":{"db":"UP"}}'
    sub = HttpBackend(backend, "SUB", respond=Resp(200, body, framing="chunked", chunk_size=8))
    rx = HttpBackend(backend, "RX", respond=Resp(200, body, framing="chunked", chunk_size=8))
    bad = HttpBackend(backend, "BAD", respond=Resp(200, b'{"status":"DOWN"}', framing="chunked",
                                                   chunk_size=8))
    cfg = http_config(port, {"sub": [sub], "rx": [rx, bad]}, pool_kw={
        "sub": {"health_check": hc("http", expect_body='"status":"UP"')},
        "rx": {"health_check": hc("http", expect_body=r'~^\{"status":"UP"')}})
    f = fulcrum(cfg)
    h = hc("http")
    assert wait_until(lambda: len(checks_of(sub)) >= 2 and len(checks_of(rx)) >= 2, 3)
    settle(f, [bad.address], h)
    assert transitions(f, sub.address) == [], f.error_log()
    assert transitions(f, rx.address) == [], f.error_log()


def test_http_check_request_default_and_custom(fulcrum, backend, port):
    """The request an http check sends: GET / with Host the checked address
    by default; method, path, host and headers when set. Always
    User-Agent: fulcrum-health-check; Connection: close only with
    reuse_connection: false."""
    plain = HttpBackend(backend, "PLAIN")
    custom = HttpBackend(backend, "CUSTOM")
    cfg = http_config(port, {"plain": [plain], "custom": [custom]}, pool_kw={
        "plain": {"health_check": hc("http")},
        "custom": {"health_check": hc("http", method="OPTIONS", path="/health/live?verbose=1",
                                      host="status.internal.example", reuse_connection=False,
                                      headers={"X-Health-Token": "s3cret",
                                               "Accept": "application/json"})}})
    f = fulcrum(cfg)
    assert wait_until(lambda: len(checks_of(plain)) >= 2 and len(checks_of(custom)) >= 2, 3)
    for r in checks_of(plain)[:2]:
        assert (r.method, r.target, r.version) == ("GET", "/", "HTTP/1.1"), r
        assert r.headers.all("host") in (["127.0.0.1"], [plain.address]), r
        assert r.headers.all("user-agent") == [CHECK_UA]
        assert sorted(r.headers.names()) == ["host", "user-agent"], r
        assert r.body_len == 0
    for r in checks_of(custom)[:2]:
        assert (r.method, r.target, r.version) == ("OPTIONS", "/health/live?verbose=1",
                                                   "HTTP/1.1"), r
        assert r.headers.all("host") == ["status.internal.example"], r
        assert r.headers.all("x-health-token") == ["s3cret"], r
        assert r.headers.all("accept") == ["application/json"], r
        assert r.headers.all("user-agent") == [CHECK_UA]
        assert r.headers.all("connection") == ["close"]
        assert sorted(r.headers.names()) == ["accept", "connection", "host", "user-agent",
                                             "x-health-token"], r
    assert transitions(f) == []


def check_conns(hb):
    """The backend connection of each check HB got, in order."""
    return [r.conn for r in checks_of(hb)]


# Checks close together, with a timeout that still leaves a busy machine
# time to answer the decisive first check.
FAST = {"interval": "150ms", "timeout": "140ms", "jitter": "10ms"}


@pytest.mark.parametrize("framing", ["length", "chunked", "none"])
def test_http_checks_reuse_one_connection(fulcrum, backend, port, framing):
    """By default an http check keeps its connection for the next one: with
    any framing of the answer, a dozen checks come on one connection, all
    pass, and so does expect_body on a reused connection."""
    status = 204 if framing == "none" else 200
    b = HttpBackend(backend, "B", respond=Resp(status, b"" if framing == "none" else b"ok: all good",
                                               framing=framing, chunk_size=4))
    h = hc("http", expect_body=None if framing == "none" else "all good", **FAST)
    h = {k: v for k, v in h.items() if v is not None}
    f = fulcrum(http_hc_config(port, [b], h))
    assert wait_until(lambda: len(checks_of(b)) >= 25, 8), checks_of(b)
    # A new connection every ten intervals (reuse_limit): about ten checks
    # each (eleven when jitter shortens the intervals; the first, opened
    # within a period, fewer, as is one that a check ran out of time on, on
    # a slow machine: a failed check closes its connection).
    conns = check_conns(b)[:25]
    counts = [conns.count(c) for c in sorted(set(conns))]
    assert len(counts) >= 3 and max(counts[:-1]) >= 9 and max(counts) <= 11, conns
    assert transitions(f) == [], f.error_log()


def test_reuse_limit_finds_a_server_that_stops_accepting(fulcrum, backend, port):
    """A server that stops accepting new connections while it still answers
    on the one it has: with the default reuse_limit (10), a check connects
    anew within ten intervals, is refused, and the server goes down; with
    reuse_limit: 0 the kept connection goes on passing."""
    h = hc("http", **FAST)
    lim, nolim = HttpBackend(backend, "LIM"), HttpBackend(backend, "NOLIM")
    cfg = http_config(port, {"lim": [lim], "nolim": [nolim]},
                      pool_kw={"lim": {"health_check": h},
                               "nolim": {"health_check": {**h, "reuse_limit": 0}}})
    f = fulcrum(cfg)
    assert wait_until(lambda: len(checks_of(lim)) >= 2 and len(checks_of(nolim)) >= 2, 5)
    t0 = time.monotonic()
    for hb in (lim, nolim):
        hb.backend.stopped.set()
        hb.backend.lsock.close()
    bound = 10 * ms(h["interval"]) / 1000 + down_bound(h)
    took, why = wait_change(f, lim.address, "down", 0, t0, bound)
    assert "connect" in why or "refused" in why, why
    n = len(checks_of(nolim))
    time.sleep(bound - took + 0.3)
    assert len(checks_of(nolim)) >= n + 5, "the kept connection stopped carrying checks"
    assert len(set(check_conns(nolim))) == 1
    assert transitions(f, nolim.address) == [], f.error_log()


def test_http_checks_without_reuse_connect_each_time(fulcrum, backend, port):
    """reuse_connection: false, or a server that answers Connection: close or
    with a close-delimited body: every check on a new connection, none
    failing."""
    off = HttpBackend(backend, "OFF")
    says_close = HttpBackend(backend, "CLOSE", respond=Resp(200, b"ok", close_after=True,
                                                             headers=[("Connection", "close")]))
    eof_body = HttpBackend(backend, "EOF", respond=Resp(200, b"ok", framing="close"))
    cfg = http_config(port, {"off": [off], "says_close": [says_close], "eof": [eof_body]},
                      pool_kw={"off": {"health_check": hc("http", reuse_connection=False, **FAST)},
                               "says_close": {"health_check": hc("http", **FAST)},
                               "eof": {"health_check": hc("http", **FAST)}})
    f = fulcrum(cfg)
    for hb in (off, says_close, eof_body):
        assert wait_until(lambda: len(checks_of(hb)) >= 6, 5), (hb, checks_of(hb))
        conns = check_conns(hb)
        assert len(set(conns)) == len(conns), (hb, conns)
    assert transitions(f) == [], f.error_log()


def test_checks_leave_on_shared_slots(fulcrum, backend, port):
    """Checks due within the same 10 ms slot (1% of a 1 s interval) start
    together at the slot's start, on the monotonic clock that Python's
    time.monotonic() also reads: the checks of 20 servers arrive within a few
    ms after a multiple of 10 ms, where unaligned checks would arrive at any
    offset (40% of them in the first 4 ms)."""
    servers = [HttpBackend(backend, f"S{i}") for i in range(20)]
    h = {"type": "http", "interval": "1s", "timeout": "500ms", "jitter": "100ms"}
    f = fulcrum(http_hc_config(port, servers, h))
    assert wait_until(lambda: sum(len(checks_of(b)) for b in servers) >= 80, 10)
    offsets = sorted(int(r.time * 1000) % 10 for b in servers for r in checks_of(b))
    early = sum(1 for o in offsets if o < 4)
    assert early >= 0.75 * len(offsets), f"ms after a 10 ms boundary: {offsets}"
    assert transitions(f) == [], f.error_log()


def test_kept_check_connection_closed_by_the_server(fulcrum, backend, port):
    """A server may close a kept connection at any time: when it closes it
    while idle (a keep-alive timeout) the next check connects again; when it
    closes it on the check's request without answering, the check is made
    again at once on a new connection. Neither counts as a failed check."""
    idle = HttpBackend(backend, "IDLE", respond=Resp(200, b"ok", idle_close=0.03))

    def second_dropped(req):
        # The second request on each connection is dropped unanswered.
        n = sum(1 for r in checks_of(racy) if r.conn == req.conn)
        return Resp(200, b"ok") if n < 2 else Resp(action="close")
    racy = HttpBackend(backend, "RACY", respond=second_dropped)
    cfg = http_config(port, {"idle": [idle], "racy": [racy]},
                      pool_kw={"idle": {"health_check": hc("http", **FAST)},
                               "racy": {"health_check": hc("http", **FAST)}},
                      log={"level": "debug"})
    f = fulcrum(cfg)
    assert wait_until(lambda: len(checks_of(idle)) >= 6 and len(checks_of(racy)) >= 12, 5)
    conns = check_conns(idle)
    assert len(set(conns)) == len(conns), conns
    conns = check_conns(racy)
    # Each connection carries one answered check and one dropped one.
    assert all(conns.count(c) <= 2 for c in set(conns)), conns
    assert len(set(conns)) >= 6, conns
    assert transitions(f) == [], f.error_log()
    assert "check failed" not in f.error_log()
    assert "kept check connection failed" in f.error_log()


def test_http_check_host_of_an_ipv6_server(fulcrum, backend, port):
    """The default Host of a check of [::1]:PORT is a valid Host: an IPv6
    literal goes in brackets (RFC 9110 uri-host), never bare '::1'."""
    v6 = HttpBackend(backend, "V6", host="::1")
    f = fulcrum(http_hc_config(port, [v6], hc("http")))
    assert wait_until(lambda: checks_of(v6) or v6.garbage, 3), "no check arrived"
    assert checks_of(v6), f"the check was not a valid request: {v6.garbage}"
    host = checks_of(v6)[0].headers.get("host")
    assert host in ("[::1]", v6.address), f"Host: {host}"
    assert transitions(f) == []


def test_check_port(fulcrum, backend, backend_at, connect, port):
    """port: the check goes to another port of the server; when only that
    port stops answering the server is down (here the only one: 503), and
    it comes back when the check port answers again."""
    h = hc("http")
    traffic = HttpBackend(backend, "APP")
    hsw = Switch("HEALTH")
    health = HttpBackend(lambda n, host, handler: backend_at(n, host, 0, handler), "HEALTH",
                         respond=hsw)
    h["port"] = health.port
    f = fulcrum(http_hc_config(port, [traffic], h))
    hsw.wait_checks(3)
    assert checks_of(traffic) == [], "a check went to the traffic port"
    assert get_names(connect, port, 2) == ["APP GET /t0", "APP GET /t1"]
    assert checks_of(health)[0].headers.all("host") in (["127.0.0.1"], [health.address])

    holder = {}

    def kill():
        health.stop()
        holder["h2"] = HttpBackend(
            lambda n, host, handler: backend_at(n, host, health.port, handler, listening=False),
            "HEALTH2", respond=hsw)

    took, t_down, back = cycle(f, traffic.address, "http", h, kill,
                               lambda: holder["h2"].backend.serve(),
                               down_reason=r"check http: connect: Connection refused")
    for i in range(3):
        r = client(connect, port).request("GET", f"/down{i}")
        assert r.status == 503, r
    assert proxied(traffic, since=t_down) == []
    back()
    assert get_names(connect, port, 2) == ["APP GET /t0", "APP GET /t1"]


def test_check_address(fulcrum, backend, backend_at, connect, port):
    """address: the check goes to another IP (127.0.0.2) at the server's
    port, with that IP as Host; the traffic address gets no check. When
    the check address stops answering, the server is down although its
    traffic address still works."""
    h = hc("http", address="127.0.0.2")
    asw, bsw = Switch("A-health"), Switch("B-health")
    a, a_chk = same_port_pair(backend_at, "A", "127.0.0.2", asw)
    b, _ = same_port_pair(backend_at, "B", "127.0.0.2", bsw)
    f = fulcrum(http_hc_config(port, [a, b], h))
    asw.wait_checks(3)
    bsw.wait_checks(3)
    assert checks_of(a) == [] and checks_of(b) == []
    assert checks_of(a_chk)[0].headers.all("host") in (["127.0.0.2"], [a_chk.address])
    assert {n.split()[0] for n in get_names(connect, port, 4)} == {"A", "B"}

    took, t_down, back = cycle(f, a.address, "http", h, lambda: setattr(asw, "failing", True),
                               lambda: setattr(asw, "failing", False), counter=asw.count,
                               down_reason=r"check http: status 500")
    assert [n.split()[0] for n in get_names(connect, port, 4)] == ["B"] * 4
    assert proxied(a, since=t_down) == []
    back()
    assert {n.split()[0] for n in get_names(connect, port, 4)} == {"A", "B"}


# --------------------------------------------------------------------------
# timeouts

def test_http_server_that_never_answers(fulcrum, backend, connect, port):
    """A server that accepts and reads the check but never answers fails
    with 'timeout after <timeout>': down at its first check, no traffic."""
    h = hc("http")
    a = HttpBackend(backend, "A")
    hang = HttpBackend(backend, "HANG", respond=Resp(action="hang"))
    t0 = time.monotonic()
    f = fulcrum(http_hc_config(port, [a, hang], h))
    took, why = wait_change(f, hang.address, "down", 0, t0, first_check_bound(h) + 3)
    assert why == f"check http: timeout after {h['timeout']}", why
    assert took <= first_check_bound(h) + 0.2    # includes fulcrum's start-up
    assert checks_of(hang), "the hanging server never got its check request"
    assert [n.split()[0] for n in get_names(connect, port, 4)] == ["A"] * 4
    assert proxied(hang) == []


class Netns:
    """A network namespace with a veth pair: HOST_IP on this side, NS_IP on
    the other (a /30 of 10.251.0.0/16 that no interface uses)."""

    def __init__(self):
        tag = f"{random.randrange(16 ** 6):06x}"
        self.name = f"fulcrum-hc-{tag}"
        self.veth_host, self.veth_ns = f"fhc{tag}h", f"fhc{tag}n"
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                              timeout=10).stdout
        for _ in range(100):
            base = random.randrange(0, 256 * 64) * 4
            if f"10.251.{base // 256}." not in used:
                break
        self.host_ip = f"10.251.{base // 256}.{base % 256 + 1}"
        self.ns_ip = f"10.251.{base // 256}.{base % 256 + 2}"
        self.proc = None
        self.created = False

    def sh(self, *cmd, ns=False, check=True):
        full = (["ip", "netns", "exec", self.name] if ns else []) + list(cmd)
        r = subprocess.run(full, capture_output=True, text=True, timeout=10)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: {r.stderr.strip()}")
        return r

    def create(self):
        self.sh("ip", "netns", "add", self.name)
        self.created = True
        self.sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        self.sh("ip", "link", "set", self.veth_ns, "netns", self.name)
        self.sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth_host)
        self.sh("ip", "link", "set", self.veth_host, "up")
        self.sh("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.veth_ns, ns=True)
        self.sh("ip", "link", "set", self.veth_ns, "up", ns=True)
        self.sh("ip", "link", "set", "lo", "up", ns=True)

    def link(self, up):
        # The far side goes down: the route here stays, SYNs are dropped on
        # the wire and connects time out (taking this side down would send
        # them out of the default route instead).
        self.sh("ip", "link", "set", self.veth_ns, "up" if up else "down", ns=True)

    def run_http(self, port, name):
        script = textwrap.dedent("""
            import sys
            from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
            class H(BaseHTTPRequestHandler):
                def do_GET(self):
                    body = (sys.argv[3] + "\\n").encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *a):
                    pass
            srv = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
            print("listening", flush=True)
            srv.serve_forever()
        """)
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.name, "/usr/bin/python3", "-c",
                                      script, self.ns_ip, str(port), name],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line == b"listening\n", (line, self.proc.stderr.read(2000) if self.proc.poll()
                                        is not None else b"")

    def destroy(self):
        if self.proc is not None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for s in (self.proc.stdout, self.proc.stderr):
                s.close()
        if self.created:
            self.sh("ip", "netns", "del", self.name, check=False)
        if self.sh("ip", "link", "show", self.veth_host, check=False).returncode == 0:
            self.sh("ip", "link", "del", self.veth_host, check=False)


@pytest.fixture
def netns():
    n = Netns()
    try:
        n.create()
    except (RuntimeError, OSError) as e:
        n.destroy()
        pytest.skip(f"cannot create a network namespace with a veth pair here: {e}")
    yield n
    n.destroy()


def test_vanished_host_times_out(fulcrum, backend, connect, port, netns):
    """A server whose host vanishes (its link goes down: connects time out,
    nothing refuses them) is down within the bound with 'timeout after',
    its clients go to the other server at once; when the link comes back
    it is up again after rise."""
    h = hc("http", interval="400ms", timeout="250ms", jitter="30ms", fall=2, rise=2)
    netns.run_http(8080, "FAR")
    far = f"{netns.ns_ip}:8080"
    near = HttpBackend(backend, "NEAR", respond=Resp(200, b"NEAR\n"))
    f = fulcrum(http_hc_config(port, [far, near], h))
    time.sleep(3 * ms(h["interval"]) / 1000)
    assert transitions(f) == [], f.error_log()
    assert set(get_names(connect, port, 4)) == {"FAR", "NEAR"}

    took, t_down, back = cycle(f, far, "http", h, lambda: netns.link(False),
                               lambda: netns.link(True),
                               down_reason=rf"check http: timeout after {h['timeout']}")
    t = time.monotonic()
    assert get_names(connect, port, 4) == ["NEAR"] * 4
    assert time.monotonic() - t < 1.0, "requests waited for the vanished server"
    back()
    assert set(get_names(connect, port, 4)) == {"FAR", "NEAR"}


# --------------------------------------------------------------------------
# the config checker

def run_check(path):
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT)
    return r.returncode, r.stdout, r.stderr


def two_pool_config(protocol, check, pool_tls=None):
    """pools[0] is a plain tcp pool, pools[1] (the one under test) has
    PROTOCOL and the CHECK."""
    lst = [listener("front", "127.0.0.1:18080", "other")]
    second = {"name": "tested", "protocol": protocol, "health_check": check,
              "servers": [{"address": "127.0.0.1:9001"}]}
    if pool_tls is not None:
        second["tls"] = pool_tls
    return make_config(lst, [pool("other", ["127.0.0.1:9000"]), second], workers=1)


BAD_CHECKS = [
    ("http-on-tcp", "tcp", {"type": "http"}, None,
     "a tcp pool cannot have http health checks; allowed: tcp"),
    ("https-on-tcp", "tcp", {"type": "https"}, None,
     "a tcp pool cannot have https health checks; allowed: tcp"),
    ("https-on-http", "http", {"type": "https"}, None,
     "an http pool cannot have https health checks; allowed: http or tcp"),
    ("http-on-https", "https", {"type": "http"}, None,
     "an https pool cannot have http health checks; allowed: https or tcp"),
    ("timeout-equal", "tcp", {"type": "tcp", "interval": "1s", "timeout": "1s"}, None,
     r"timeout \(1000ms\) must be below interval \(1000ms\)"),
    ("timeout-above", "http", {"type": "http", "interval": "500ms", "timeout": "2s"}, None,
     r"timeout \(2000ms\) must be below interval \(500ms\)"),
    ("timeout-default-interval", "tcp", {"type": "tcp", "timeout": "3s"}, None,
     r"timeout \(3000ms\) must be below interval \(2000ms\)"),
    ("status-open-range", "http", {"type": "http", "expect_status": "200-"}, None,
     r'expect_status "200-" is not a list of statuses'),
    ("status-words", "http", {"type": "http", "expect_status": "2xx"}, None,
     r'expect_status "2xx" is not a list of statuses'),
    ("status-too-high", "http", {"type": "http", "expect_status": "200-600"}, None,
     r'expect_status "200-600" is not a list of statuses'),
    ("status-reversed", "http", {"type": "http", "expect_status": "399-200"}, None,
     r'expect_status "399-200" is not a list of statuses'),
    ("status-trailing-comma", "http", {"type": "http", "expect_status": "200,"}, None,
     r'expect_status "200," is not a list of statuses'),
    ("send-on-http", "http", {"type": "http", "send": "PING"}, None,
     "send, expect and tls are for tcp checks"),
    ("expect-on-https", "https", {"type": "https", "expect": "+PONG"}, {"verify": False},
     "send, expect and tls are for tcp checks"),
    ("reuse-on-tcp", "tcp", {"type": "tcp", "reuse_connection": True}, None,
     "reuse_connection and reuse_limit are for http and https checks"),
    ("reuse-limit-on-tcp", "tcp", {"type": "tcp", "reuse_limit": 5}, None,
     "reuse_connection and reuse_limit are for http and https checks"),
    ("tls-without-pool-tls", "tcp", {"type": "tcp", "tls": True}, None,
     r"tls: true needs `tls: \{ enabled: true \}` on the pool"),
    ("jitter-over-half", "tcp", {"type": "tcp", "interval": "1s", "jitter": "600ms"}, None,
     "jitter must be at most half the interval"),
    ("address-a-name", "tcp", {"type": "tcp", "address": "localhost"}, None,
     r'address "localhost" is not a numeric IP address'),
    ("address-with-port", "tcp", {"type": "tcp", "address": "127.0.0.2:80"}, None,
     r'address "127.0.0.2:80" is not a numeric IP address'),
]


@pytest.mark.parametrize("protocol,check,pool_tls,message",
                         [c[1:] for c in BAD_CHECKS], ids=[c[0] for c in BAD_CHECKS])
def test_checker_rejects(tmp_path, protocol, check, pool_tls, message):
    path = write_config(tmp_path / "hc.yaml", two_pool_config(protocol, check, pool_tls))
    rc, out, err = run_check(path)
    assert rc == 1, (rc, out, err)
    rx = r"^\S+:\d+:\d+: pools\[1\]\.health_check: " + message
    assert re.search(rx, err, re.M), f"expected /{rx}/ in:\n{err}"
    # fulcrum itself refuses to start on it.
    r = subprocess.run([fulcrum_bin(), "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT)
    assert r.returncode != 0 and "pools[1].health_check" in r.stderr, r


@pytest.mark.parametrize("protocol,check,pool_tls", [
    ("tcp", {"type": "tcp"}, None),
    ("tcp", {"type": "tcp", "send": "hex:50494e470d0a", "expect": "+PONG"}, None),
    ("tcp", {"type": "tcp", "tls": True}, {"enabled": True, "verify": False}),
    ("http", {"type": "http", "expect_status": "200-299, 301", "expect_body": "~^ok"}, None),
    ("http", {"type": "tcp", "port": 9100, "address": "::1"}, None),
    ("https", {"type": "https", "headers": {"X-A": "1"}}, {"verify": False}),
    ("https", {"type": "tcp", "tls": True}, {"verify": False}),
])
def test_checker_accepts_allowed_pairs(tmp_path, protocol, check, pool_tls):
    path = write_config(tmp_path / "hc.yaml", two_pool_config(protocol, check, pool_tls))
    rc, out, err = run_check(path)
    assert rc == 0, (rc, out, err)


# --------------------------------------------------------------------------
# cost and bookkeeping

def tcp_pool_config(port, servers, h):
    return make_config([listener("front", fmt_addr("127.0.0.1", port), "backs")],
                       [pool("backs", servers, health_check=h)], workers=1)


def test_first_checks_are_spread_over_the_interval(fulcrum, backend, port):
    """A large pool is checked at a steady rate from the start: the first
    checks of 8 servers are spread over the first interval (1 s), not
    bunched within the jitter."""
    servers = [RedisLike(backend, f"S{i}") for i in range(8)]
    t0 = time.monotonic()
    fulcrum(tcp_pool_config(port, [s.address for s in servers],
                            hc("tcp", send=r"PING\r\n", expect="+PONG", interval="1s",
                               timeout="200ms", jitter="50ms")))
    assert wait_until(lambda: all(s.checks for s in servers), 3), "not every server was checked"
    firsts = sorted(s.checks[0][0] - t0 for s in servers)
    assert firsts[-1] - firsts[0] >= 0.6, f"first checks bunched: {firsts}"


def time_wait_to(port):
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return [ln for ln in out.splitlines() if ln.strip()]


def test_checks_leave_no_time_wait_sockets(fulcrum, backend, port):
    """A check ends with a reset once its verdict is in: a tcp check (which
    closes first, so would otherwise leave TIME_WAIT behind on fulcrum's
    side) leaves no socket in TIME_WAIT after a dozen checks."""
    b = backend("B", handler=silent)  # never closes first
    fulcrum(tcp_pool_config(port, [b.address], hc("tcp", interval="100ms", timeout="50ms",
                                                  jitter="0ms")))
    assert b.wait_accepted(12, 5), "fewer checks than expected"
    assert time_wait_to(b.port) == [], time_wait_to(b.port)


def test_check_results_are_logged_at_shutdown(fulcrum, backend, port):
    """At shutdown each checked server's checks are summed up: healthy or
    not, its state changes, passed and failed counts, the last check's
    duration and error."""
    good, bad = RedisLike(backend, "G"), RedisLike(backend, "B")
    bad.answer = RedisLike.BAD
    f = fulcrum(tcp_pool_config(port, [good.address, bad.address],
                                hc("tcp", send=r"PING\r\n", expect="+PONG")))
    assert wait_until(lambda: len(good.checks) >= 3 and len(bad.checks) >= 3, 5)
    f.stop()
    log = f.error_log()
    g = re.search(rf"health pool=backs server={re.escape(good.address)} healthy=yes downs=0 ups=0 "
                  rf"ejections=0 passed=(\d+) failed=0 last_ms=\d+ last_error=\"\"", log)
    b = re.search(rf"health pool=backs server={re.escape(bad.address)} healthy=no downs=1 ups=0 "
                  rf"ejections=0 passed=0 failed=(\d+) last_ms=\d+ "
                  rf"last_error=\"unexpected answer\"", log)
    assert g and int(g.group(1)) >= 3, log
    assert b and int(b.group(1)) >= 3, log

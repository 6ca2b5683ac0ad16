"""Backend lifecycle beyond active checks (docs/health-checks.md):

- passive outlier detection (pools[].passive): connect failures (a dead
  address), server timeouts (504) and, with http_5xx, 5xx answers of real
  traffic eject a server after `consecutive_failures` in a row (a success in
  between starts the count again), for tcp and http pools, with and without
  active checks; the ejection and its end are logged; each next ejection of
  a server lasts twice as long, up to 10 times the base; never more than
  max_ejected_percent of a pool is ejected at once;
- slow_start: a server that comes back (checks pass again, or its ejection
  ends) gets a share of new requests that rises from about 10% of its share
  to all of it (measured in successive time windows); without slow_start
  the split is even at once; maglev ignores it;
- admin states from config: drain and maintenance servers get no traffic,
  their checks keep running; an open tcp stream to a server that goes down
  (failed checks, or ejected) keeps flowing while new clients go elsewhere;
- all_down: fail (503 / closed) and spread (drained and maintenance servers
  excepted);
- the on_change hook: its environment for active and passive changes, and a
  hook that fails or hangs delays neither checks nor traffic.

Ejections are measured with the timestamps of fulcrum's own log lines (ms
precision); fulcrum looks at ejections every 100 ms, so each announced start
or end may lag by up to that.
"""

import datetime
import math
import os
import re
import shlex
import signal
import socket
import threading
import time

import pytest

from conftest import (closed_by_peer, fmt_addr, free_port, listener, make_config, pool,
                      recv_exact, recv_line, wait_until)
from http_helpers import Client, HttpBackend, Resp, client, http_config
from test_health_checks import (CHECK_UA, RedisLike, Switch, backend_at, checks_of,  # noqa: F401
                                down_bound, get_names, hc, http_switch, is_check, proxied,
                                transitions, up_bound, wait_change)

# Ejections are announced and ended by a 100 ms tick, so each end of a
# measured ejection may be up to 100 ms late; plus scheduling.
TICK = 0.1
SLACK = TICK + 0.08


# --------------------------------------------------------------------------
# the error log: state changes with their timestamps

EVENT_RX = re.compile(r"^(\S+) \[warn\] pool (\S+): server (\S+) is (up|down) \((.*)\)$", re.M)
CONNFAIL_RX = r"connect to server {} of pool \S+ failed"


def log_time(ts):
    return datetime.datetime.fromisoformat(ts.rstrip("Z")).timestamp()


def events(f, addr=None, passive=None):
    """[(time, pool, server, state, reason)] in log order; passive=True:
    only passive changes, False: only active ones."""
    out = []
    for m in EVENT_RX.finditer(f.error_log()):
        if addr is not None and m.group(3) != addr:
            continue
        is_passive = m.group(5).startswith("passive:")
        if passive is not None and is_passive != passive:
            continue
        out.append((log_time(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5)))
    return out


def wait_events(f, addr, n, timeout, passive=True):
    """Until server ADDR has N (passive) changes; returns them."""
    evs = wait_until(lambda: (lambda e: e if len(e) >= n else None)(events(f, addr, passive)),
                     timeout, interval=0.01)
    assert evs, (f"expected {n} passive state changes of {addr} within {timeout}s; got "
                 f"{events(f, addr, passive)}:\n{f.error_log()}")
    return evs


def ejections(evs):
    """[(down event, up event or None)] from the changes of one server."""
    out = []
    for e in evs:
        if e[3] == "down":
            out.append([e, None])
        else:
            assert out and out[-1][1] is None, f"an 'up' without a 'down' before it: {evs}"
            out[-1][1] = e
    return out


def connect_failures(f, addr):
    return len(re.findall(CONNFAIL_RX.format(re.escape(addr)), f.error_log()))


EJECT_RX = re.compile(r"passive: (\d+) failures? in a row; ejected for (\d+)(ms|s)")


def assert_announced(reason, failures, seconds):
    """The down reason names the failures and the ejection time: exact, or
    rounded up to whole seconds."""
    m = EJECT_RX.fullmatch(reason)
    assert m, f"unexpected reason {reason!r}"
    assert int(m.group(1)) == failures, reason
    said = int(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    assert seconds - SLACK <= said <= max(seconds, math.ceil(seconds - 1e-9)) + 1e-9, \
        f"{reason!r}: the ejection lasts {seconds}s"


# --------------------------------------------------------------------------
# traffic

def http_get(port, target="/", timeout=3.0, headers=()):
    """One request on its own connection: (Response, seconds)."""
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        r = Client(s).request("GET", target, headers=[("Connection", "close")] + list(headers))
    finally:
        s.close()
    return r, time.monotonic() - t


class Driver:
    """A thread sending requests (each on its own connection) every PAUSE
    seconds until stopped; records (monotonic time, status or error, body)."""

    def __init__(self, port, pause=0.01, target="/drive"):
        self.port = port
        self.pause = pause
        self.target = target
        self.results = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self.stop_ev.is_set():
            try:
                r, took = http_get(self.port, f"{self.target}{i}")
                self.results.append((time.monotonic(), r.status, r.body, took))
            except (OSError, EOFError) as e:
                self.results.append((time.monotonic(), repr(e), b"", 0.0))
            i += 1
            self.stop_ev.wait(self.pause)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the traffic thread is stuck"

    def statuses(self):
        return [r[1] for r in self.results]


def dead_servers(dead_address, n, host="127.0.0.1"):
    return [dead_address(host) for _ in range(n)]


def passive_kw(failures, ejection, percent=None, http_5xx=None):
    d = {"consecutive_failures": failures, "base_ejection": ejection}
    if percent is not None:
        d["max_ejected_percent"] = percent
    if http_5xx is not None:
        d["http_5xx"] = http_5xx
    return d


# --------------------------------------------------------------------------
# passive: connect failures, timeouts, 5xx

def test_passive_ejects_after_connect_failures_http(fulcrum, backend, dead_address, port):
    """http pool, no active checks: a dead server is tried (its clients are
    retried on A and get 200) until its 3rd connect failure in a row ejects
    it for base_ejection (1s); meanwhile it is not tried at all; then it is
    tried again, and 3 more failures eject it for twice as long."""
    a = HttpBackend(backend, "A")
    (d,) = dead_servers(dead_address, 1)
    f = fulcrum(http_config(port, {"p": [a, d]},
                            pool_kw={"p": {"passive": passive_kw(3, "1s")}}))
    for i in range(20):
        r, _ = http_get(port, f"/r{i}")
        assert r.status == 200 and r.body.startswith(b"A "), r
        if connect_failures(f, d) >= 3:
            break
    assert connect_failures(f, d) == 3
    (down,) = wait_events(f, d, 1, 1.0)
    assert down[1:4] == ("p", d, "down"), down
    assert_announced(down[4], 3, 1.0)

    # Ejected: requests go to A without trying D.
    for i in range(10):
        r, took = http_get(port, f"/e{i}")
        assert r.status == 200 and r.body.startswith(b"A "), r
    assert connect_failures(f, d) == 3, "an ejected server was tried"
    assert len(events(f, d)) == 1, events(f, d)     # still ejected

    evs = wait_events(f, d, 2, 2.0)
    assert evs[1][3:] == ("up", "passive: its ejection ended"), evs
    assert 1.0 - SLACK <= evs[1][0] - evs[0][0] <= 1.0 + SLACK, evs

    # Back in rotation: tried again, ejected again, now for 2 s.
    for i in range(20):
        r, _ = http_get(port, f"/b{i}")
        assert r.status == 200, r
        if connect_failures(f, d) >= 6:
            break
    assert connect_failures(f, d) == 6
    evs = wait_events(f, d, 3, 1.0)
    assert evs[2][3] == "down"
    assert_announced(evs[2][4], 3, 2.0)
    assert [e[3] for e in events(f)] == ["down", "up", "down"], "A changed state"
    # The shutdown summary counts the changes and ejections of each server.
    f.stop()
    log = f.error_log()
    assert re.search(rf"health pool=p server={re.escape(d)} healthy=no downs=2 ups=1 "
                     rf"ejections=2$", log, re.M), log
    assert re.search(rf"health pool=p server={re.escape(a.address)} healthy=yes downs=0 ups=0 "
                     rf"ejections=0$", log, re.M), log


@pytest.mark.parametrize("active", [False, True], ids=["passive-only", "with-tcp-checks"])
def test_passive_ejects_tcp_server(fulcrum, backend, backend_at, dead_address, connect, port,
                                   active):
    """tcp pool: a server whose traffic port refuses connects is ejected
    after 2 failures in a row (its clients are retried on A); with active
    tcp checks that still pass (they go to a separate health port that
    answers), the ejection happens all the same and no active change is
    logged."""
    a = backend("A")
    d = dead_address("127.0.0.2")
    pk = {"passive": passive_kw(2, "2s")}
    if active:
        # A health port answering on both 127.0.0.1 and 127.0.0.2.
        for _ in range(50):
            h1 = backend_at("H1", "127.0.0.1", 0)
            try:
                backend_at("H2", "127.0.0.2", h1.port)
                break
            except OSError:
                continue
        pk["health_check"] = hc("tcp", port=h1.port)
    f = fulcrum(make_config([listener("front", fmt_addr("127.0.0.1", port), "backs")],
                            [pool("backs", [a.address, d], **pk)], workers=1))
    if active:
        assert wait_until(lambda: h1.accepted >= 3, 3), "no checks reached the health port"
    for i in range(10):
        s = connect(port)
        assert recv_line(s) == b"A\n"
        s.close()
        if connect_failures(f, d) >= 2:
            break
    assert connect_failures(f, d) == 2
    (down,) = wait_events(f, d, 1, 1.0)
    assert down[1:4] == ("backs", d, "down")
    assert_announced(down[4], 2, 2.0)
    for _ in range(6):
        s = connect(port)
        assert recv_line(s) == b"A\n"
        s.close()
    assert connect_failures(f, d) == 2, "an ejected server was tried"
    time.sleep(0.3)
    assert events(f, passive=False) == [], "an active check changed a state"
    assert events(f) == [down]


def test_passive_ejects_on_server_timeouts(fulcrum, backend, port):
    """A server that never answers: each of its requests gets a 504 after
    timeouts.server (200ms); the 2nd in a row ejects it, and then requests
    are answered by A at once."""
    a = HttpBackend(backend, "A")
    slow = HttpBackend(backend, "SLOW", respond=Resp(action="hang"))
    f = fulcrum(http_config(port, {"p": [a, slow]},
                            pool_kw={"p": {"passive": passive_kw(2, "2s")}},
                            listener_kw={"timeouts": {"server": "200ms"}}))
    statuses = []
    for i in range(10):
        r, took = http_get(port, f"/r{i}")
        statuses.append(r.status)
        if r.status == 504:
            assert 0.15 <= took <= 1.0, took
        if statuses.count(504) == 2:
            break
    assert statuses.count(504) == 2 and set(statuses) == {200, 504}, statuses
    (down,) = wait_events(f, slow.address, 1, 1.0)
    assert_announced(down[4], 2, 2.0)
    n_slow = len(slow.requests)
    for i in range(8):
        r, took = http_get(port, f"/e{i}")
        assert r.status == 200 and r.body.startswith(b"A "), r
        assert took < 0.5, f"a request took {took:.3f}s"
    assert len(slow.requests) == n_slow, "the ejected server got requests"


def server_500_checks_200(req):
    if is_check(req):
        return Resp(200, b"healthy\n")
    return Resp(500, b"C broken\n")


@pytest.mark.parametrize("http_5xx", [True, False])
def test_passive_http_5xx_with_active_checks(fulcrum, backend, port, http_5xx):
    """C passes its active http checks but answers every real request with
    500. With http_5xx: true its 3rd 500 in a row ejects it although its
    checks pass: then it gets checks but no request, until the ejection
    ends. With http_5xx: false (the default) 500s are not failures: never
    ejected."""
    a = HttpBackend(backend, "A")
    c = HttpBackend(backend, "C", respond=server_500_checks_200)
    f = fulcrum(http_config(port, {"p": [a, c]}, pool_kw={"p": {
        "health_check": hc("http"), "passive": passive_kw(3, "1s", http_5xx=http_5xx)}}))
    assert wait_until(lambda: len(checks_of(c)) >= 2, 3)
    statuses = []
    for i in range(12):
        r, _ = http_get(port, f"/r{i}")
        statuses.append(r.status)
        if http_5xx and statuses.count(500) == 3:
            break
    if not http_5xx:
        assert statuses.count(500) == 6, statuses
        time.sleep(0.3)
        assert events(f) == [], f.error_log()
        return
    assert statuses.count(500) == 3, statuses
    (down,) = wait_events(f, c.address, 1, 1.0)
    assert_announced(down[4], 3, 1.0)
    t_ej = time.monotonic()
    checks_before = len(checks_of(c))
    for i in range(8):
        r, _ = http_get(port, f"/e{i}")
        assert r.status == 200 and r.body.startswith(b"A "), r
    assert proxied(c, since=t_ej) == [], "the ejected server got requests"
    assert wait_until(lambda: len(checks_of(c)) > checks_before + 1, 1.0), \
        "checks stopped during the ejection"
    evs = wait_events(f, c.address, 2, 2.0)
    assert evs[1][3:] == ("up", "passive: its ejection ended")
    t_back = time.monotonic()
    statuses = [http_get(port, f"/b{i}")[0].status for i in range(4)]
    assert 500 in statuses and proxied(c, since=t_back), "C did not come back"
    assert events(f, passive=False) == [], "an active check changed a state"


def failing_by_path(req):
    if req.target.startswith("/fail"):
        return Resp(500, b"failed\n")
    return Resp(200, b"fine\n")


def test_passive_success_resets_the_count(fulcrum, backend, port):
    """consecutive_failures: 3 means in a row: 500, 500, 200, 500, 500, 200,
    500, 500 never ejects; a 3rd 500 in a row does (the only server: the
    next request gets 503) and once the ejection ends it is served again."""
    b = HttpBackend(backend, "B", respond=failing_by_path)
    f = fulcrum(http_config(port, {"p": [b]},
                            pool_kw={"p": {"passive": passive_kw(3, "1s", http_5xx=True)}}))
    seq = ["/fail", "/fail", "/ok", "/fail", "/fail", "/ok", "/fail", "/fail"]
    got = [http_get(port, t)[0].status for t in seq]
    assert got == [500, 500, 200, 500, 500, 200, 500, 500], got
    time.sleep(2 * TICK + 0.05)
    assert events(f) == [], f"ejected without 3 failures in a row:\n{f.error_log()}"
    assert http_get(port, "/fail")[0].status == 500
    r, _ = http_get(port, "/ok")
    assert r.status == 503, f"the ejected server still got a request: {r}"
    (down,) = wait_events(f, b.address, 1, 1.0)
    assert_announced(down[4], 3, 1.0)
    evs = wait_events(f, b.address, 2, 2.0)
    assert evs[1][3] == "up"
    r, _ = http_get(port, "/ok")
    assert r.status == 200 and r.body == b"fine\n", r


# --------------------------------------------------------------------------
# passive: ejection times and the cap on ejected servers

def measure_ejections(f, port, addr, n, timeout):
    """Steady traffic until server ADDR has been ejected N times and come
    back each time: the [(announced reason, seconds ejected)]."""
    with Driver(port, pause=0.005) as drv:
        wait_events(f, addr, 2 * n, timeout)
    bad = [r for r in drv.results if r[1] != 200]
    assert not bad, f"requests failed: {bad[:5]}"
    ej = ejections(events(f, addr))[:n]
    return [(down[4], up[0] - down[0]) for down, up in ej]


def test_passive_ejections_double(fulcrum, backend, dead_address, port):
    """A server that stays dead under steady traffic: each ejection lasts
    twice the one before: about 0.4s, 0.8s, 1.6s."""
    a = HttpBackend(backend, "A")
    (d,) = dead_servers(dead_address, 1)
    f = fulcrum(http_config(port, {"p": [a, d]},
                            pool_kw={"p": {"passive": passive_kw(1, "400ms")}}))
    got = measure_ejections(f, port, d, 3, 6.0)
    for (reason, took), want in zip(got, [0.4, 0.8, 1.6]):
        assert want - SLACK <= took <= want + SLACK, f"ejections lasted {got}, expected ~{want}s"
        assert_announced(reason, 1, want)


def test_passive_ejection_capped_at_ten_times_the_base(fulcrum, backend, dead_address, port):
    """base_ejection 100ms: 0.1, 0.2, 0.4, 0.8, then never more than 1s
    (10x), however many times the server is ejected."""
    a = HttpBackend(backend, "A")
    (d,) = dead_servers(dead_address, 1)
    f = fulcrum(http_config(port, {"p": [a, d]},
                            pool_kw={"p": {"passive": passive_kw(1, "100ms")}}))
    got = measure_ejections(f, port, d, 6, 8.0)
    durations = [round(t, 3) for _, t in got]
    for took, want in zip(durations[3:], [0.8, 1.0, 1.0]):
        assert want - SLACK <= took <= want + SLACK, \
            f"ejections lasted {durations}, expected ~0.1 0.2 0.4 0.8 1.0 1.0"
    for reason, _ in got[4:]:
        assert_announced(reason, 1, 1.0)


@pytest.mark.parametrize("percent,most", [(50, 2), (0, 1), (100, 4)])
def test_max_ejected_percent(fulcrum, backend, dead_address, port, percent, most):
    """4 dead servers and A (5 servers): never more than max_ejected_percent
    of them ejected at once (50%: 2; 0%: still one may be; 100%: all 4
    dead ones); the dead ones over the cap are still tried (their clients
    retried on A), and every request is answered by A."""
    a = HttpBackend(backend, "A")
    dead = dead_servers(dead_address, 4)
    f = fulcrum(http_config(port, {"p": [a] + dead},
                            pool_kw={"p": {"passive": passive_kw(1, "1s", percent=percent)}}))
    with Driver(port, pause=0.005) as drv:
        wait_events(f, None, most, 2.0)
        t_full = time.time()
        time.sleep(0.6)
        fails_over_cap = {d: connect_failures(f, d) for d in dead}
        time.sleep(0.3)
        fails_later = {d: connect_failures(f, d) for d in dead}
        wait_until(lambda: any(e[3] == "up" for e in events(f)), 2.0)
        time.sleep(0.3)
    bad = [r for r in drv.results if r[1] != 200]
    assert not bad, f"requests failed: {bad[:5]}"
    ejected, peak = set(), 0
    for t, _, srv, state, _ in events(f):
        assert srv in dead, f"A was ejected:\n{f.error_log()}"
        if state == "down":
            ejected.add(srv)
        else:
            ejected.discard(srv)
        peak = max(peak, len(ejected))
    assert peak == most, (f"at most {most} of 5 servers may be ejected at once, "
                          f"saw {peak}:\n{f.error_log()}")
    held = [e[2] for e in events(f) if e[0] <= t_full]
    if most < 4:
        # The dead servers that could not be ejected were still tried.
        others = [d for d in dead if d not in held]
        assert others and all(fails_later[d] > fails_over_cap[d] for d in others), \
            (fails_over_cap, fails_later)


# --------------------------------------------------------------------------
# slow start

def shares(samples, t0, window, count, name):
    """Share of requests answered by NAME in successive windows from t0:
    [(share, requests in the window)]."""
    out = []
    for i in range(count):
        lo, hi = t0 + i * window, t0 + (i + 1) * window
        w = [n for t, n in samples if lo <= t < hi]
        out.append((sum(1 for n in w if n == name) / len(w) if w else float("nan"), len(w)))
    return out


def sample(c, seconds):
    """Sequential requests on one keep-alive client: [(time, backend name)]."""
    out = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        r = c.request("GET", f"/s{i}")
        assert r.status == 200, r
        out.append((time.monotonic(), r.body.split()[0].decode()))
        i += 1
    return out


SLOW_START = 2.0
WINDOW = 0.4


def check_ramp(samples, t_back, slow_start):
    n_ramp = int(slow_start / WINDOW)
    sh = shares(samples, t_back, WINDOW, n_ramp + 2, "B")
    desc = " ".join(f"{s:.2f}({n})" for s, n in sh)
    assert all(n >= 20 for _, n in sh), f"too few requests per window: {desc}"
    ramp = [s for s, _ in sh[:n_ramp]]
    assert ramp[0] <= 0.25, f"B got {ramp[0]:.0%} of the requests at once (shares: {desc})"
    assert ramp[-1] >= 0.33, f"B's share did not rise (shares: {desc})"
    assert ramp[-1] - ramp[0] >= 0.15, f"B's share did not rise (shares: {desc})"
    for x, y in zip(ramp, ramp[1:]):
        assert y >= x - 0.1, f"B's share fell during the ramp (shares: {desc})"
    for s, _ in sh[n_ramp:]:
        assert 0.4 <= s <= 0.6, f"not an even split after slow start (shares: {desc})"


def bring_back_by_checks(f, b, h):
    seen = len(transitions(f, b.address))
    t0 = time.monotonic()
    b.switch.failing = True
    wait_change(f, b.address, "down", seen, t0, down_bound(h) + 2)
    t1 = time.monotonic()
    b.switch.failing = False
    wait_change(f, b.address, "up", seen + 1, t1, up_bound(h) + 2)
    return time.monotonic()


@pytest.mark.parametrize("weight", [None, 10], ids=["default-weights", "weights-10"])
def test_slow_start_after_checks_pass_again(fulcrum, backend, connect, port, weight):
    """slow_start 2s: B comes back (its http checks pass again) with about
    10% of its share (~9% of the requests), rising window by window (0.4s
    each) to an even split with A after 2s. With the default weights (1)
    as with weights of 10."""
    h = hc("http", fall=2, rise=1)
    a, b = http_switch(backend, "A"), http_switch(backend, "B")
    servers = [a, b] if weight is None else [{"address": s.address, "weight": weight}
                                             for s in (a, b)]
    f = fulcrum(http_config(port, {"p": servers}, pool_kw={"p": {
        "health_check": h, "slow_start": f"{int(SLOW_START * 1000)}ms"}}))
    b.switch.wait_checks(2)
    t_back = bring_back_by_checks(f, b, h)
    c = client(connect, port)
    samples = sample(c, SLOW_START + 2 * WINDOW + 0.05)
    check_ramp(samples, t_back, SLOW_START)


def test_slow_start_after_ejection_ends(fulcrum, backend, connect, port):
    """slow_start also ramps a server whose passive ejection ended."""
    a = HttpBackend(backend, "A")
    state = {"failing": False}

    def respond(req):
        if state["failing"]:
            return Resp(500, b"B broken\n")
        return Resp(200, b"B ok\n")

    b = HttpBackend(backend, "B", respond=respond)
    f = fulcrum(http_config(port, {"p": [a, b]}, pool_kw={"p": {
        "passive": passive_kw(2, "600ms", http_5xx=True),
        "slow_start": f"{int(SLOW_START * 1000)}ms"}}))
    state["failing"] = True
    for i in range(10):
        http_get(port, f"/f{i}")
        if len(b.requests) >= 2:
            break
    wait_events(f, b.address, 1, 1.0)
    state["failing"] = False
    wait_events(f, b.address, 2, 2.0)
    t_back = time.monotonic()
    c = client(connect, port)
    samples = sample(c, SLOW_START + 2 * WINDOW + 0.05)
    check_ramp(samples, t_back, SLOW_START)


def test_without_slow_start_the_split_is_even_at_once(fulcrum, backend, connect, port):
    h = hc("http", fall=2, rise=1)
    a, b = http_switch(backend, "A"), http_switch(backend, "B")
    f = fulcrum(http_config(port, {"p": [a, b]}, pool_kw={"p": {"health_check": h}}))
    b.switch.wait_checks(2)
    t_back = bring_back_by_checks(f, b, h)
    samples = sample(client(connect, port), 2 * WINDOW + 0.05)
    sh = shares(samples, t_back, WINDOW, 2, "B")
    assert all(0.4 <= s <= 0.6 and n >= 20 for s, n in sh), sh


def test_maglev_keeps_its_keys_with_slow_start(fulcrum, backend, connect, port):
    """slow_start does not apply to maglev: a pool with it set works, and a
    server that comes back gets all of its clients back at once (the same
    client -> server mapping as before it went down)."""
    h = hc("http", fall=2, rise=1)
    a, b = http_switch(backend, "A"), http_switch(backend, "B")
    f = fulcrum(http_config(port, {"p": [a, b]}, pool_kw={"p": {
        "algorithm": "maglev", "health_check": h, "slow_start": "3s"}}))
    b.switch.wait_checks(2)
    sources = [f"127.0.0.{i}" for i in range(10, 42)]

    def mapping():
        out = {}
        for src in sources:
            r = client(connect, port, source=src).request(
                "GET", "/m", headers=[("Connection", "close")])
            assert r.status == 200, r
            out[src] = r.body.strip().decode()
        return out

    before = mapping()
    assert set(before.values()) == {"A", "B"}, before
    assert mapping() == before, "maglev is not stable"
    seen = len(transitions(f, b.address))
    t0 = time.monotonic()
    b.switch.failing = True
    wait_change(f, b.address, "down", seen, t0, down_bound(h) + 2)
    assert set(mapping().values()) == {"A"}
    t1 = time.monotonic()
    b.switch.failing = False
    wait_change(f, b.address, "up", seen + 1, t1, up_bound(h) + 2)
    t_back = time.monotonic()
    after = mapping()
    assert time.monotonic() - t_back < 1.5
    assert after == before, "a server back in a maglev pool did not get its clients back at once"


# --------------------------------------------------------------------------
# admin states

def test_drain_and_maintenance_get_no_traffic_but_are_checked(fulcrum, backend, connect, port):
    """From config: http servers B (drain) and C (maintenance) get no
    request, A gets all; their http checks keep running (they receive
    check requests, and C's failing and passing again are logged); in a
    tcp pool, drain and maintenance servers accept no connection."""
    h = hc("http", fall=2, rise=1)
    a, b, c = (http_switch(backend, n) for n in ("A", "B", "C"))
    ta, tb, tc = backend("TA"), backend("TB"), backend("TC")
    tport = free_port()
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "p"},
         listener("raw", fmt_addr("127.0.0.1", tport), "t")],
        [{"name": "p", "protocol": "http", "health_check": h,
          "servers": [{"address": a.address}, {"address": b.address, "state": "drain"},
                      {"address": c.address, "state": "maintenance"}]},
         pool("t", [ta.address, {"address": tb.address, "state": "drain"},
                    {"address": tc.address, "state": "maintenance"}])], workers=1)
    f = fulcrum(cfg)
    assert get_names(connect, port, 12) == ["A"] * 12
    for _ in range(6):
        s = connect(tport)
        assert recv_line(s) == b"TA\n"
        s.close()
    assert tb.accepted == 0 and tc.accepted == 0
    b.switch.wait_checks(3)
    c.switch.wait_checks(3)
    assert proxied(b) == [] and proxied(c) == []
    assert all(r.headers.get("user-agent") == CHECK_UA for r in checks_of(c))

    # C's checks keep running in maintenance: its failure and return are logged.
    t0 = time.monotonic()
    c.switch.failing = True
    wait_change(f, c.address, "down", 0, t0, down_bound(h) + 2)
    t1 = time.monotonic()
    c.switch.failing = False
    wait_change(f, c.address, "up", 1, t1, up_bound(h) + 2)
    assert get_names(connect, port, 6) == ["A"] * 6
    assert proxied(b) == [] and proxied(c) == []
    assert transitions(f, a.address) == [] and transitions(f, b.address) == []


def stream_to(connect, port, name, tries=6):
    """A client connection through fulcrum that landed on server NAME."""
    for _ in range(tries):
        s = connect(port)
        s.sendall(b"HELLO\n")
        if recv_line(s) == name.encode() + b"\n":
            return s
        s.close()
    raise AssertionError(f"no connection reached {name}")


def assert_flows(s, n=64 * 1024):
    data = os.urandom(n)
    got = bytearray()
    s.sendall(data)
    while len(got) < n:
        got += recv_exact(s, min(65536, n - len(got)))
    assert bytes(got) == data, "the open stream corrupted its bytes"


def test_open_stream_survives_its_server_going_down(fulcrum, backend, connect, port):
    """A tcp stream opened to B keeps flowing (both ways) after B fails its
    checks and is taken out; new connections go to A only."""
    h = hc("tcp", send=r"PING\r\n", expect="+PONG", fall=2, rise=1)
    a, b = RedisLike(backend, "A"), RedisLike(backend, "B")
    f = fulcrum(make_config([listener("front", fmt_addr("127.0.0.1", port), "backs")],
                            [pool("backs", [a.address, b.address], health_check=h)], workers=1))
    s = stream_to(connect, port, "B")
    assert_flows(s)
    t0 = time.monotonic()
    b.answer = RedisLike.BAD
    wait_change(f, b.address, "down", 0, t0, down_bound(h) + 2)
    for _ in range(4):
        c = connect(port)
        c.sendall(b"HELLO\n")
        assert recv_line(c) == b"A\n"
        c.close()
    assert_flows(s)
    time.sleep(0.5)
    assert_flows(s)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    assert len(b.clients) == 1


def test_open_stream_survives_its_server_being_ejected(fulcrum, backend, connect, port):
    """B stops accepting connections (its listening socket closes) while a
    stream to it is open: new clients fail to connect to it (retried on
    A) and eject it, and the open stream keeps flowing."""
    a, b = RedisLike(backend, "A"), RedisLike(backend, "B")
    f = fulcrum(make_config([listener("front", fmt_addr("127.0.0.1", port), "backs")],
                            [pool("backs", [a.address, b.address],
                                  passive=passive_kw(2, "5s"))], workers=1))
    s = stream_to(connect, port, "B")
    assert_flows(s)
    b.b.stopped.set()          # stop listening, keep the open connections
    b.b.lsock.close()
    b.b.thread.join(5)
    for _ in range(6):
        c = connect(port)
        c.sendall(b"HELLO\n")
        assert recv_line(c) == b"A\n"
        c.close()
    (down,) = wait_events(f, b.address, 1, 1.0)
    assert_announced(down[4], 2, 5.0)
    assert_flows(s)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""


# --------------------------------------------------------------------------
# all_down

def checks_fail_traffic_ok(name):
    def respond(req):
        if is_check(req):
            return Resp(503, b"dependency down\n")
        return Resp(200, f"{name}\n".encode())
    return respond


def test_all_down_fail(fulcrum, backend, connect, port):
    """all_down: fail (the default): with every server down an http client
    gets 503 (a drained server, healthy, is no fallback) and a tcp client
    is closed; no server gets the traffic."""
    h = hc("http")
    x = HttpBackend(backend, "X", respond=checks_fail_traffic_ok("X"))
    d = HttpBackend(backend, "D")
    t = RedisLike(backend, "T")
    t.answer = RedisLike.BAD
    tport = free_port()
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "p"},
         listener("raw", fmt_addr("127.0.0.1", tport), "t")],
        [{"name": "p", "protocol": "http", "health_check": h,
          "servers": [{"address": x.address}, {"address": d.address, "state": "drain"}]},
         pool("t", [t.address], health_check=hc("tcp", send=r"PING\r\n", expect="+PONG"))],
        workers=1)
    f = fulcrum(cfg)
    t0 = time.monotonic()
    wait_change(f, x.address, "down", 0, t0, 2)
    wait_change(f, t.address, "down", 0, t0, 2)
    for i in range(4):
        r, _ = http_get(port, f"/r{i}")
        assert r.status == 503, r
    s = connect(tport)
    s.sendall(b"WHO\r\n")
    assert closed_by_peer(s, timeout=3), "a tcp client got data with every server down"
    assert proxied(x) == [] and proxied(d) == [] and t.clients == []


def test_all_down_spread(fulcrum, backend, connect, port):
    """all_down: spread: every server fails its checks (a shared dependency
    is down) yet serves: requests go to A and B, never to C (drain) or D
    (maintenance), nor does the tcp pool close its clients. Once A passes
    again, only A gets requests."""
    h = hc("http", fall=2, rise=1)
    sw = Switch("A", bad=Resp(503, b"dependency down\n"))
    sw.failing = True
    a = HttpBackend(backend, "A", respond=lambda req: sw(req) if is_check(req)
                    else Resp(200, b"A\n"))
    b, c, d = (HttpBackend(backend, n, respond=checks_fail_traffic_ok(n)) for n in "BCD")
    ta, tb = RedisLike(backend, "TA"), RedisLike(backend, "TB")
    ta.answer = tb.answer = RedisLike.BAD
    tport = free_port()
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "p"},
         listener("raw", fmt_addr("127.0.0.1", tport), "t")],
        [{"name": "p", "protocol": "http", "health_check": h, "all_down": "spread",
          "servers": [{"address": a.address}, {"address": b.address},
                      {"address": c.address, "state": "drain"},
                      {"address": d.address, "state": "maintenance"}]},
         pool("t", [ta.address, tb.address], all_down="spread",
              health_check=hc("tcp", send=r"PING\r\n", expect="+PONG"))],
        workers=1)
    f = fulcrum(cfg)
    t0 = time.monotonic()
    for srv in (a, b, c, d, ta, tb):
        wait_change(f, srv.address, "down", 0, t0, 2)
    names = get_names(connect, port, 12)
    assert set(names) == {"A", "B"}, names
    assert proxied(c) == [] and proxied(d) == []
    tnames = []
    for _ in range(6):
        s = connect(tport)
        s.sendall(b"WHO\r\n")
        tnames.append(recv_line(s).strip().decode())
        s.close()
    assert set(tnames) == {"TA", "TB"}, tnames

    t1 = time.monotonic()
    sw.failing = False
    wait_change(f, a.address, "up", 1, t1, up_bound(h) + 2)
    t_up = time.monotonic()
    assert get_names(connect, port, 6) == ["A"] * 6
    assert proxied(b, since=t_up) == []


# --------------------------------------------------------------------------
# on_change

HOOK = r"""#!/bin/sh
names=$(env | grep -o '^FULCRUM_[A-Z_]*=' | tr -d = | sort | tr '\n' ' ')
printf '%s|%s|%s|%s|%s|%s\n' "$FULCRUM_POOL" "$FULCRUM_SERVER" "$FULCRUM_STATE" \
    "$FULCRUM_CHECK" "$FULCRUM_REASON" "$names" >> {out}
"""


def write_hook(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body)
    p.chmod(0o755)
    return p


def hook_lines(path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [ln.split("|") for ln in text.splitlines()]


def test_on_change_hook_environment(fulcrum, backend, dead_address, port, tmp_path):
    """on_change runs once per change, active or passive, with FULCRUM_POOL,
    FULCRUM_SERVER, FULCRUM_STATE, FULCRUM_CHECK (tcp, http, passive) and
    FULCRUM_REASON (the reason of the log line)."""
    out = tmp_path / "changes.txt"
    hook = write_hook(tmp_path, "notify.sh", HOOK.replace("{out}", shlex.quote(str(out))))
    h = hc("http", fall=2, rise=2)
    a = HttpBackend(backend, "A")
    b = http_switch(backend, "B")
    c = HttpBackend(backend, "C", respond=server_500_checks_200)
    t = dead_address()
    tport = free_port()
    on_change = {"exec": shlex.quote(str(hook))}
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "web"},
         listener("raw", fmt_addr("127.0.0.1", tport), "raw")],
        [{"name": "web", "protocol": "http", "health_check": h, "on_change": on_change,
          "passive": passive_kw(2, "1s", http_5xx=True),
          "servers": [{"address": a.address}, {"address": b.address}, {"address": c.address}]},
         pool("raw", [t], health_check=hc("tcp"), on_change=on_change)], workers=1)
    f = fulcrum(cfg)
    t0 = time.monotonic()
    wait_change(f, t, "down", 0, t0, 2)
    b.switch.wait_checks(2)

    # B: down and up by its checks.
    t1 = time.monotonic()
    b.switch.failing = True
    wait_change(f, b.address, "down", 0, t1, down_bound(h) + 2)
    t2 = time.monotonic()
    b.switch.failing = False
    wait_change(f, b.address, "up", 1, t2, up_bound(h) + 2)
    # C: ejected by its 500s, then back.
    for i in range(10):
        http_get(port, f"/r{i}")
        if len(proxied(c)) >= 2:
            break
    wait_events(f, c.address, 2, 3.0)

    expected = [
        ("raw", t, "down", "tcp", "check tcp: connect: Connection refused"),
        ("web", b.address, "down", "http", "check http: status 500"),
        ("web", b.address, "up", "http", "check http passed 2 times in a row"),
        ("web", c.address, "down", "passive", "passive: 2 failures in a row; ejected for 1s"),
        ("web", c.address, "up", "passive", "passive: its ejection ended"),
    ]
    assert wait_until(lambda: len(hook_lines(out)) >= len(expected), 3), hook_lines(out)
    time.sleep(0.3)
    lines = hook_lines(out)
    assert sorted(tuple(ln[:5]) for ln in lines) == sorted(expected), lines
    for ln in lines:
        names = ln[5].split()
        for v in ("FULCRUM_CHECK", "FULCRUM_POOL", "FULCRUM_REASON", "FULCRUM_SERVER",
                  "FULCRUM_STATE"):
            assert v in names, ln
    # The hook saw what the log says.
    logged = sorted((p, s, st, r) for _, p, s, st, r in events(f))
    assert logged == sorted((p, s, st, r) for p, s, st, _, r in expected), f.error_log()
    # Per server, in the order of the changes.
    for srv in (b.address, c.address):
        assert [ln[2] for ln in lines if ln[1] == srv] == ["down", "up"], lines


def children_of(pid):
    """{child pid: state letter} of process PID."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == pid:
            out[int(d)] = rest[0]
    return out


def test_on_change_hook_that_fails_or_hangs_delays_nothing(fulcrum, backend, connect, port,
                                                           tmp_path):
    """Pool p's hook hangs (sleep 30), pool q's fails (exit 3): servers of
    both go down and up three times, each change within the usual bounds,
    requests are answered at once meanwhile, and the failed hooks are
    reaped (no zombies)."""
    pids = tmp_path / "hook.pids"
    hang = write_hook(tmp_path, "hang.sh",
                      f"#!/bin/sh\necho $$ >> {shlex.quote(str(pids))}\nexec sleep 30\n")
    fail = write_hook(tmp_path, "fail.sh", "#!/bin/sh\necho failing >&2\nexit 3\n")
    h = hc("http", fall=2, rise=1)
    pa, pb = http_switch(backend, "PA"), http_switch(backend, "PB")
    qa, qb = http_switch(backend, "QA"), http_switch(backend, "QB")
    qport = free_port()
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "p"},
         {"name": "web2", "bind": fmt_addr("127.0.0.1", qport), "protocol": "http", "pool": "q"}],
        [{"name": "p", "protocol": "http", "health_check": h,
          "on_change": {"exec": shlex.quote(str(hang))},
          "servers": [{"address": pa.address}, {"address": pb.address}]},
         {"name": "q", "protocol": "http", "health_check": h,
          "on_change": {"exec": shlex.quote(str(fail)) + " 2>/dev/null"},
          "servers": [{"address": qa.address}, {"address": qb.address}]}], workers=1)
    f = fulcrum(cfg)
    try:
        pb.switch.wait_checks(2)
        qb.switch.wait_checks(2)
        for k in range(3):
            t0 = time.monotonic()
            pb.switch.failing = qb.switch.failing = True
            took_p, _ = wait_change(f, pb.address, "down", 2 * k, t0, down_bound(h) + 30)
            took_q, _ = wait_change(f, qb.address, "down", 2 * k, t0, down_bound(h) + 30)
            assert max(took_p, took_q) <= down_bound(h), (k, took_p, took_q)
            for port_, name in ((port, "PA"), (qport, "QA")):
                r, took = http_get(port_, "/x")
                assert r.status == 200 and r.body == f"{name}\n".encode(), r
                assert took < 0.5, f"a request took {took:.3f}s while hooks run"
            t1 = time.monotonic()
            pb.switch.failing = qb.switch.failing = False
            took_p, _ = wait_change(f, pb.address, "up", 2 * k + 1, t1, up_bound(h) + 30)
            took_q, _ = wait_change(f, qb.address, "up", 2 * k + 1, t1, up_bound(h) + 30)
            assert max(took_p, took_q) <= up_bound(h), (k, took_p, took_q)
        assert wait_until(lambda: len(pids.read_text().split()) >= 6 if pids.exists() else 0,
                          3), "the hanging hook did not run for every change"

        def zombies():
            return [p for p, st in children_of(f.pid).items() if st == "Z"]
        assert wait_until(lambda: not zombies(), 2.0), \
            f"fulcrum leaves its finished hooks as zombies: {zombies()}"
        assert set(get_names(connect, port, 4)) == {"PA", "PB"}
    finally:
        if pids.exists():
            for p in pids.read_text().split():
                try:
                    with open(f"/proc/{p}/cmdline", "rb") as fh:
                        if b"sleep" not in fh.read():
                            continue
                    os.kill(int(p), signal.SIGKILL)
                except (OSError, ValueError):
                    pass

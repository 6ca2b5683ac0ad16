"""Chaos: what an operator notices after a bounded burst of hostile and messy
traffic.

One fulcrum (workers: 2) serves at once

- ``web``    http  -> pool ``app`` (HttpBackends A and B, keep-alive), and
  ``/ws...`` -> pool ``ws`` (a websockets echo server);
- ``secure`` https -> the same pools; its certificate files are swapped
  (RSA, then ECDSA, ...) and reloaded with SIGHUP during the run;
- ``raw``    tcp   -> pool ``echo`` (an echo server that can also close or
  reset after a given number of bytes).

For CHAOS_SECONDS, THREADS client threads (each bounded in time and in
iterations) mix: keep-alive GETs, POSTs with Content-Length and chunked
bodies, downloads (whole and abandoned), requests abandoned mid-head and
mid-body (FIN or RST), malformed requests (bare LF, bad Content-Length, TE+CL,
huge head, ...) that must get their 4xx and a close, pipelined requests,
garbage and plain HTTP on the https port, TLS handshakes aborted half way,
tcp echo transfers closed early by either side, and WebSocket upgrades
followed by an abrupt close. Meanwhile a controller thread kills backend A
and restarts it (twice) and sends SIGHUP four times.

Tolerated, only while A is down (and GRACE after it came back): a 502/503,
and an answer cut short after its head whose bytes so far are right (A was
killed while sending it). Errors: any other valid request without a complete
answer, a wrong body, any other status, a malformed request answered with
anything but its 4xx (or left open), a tcp echo with wrong or missing bytes,
a WebSocket upgrade that is not a working tunnel, a SIGHUP not followed by
its reload line.

Afterwards: fulcrum is alive; its descriptors other than pipes come back to
the count measured after start-up (+FD_MARGIN); its pipes stay within what
its documented per-worker pipe cache can hold for the connections this test
had open at once, and do not grow over a further round of aborted bulk
transfers; a GET on http and https and a tcp echo work (https with the last
certificate installed); SIGTERM ends it with 0 and the error log holds no
AddressSanitizer, LeakSanitizer or UBSan report.

CHAOS_SEED=N in the environment repeats a run's choices (not its timing).
"""

import base64
import hashlib
import logging
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import threading
import time
import traceback
from collections import Counter, defaultdict

import pytest

from conftest import (Backend, fmt_addr, free_port, listener, make_config, pool,
                      recv_exact, wait_until)
from http_helpers import Client, HttpBackend, Resp, build, chunked
from test_http_parsing import BAD_CHUNKED, MALFORMED, post
from test_http_websocket import WsEchoServer
from tls_helpers import BioClient, client_ctx, listener_tls, tls_connect

CHAOS_SECONDS = 12.0     # length of the burst
THREADS = 6              # client threads
MAX_ITERATIONS = 2500    # actions per client thread, at most (time ends them first)
WORKERS = 2
OP_TIMEOUT = 8.0         # a valid request must be answered within this
SHORT = 1.0              # reads where silence is allowed (garbage)
FD_MARGIN = 4            # descriptors (other than pipes) above the baseline
FD_SETTLE = 10.0         # time for them to come back
GRACE = 1.5              # 502/503 still tolerated this long after a restart
PIPE_POOL_MAX = 64       # idle pipes a worker keeps (src/buf.h, docs/operations.md)
# Connections one client thread holds open at once: a keep-alive connection
# per front (http, https) plus the one an action opens.
CONNS_PER_THREAD = 3
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

MiB = 1024 * 1024
BIG = random.Random(20240607).randbytes(1 * MiB)     # download bodies: BIG[:n]
BIG_RX = re.compile(r"^/big/(\d+)/")

# Malformed requests of test_http_parsing's table that fulcrum refuses with
# a 4xx (id -> (raw, status)), and chunked bodies that turn bad after a
# valid head (400).
_MALFORMED_IDS = ("bare-LF-request-line", "bare-LF-field", "bare-LF-end-of-head",
                  "bare-LF-only-lines", "bare-CR-field-value", "obs-fold", "missing-host-1.1",
                  "two-hosts", "CL-plus", "CL-list-different", "CL-two-different",
                  "CL-overflow-64bit", "CL-and-TE", "TE-and-CL", "TE-chunked-twice-lines",
                  "TE-chunked-not-last", "request-line-over-8KiB", "head-over-32KiB",
                  "101-fields", "NUL-in-value")
_TABLE = {c[0]: (c[1], c[2]) for c in MALFORMED}
BAD = [(i, *_TABLE[i]) for i in _MALFORMED_IDS]
BAD += [(f"body-{i}", post(b"Transfer-Encoding: chunked\r\n", body), 400)
        for i, body in BAD_CHUNKED[:6]]
assert all(400 <= st < 500 for _, _, st in BAD)


class Unexpected(Exception):
    """Something the chaos must never cause."""


# --------------------------------------------------------------------------
# small helpers

def abort(sock, rst):
    """Close abruptly: with SO_LINGER 0 (RST) or a plain close (FIN)."""
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def read_some(sock, limit, timeout):
    """Up to limit bytes until EOF/reset or timeout: (data, ended)."""
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while len(data) < limit:
            d = sock.recv(65536)
            if not d:
                return bytes(data), True
            data += d
    except (ConnectionResetError, ssl.SSLError):
        return bytes(data), True
    except socket.timeout:
        pass
    return bytes(data), False


def read_head(sock, limit=65536):
    """An HTTP response head (bytes up to the blank line) and what follows."""
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            raise EOFError(f"closed before a response head: {bytes(buf[:200])!r}")
        buf += d
        if len(buf) > limit:
            raise Unexpected(f"response head never ended: {bytes(buf[:200])!r}")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    return head, rest


def status_of(data):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def pump(sock, out, until, limit=OP_TIMEOUT, shut_wr=False):
    """Send OUT while receiving, until UNTIL bytes came back, or EOF, or a
    reset: (received, how) with how in 'count', 'eof', 'reset'. shut_wr:
    half-close once everything is sent. Bounded by limit seconds."""
    sock.setblocking(False)
    deadline = time.monotonic() + limit
    sent, got, shut = 0, bytearray(), False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unexpected(f"tcp: stalled after sending {sent} of {len(out)} and receiving "
                             f"{len(got)} bytes")
        wl = [sock] if sent < len(out) else []
        r, w, _ = select.select([sock], wl, [], min(left, 0.5))
        if w:
            try:
                sent += sock.send(out[sent:sent + 65536])
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                sent = len(out)            # the peer is gone: read what is left
        if shut_wr and sent >= len(out) and not shut:
            shut = True
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if r:
            try:
                d = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                return bytes(got), "reset"
            if not d:
                return bytes(got), "eof"
            got += d
            if len(got) >= until:
                return bytes(got), "count"


def ws_frame(payload, opcode=0x1):
    """A masked client frame (payload < 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def fd_census(pid):
    """(Counter of pipe/socket/other descriptors, [(fd, link)])."""
    kinds, links = Counter(), []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return kinds, links
    for name in names:
        try:
            t = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kinds["pipe" if t.startswith("pipe:") else
              "socket" if t.startswith("socket:") else "other"] += 1
        links.append((int(name), t))
    return kinds, sorted(links)


def non_pipe(pid):
    k, _ = fd_census(pid)
    return k["socket"] + k["other"]


_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
               "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
               "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def _hex_addr(h):
    ip, port = h.split(":")
    raw = bytes.fromhex(ip)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return fmt_addr(socket.inet_ntop(fam, raw), int(port, 16))


def describe_fds(pid):
    """Every descriptor of pid, TCP sockets with their state and ends."""
    tcp = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for ln in f.read().splitlines()[1:]:
                    x = ln.split()
                    tcp[x[9]] = (f"{_TCP_STATES.get(x[3], x[3])} {_hex_addr(x[1])} -> "
                                 f"{_hex_addr(x[2])}")
        except OSError:
            pass
    out = []
    for fd, link in fd_census(pid)[1]:
        m = re.match(r"socket:\[(\d+)\]", link)
        out.append(f"  {fd}: {link}" + (f" tcp {tcp[m.group(1)]}" if m and m.group(1) in tcp
                                        else ""))
    return "\n".join(out)


def install(cert, d):
    """Make cert the live certificate (both files replaced atomically)."""
    for src, dst in ((cert.crt, d / "live.crt"), (cert.key, d / "live.key")):
        tmp = dst.with_suffix(".tmp")
        shutil.copy(src, tmp)
        os.replace(tmp, dst)


def answer(name):
    """The app backends' answers: BIG[:n] for /big/n/..., else a line that
    names the backend, the request and a digest of the body it received."""
    def respond(req):
        m = BIG_RX.match(req.target)
        if m:
            return Resp(200, BIG[:int(m.group(1))], headers=[("X-Backend", name)])
        return Resp(200, f"{name} {req.method} {req.target} {req.body_len} "
                         f"{req.body_sha[:16]}\n".encode(), headers=[("X-Backend", name)])
    return respond


def tcp_echo(backend, conn):
    """tcp pool handler. The first 8 bytes are a command: ECHO0000 (echo
    until EOF), CLOSnnnn / RSETnnnn (echo nnnn KiB, then close / reset).
    Nothing is recorded (the transfers are large)."""
    s = conn.sock
    hdr = recv_exact(s, 8)
    cmd, n = hdr[:4], int(hdr[4:])
    limit = n * 1024 if cmd in (b"CLOS", b"RSET") else None
    sent = 0
    for _ in range(1 << 20):
        want = 65536 if limit is None else min(65536, limit - sent)
        d = s.recv(want)
        if not d:
            return
        s.sendall(d)
        sent += len(d)
        if limit is not None and sent >= limit:
            if cmd == b"RSET":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return


@pytest.fixture
def backend_on_port():
    """conftest's Backend on a given port with SO_REUSEADDR, so that a
    killed backend can come back on its port at once."""
    made = []

    def make(name, host, handler, port):
        b = Backend(name, host, handler, port=port, reuse=True)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


# --------------------------------------------------------------------------
# the chaos

class Conn(Client):
    """http_helpers.Client that counts the response heads it has read, so
    that an answer cut short (head, then part of the body) can be told from
    no answer at all."""

    def __init__(self, sock):
        super().__init__(sock)
        self.heads = 0

    def _head(self):
        head = super()._head()
        self.heads += 1
        return head


class ThreadState:
    def __init__(self):
        self.clients = {}       # front -> Client (keep-alive)

    def drop(self, front):
        c = self.clients.pop(front, None)
        if c:
            abort(c.sock, False)

    def reset(self):
        for front in list(self.clients):
            self.drop(front)


class Chaos:
    ACTIONS = {  # name: weight
        "keepalive_get": 5, "upload": 2, "chunked_post": 2, "download": 1,
        "download_abort": 1, "abandon_head": 2, "abandon_body": 2, "malformed": 3,
        "pipelined": 2, "https_garbage": 1, "https_plain_http": 1, "tls_abort": 2,
        "tcp_echo": 2, "tcp_client_abort": 1, "tcp_server_close": 1, "tcp_server_reset": 1,
        "ws_abort": 1,
    }

    def __init__(self, f, ports, ctx, seed, restart_a, certs, cert_dir):
        self.f = f
        self.ports = ports            # {"web": p, "secure": p, "raw": p}
        self.ctx = ctx
        self.seed = seed
        self.restart_a = restart_a    # (stop, start) of backend A
        self.certs = certs            # certificates installed in turn on SIGHUP
        self.cert_dir = cert_dir
        self.installed = None         # the certificate installed last
        self.lock = threading.Lock()
        self.tally = defaultdict(Counter)
        self.errors = []
        self.down = []                # [start, end] of each time A was down (+GRACE)
        self.stop = threading.Event()
        self.t0 = self.t_end = None

    # -- bookkeeping

    def error(self, who, what, msg):
        with self.lock:
            self.errors.append(f"[t={time.monotonic() - self.t0:6.2f}s {who} {what}] {msg}")

    def count(self, action, outcome):
        with self.lock:
            self.tally[action][outcome] += 1

    def a_was_down(self, t0, t1):
        with self.lock:
            return any(s <= t1 and t0 <= (e if e is not None else float("inf"))
                       for s, e in self.down)

    # -- connections

    def open(self, front, timeout=OP_TIMEOUT):
        if front == "secure":
            return tls_connect(self.ports["secure"], self.ctx, timeout=timeout)
        return socket.create_connection(("127.0.0.1", self.ports[front]), timeout=timeout)

    def keepalive(self, st, front):
        c = st.clients.get(front)
        if c is None:
            c = st.clients[front] = Conn(self.open(front))
        return c

    # -- valid requests

    @staticmethod
    def right_start(method, target, got):
        m = BIG_RX.match(target)
        if m:
            return got == BIG[:len(got)]
        return any(f"{n} {method} {target} ".encode().startswith(got[:len(n) + len(method)
                                                                      + len(target) + 3])
                   for n in "AB")

    def judge(self, r, method, target, body, t0, t1):
        """'ok' or 'tolerated' for a response to a valid request (None: one
        cut short while A was down); raises Unexpected otherwise."""
        if r is None:
            return "tolerated"
        if r.status == 200:
            m = BIG_RX.match(target)
            if m:
                n = int(m.group(1))
                if r.body != BIG[:n]:
                    raise Unexpected(f"{method} {target}: wrong body ({len(r.body)} bytes, "
                                     f"expected {n})")
                return "ok"
            data = body or b""
            tail = f" {method} {target} {len(data)} {hashlib.sha256(data).hexdigest()[:16]}\n"
            name = r.headers.get("x-backend")
            if name not in ("A", "B") or r.body != (name + tail).encode():
                raise Unexpected(f"{method} {target}: wrong answer {r!r}, expected "
                                 f"'<A|B>{tail!r}'")
            return "ok"
        if r.status in (502, 503) and self.a_was_down(t0, t1):
            return "tolerated"
        raise Unexpected(f"{method} {target}: status {r.status} "
                         f"(backend A down meanwhile: {self.a_was_down(t0, t1)}): {r!r}")

    @staticmethod
    def request_bytes(method, target, body=None, chunk=None):
        if chunk:
            return build(method, target, headers=[("Transfer-Encoding", "chunked")]) \
                + chunked(body, chunk)
        return build(method, target, body=body)

    def exchange(self, c, front, method, target, body=None, chunk=None):
        """Send one valid request on Client c and judge its answer: the
        outcome and whether the connection can go on."""
        t0 = time.monotonic()
        r = self.answer_to(c, front, method, target, self.request_bytes(method, target, body,
                                                                        chunk), t0)
        return self.judge(r, method, target, body, t0, time.monotonic()), \
            r is not None and not r.closes

    def answer_to(self, c, front, method, target, raw, t0):
        """Send raw and read the answer. A send that fails is not the end:
        fulcrum answers 502 early, and closes, when the server dies while
        the body is still on its way, and that answer must be readable."""
        sent = None
        try:
            if raw:
                c.send(raw)
        except OSError as e:
            sent = e
        heads, body = c.heads, bytearray()
        try:
            r = c.response(method, sink=body.extend)
            r.body = bytes(body)
            return r
        except (OSError, EOFError) as e:
            # A server killed while its answer is on the way: all a proxy can
            # do is cut the answer short. Tolerated while A was down, when a
            # head came and the body so far is the start of a right answer.
            if c.heads > heads and self.a_was_down(t0, time.monotonic()) \
                    and self.right_start(method, target.split(" ")[0], bytes(body)):
                return None
            raise Unexpected(f"{front} {method} {target}: no complete answer after "
                             f"{time.monotonic() - t0:.2f}s: {e!r}"
                             + (f" (the send had failed: {sent!r})" if sent else "")) from None

    def on_keepalive(self, st, front, method, target, body=None, chunk=None):
        c = self.keepalive(st, front)
        outcome, go_on = self.exchange(c, front, method, target, body, chunk)
        if not go_on:
            st.drop(front)
        return outcome

    # -- actions: each returns an outcome label or raises Unexpected

    def keepalive_get(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        out = "ok"
        for j in range(rng.randint(1, 3)):
            o = self.on_keepalive(st, front, "GET", f"/k/{tag}/{j}?x={rng.randrange(10**6)}")
            out = o if o != "ok" else out
        return out

    def upload(self, rng, st, tag):
        """A POST with a Content-Length body (large ones go by splice on http)."""
        front = rng.choice(("web", "secure"))
        n = rng.choice((0, rng.randint(1, 5000), rng.randint(64 * 1024, 400 * 1024)))
        off = rng.randrange(len(BIG) - n + 1)
        return self.on_keepalive(st, front, "POST", f"/u/{tag}", BIG[off:off + n])

    def chunked_post(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        body = rng.randbytes(rng.choice((0, rng.randint(1, 300), rng.randint(1000, 60000))))
        return self.on_keepalive(st, front, "POST", f"/c/{tag}", body,
                                 chunk=rng.choice((1, 7, 1000, 16384)))

    def download(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        return self.on_keepalive(st, front, "GET", f"/big/{rng.randint(1, 512 * 1024)}/{tag}")

    def download_abort(self, rng, st, tag):
        """A 1 MiB download abandoned after a part of it."""
        front = rng.choice(("web", "secure"))
        s = self.open(front)
        try:
            s.sendall(build("GET", f"/big/{len(BIG)}/{tag}"))
            read_some(s, rng.randint(1, 256 * 1024), OP_TIMEOUT)
        finally:
            abort(s, rng.random() < 0.5)
        return "ok"

    def abandon_head(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        raw = build("GET", f"/h/{tag}", headers=[("X-Pad", "p" * rng.randint(0, 3000))])
        s = self.open(front)
        try:
            s.sendall(raw[:rng.randint(1, len(raw) - 3)])
        finally:
            abort(s, rng.random() < 0.5)
        return "ok"

    def abandon_body(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        s = self.open(front)
        try:
            if rng.random() < 0.5:
                n = rng.randint(2, 300 * 1024)
                raw = build("POST", f"/b/{tag}", headers=[("Content-Length", str(n))]) \
                    + BIG[:rng.randint(0, n - 1)]
            else:
                body = chunked(rng.randbytes(rng.randint(1, 20000)), rng.choice((5, 999)))
                raw = build("POST", f"/b/{tag}", headers=[("Transfer-Encoding", "chunked")]) \
                    + body[:rng.randint(0, len(body) - 1)]
            t0 = time.monotonic()
            try:
                s.sendall(raw)
            except OSError as e:
                # Only a server that died (A) makes fulcrum answer early and close.
                if not self.a_was_down(t0, time.monotonic()):
                    raise Unexpected(f"{front} POST /b/{tag}: connection closed while the body "
                                     f"was being sent: {e!r}") from None
                return "tolerated"
            if rng.random() < 0.3:
                read_some(s, 1, 0.05)   # let it reach the server first, sometimes
        finally:
            abort(s, rng.random() < 0.5)
        return "ok"

    def malformed(self, rng, st, tag):
        """A request fulcrum must refuse with its 4xx and a close; sometimes
        after a valid request on the same connection."""
        front = rng.choice(("web", "secure"))
        name, raw, status = rng.choice(BAD)
        c = Conn(self.open(front))
        try:
            out = "ok"
            if rng.random() < 0.3:
                out, _ = self.exchange(c, front, "GET", f"/before-bad/{tag}")
            try:
                c.send(raw)
            except OSError:
                pass            # refused before all of it was sent: the answer tells
            try:
                r = c.response()
            except (OSError, EOFError) as e:
                raise Unexpected(f"{front} malformed {name}: no answer: {e!r}") from None
            if 200 <= r.status < 300 or r.status != status:
                raise Unexpected(f"{front} malformed {name}: answered {r.status}, expected "
                                 f"{status}: {r!r}")
            if not r.closes:
                raise Unexpected(f"{front} malformed {name}: no Connection: close: {r!r}")
            if c.buf:
                raise Unexpected(f"{front} malformed {name}: bytes after the refusal: "
                                 f"{bytes(c.buf[:200])!r}")
            rest, ended = read_some(c.sock, 4096, OP_TIMEOUT)
            if rest or not ended:
                raise Unexpected(f"{front} malformed {name}: connection not closed after the "
                                 f"{status} (extra bytes {rest[:200]!r})")
            return out
        finally:
            abort(c.sock, rng.random() < 0.5)

    def pipelined(self, rng, st, tag):
        """2-6 requests in one write, answered in order."""
        front = rng.choice(("web", "secure"))
        reqs = []
        for j in range(rng.randint(2, 6)):
            kind = rng.choice(("get", "get", "post", "chunked"))
            target = f"/p/{tag}/{j}"
            if kind == "get":
                reqs.append(("GET", target, None, None))
            else:
                reqs.append(("POST", target, rng.randbytes(rng.randint(0, 3000)),
                             rng.choice((3, 100)) if kind == "chunked" else None))
        c = Conn(self.open(front))
        try:
            raw = b"".join(self.request_bytes(*r) for r in reqs)
            out = "ok"
            for k, (method, target, body, _) in enumerate(reqs):
                t0 = time.monotonic()
                # All requests go in the first write; then answers are read.
                r = self.answer_to(c, front, method, f"{target} (pipelined {k + 1}/{len(reqs)})",
                                   raw if k == 0 else b"", t0)
                o = self.judge(r, method, target, body, t0, time.monotonic())
                out = o if o != "ok" else out
                if r is None or r.closes:
                    if o == "ok":
                        raise Unexpected(f"{front} pipelined {target}: 200 with "
                                         f"Connection: close: {r!r}")
                    break       # a tolerated 5xx may end the connection
            return out
        finally:
            abort(c.sock, rng.random() < 0.3)

    def https_garbage(self, rng, st, tag):
        s = socket.create_connection(("127.0.0.1", self.ports["secure"]), timeout=OP_TIMEOUT)
        try:
            junk = rng.randbytes(rng.randint(1, 2000))
            if rng.random() < 0.3:
                junk = b"\x16\x03\x01" + junk          # looks like a TLS record
            try:
                s.sendall(junk)
            except OSError:
                return "ok"
            data, _ = read_some(s, 4096, SHORT)
            st_ = status_of(data)
            if st_ is not None and st_ < 400:
                raise Unexpected(f"https garbage {junk[:20]!r}: answered {data[:200]!r}")
            return "ok"
        finally:
            abort(s, rng.random() < 0.5)

    def https_plain_http(self, rng, st, tag):
        s = socket.create_connection(("127.0.0.1", self.ports["secure"]), timeout=OP_TIMEOUT)
        try:
            s.sendall(build("GET", f"/plain/{tag}"))
            data, ended = read_some(s, 4096, OP_TIMEOUT)
            if data and not data.startswith(b"HTTP/1.1 400 "):
                raise Unexpected(f"plain HTTP on the https port: answered {data[:200]!r}")
            if not ended:
                raise Unexpected("plain HTTP on the https port: connection left open")
            return "answered" if data else "closed"
        finally:
            abort(s, rng.random() < 0.5)

    def tls_abort(self, rng, st, tag):
        v = rng.randrange(4)
        if v == 3:      # a complete handshake, then a reset without a request
            s = tls_connect(self.ports["secure"], self.ctx, timeout=OP_TIMEOUT)
            abort(s, True)
            return "ok"
        raw = socket.create_connection(("127.0.0.1", self.ports["secure"]), timeout=OP_TIMEOUT)
        try:
            bio = BioClient(raw, self.ctx, "a.example.com")
            if v == 0:  # half a ClientHello
                raw.sendall(bio.hello[:rng.randint(1, len(bio.hello) - 1)])
                return "ok"
            bio.send_hello()
            first, ended = read_some(raw, 1, OP_TIMEOUT)
            if not first.startswith(b"\x16"):
                raise Unexpected(f"tls: no ServerHello for a valid ClientHello: {first!r} "
                                 f"(closed: {ended})")
            if v == 2:  # a bogus record in place of the client's second flight
                try:
                    raw.sendall(b"\x16\x03\x03\x00\x05" + rng.randbytes(5)
                                + rng.randbytes(rng.randint(0, 50)))
                except OSError:
                    return "ok"
                _, ended = read_some(raw, 1 << 20, OP_TIMEOUT)
                if not ended:
                    raise Unexpected("tls: a failed handshake was left open")
            return "ok"
        finally:
            abort(raw, rng.random() < 0.5)

    def _tcp(self, send, until, judge, rst, shut_wr=False):
        """One tcp exchange: send, read until `until` bytes or the end, then
        judge(got, how) names what is wrong (or None); the socket is then
        closed, with a reset when `rst`."""
        s = socket.create_connection(("127.0.0.1", self.ports["raw"]), timeout=OP_TIMEOUT)
        try:
            got, how = pump(s, send, until, shut_wr=shut_wr)
            problem = judge(got, how)
            if problem:
                raise Unexpected(problem)
            return "ok"
        finally:
            abort(s, rst)

    @staticmethod
    def _same(got, want):
        return "same" if got == want else "DIFFERENT"

    def tcp_echo(self, rng, st, tag):
        n = rng.choice((rng.randint(1, 2000), rng.randint(2000, 256 * 1024)))
        off = rng.randrange(len(BIG) - n + 1)
        data = BIG[off:off + n]
        half = rng.random() < 0.5
        return self._tcp(
            b"ECHO0000" + data, n + 1 if half else n,
            lambda got, how: None if got == data and how == ("eof" if half else "count") else
            f"tcp echo of {n} bytes (half-close {half}): got {len(got)} bytes "
            f"({self._same(got, data)}), end {how}",
            rst=not half and rng.random() < 0.5, shut_wr=half)

    def tcp_client_abort(self, rng, st, tag):
        return self._tcp(
            b"ECHO0000" + BIG, rng.randint(1, 512 * 1024),
            lambda got, how: None if got == BIG[:len(got)] and how == "count" else
            f"tcp: {len(got)} bytes received, end {how}, prefix "
            f"{self._same(got, BIG[:len(got)])}",
            rst=rng.random() < 0.5)

    def tcp_server_close(self, rng, st, tag):
        """The server echoes exactly what was sent and closes: every byte,
        then EOF."""
        k = rng.randint(1, 256)
        data = BIG[:k * 1024]
        return self._tcp(
            b"CLOS%04d" % k + data, len(data) + 1,
            lambda got, how: None if got == data and how == "eof" else
            f"tcp: server closed after {len(data)} bytes: got {len(got)} "
            f"({self._same(got, data)}), end {how}",
            rst=rng.random() < 0.5)

    def tcp_server_reset(self, rng, st, tag):
        """The server resets after k KiB while the client sends more: what
        arrives is a prefix, then the connection ends."""
        k = rng.randint(1, 256)
        data = BIG[:2 * k * 1024]
        return self._tcp(
            b"RSET%04d" % k + data, len(data) + 1,
            lambda got, how: None if (got == data[:len(got)] and len(got) <= k * 1024
                                      and how != "count") else
            f"tcp: server reset after {k} KiB: got {len(got)} bytes, end {how}, prefix "
            f"{self._same(got, data[:len(got)])}",
            rst=rng.random() < 0.5)

    def ws_abort(self, rng, st, tag):
        front = rng.choice(("web", "secure"))
        s = self.open(front)
        try:
            key = base64.b64encode(rng.randbytes(16)).decode()
            s.sendall(build("GET", f"/ws/{tag}", headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
            try:
                head, rest = read_head(s)
            except (OSError, EOFError) as e:
                raise Unexpected(f"{front} websocket upgrade: no answer: {e!r}") from None
            if status_of(head) != 101:
                raise Unexpected(f"{front} websocket upgrade: {head[:300]!r}")
            msg = rng.randbytes(rng.randint(1, 100))
            s.sendall(ws_frame(msg, 0x2))
            try:
                echo = rest + recv_exact(s, max(0, 2 + len(msg) - len(rest)))
            except (OSError, EOFError) as e:
                raise Unexpected(f"{front} websocket: no echo: {e!r}") from None
            if echo != bytes([0x82, len(msg)]) + msg:
                raise Unexpected(f"{front} websocket: wrong echo {echo[:120]!r}")
            v = rng.randrange(3)
            if v == 1:
                s.sendall(ws_frame(b"half a frame")[:7])
            elif v == 2:
                s.sendall(ws_frame(b"\x03\xe8", 0x8))   # close frame, then gone at once
            return "ok"
        finally:
            abort(s, rng.random() < 0.6)

    # -- threads

    def client_thread(self, tid):
        rng = random.Random(self.seed * 1000 + tid)
        st = ThreadState()
        names = list(self.ACTIONS)
        weights = [self.ACTIONS[n] for n in names]
        try:
            for i in range(MAX_ITERATIONS):
                if time.monotonic() >= self.t_end:
                    break
                # First every action once (in a per-thread order), then at random.
                name = names[(i + 3 * tid) % len(names)] if i < len(names) \
                    else rng.choices(names, weights)[0]
                try:
                    outcome = getattr(self, name)(rng, st, f"{tid}-{i}")
                except Unexpected as e:
                    self.count(name, "error")
                    self.error(f"thread {tid}", name, str(e))
                    st.reset()
                except Exception as e:  # noqa: BLE001 - everything else is unexpected too
                    self.count(name, "error")
                    self.error(f"thread {tid}", name,
                               f"{e!r}\n{traceback.format_exc(limit=4)}")
                    st.reset()
                else:
                    self.count(name, outcome)
        finally:
            st.reset()

    def controller(self):
        """Kill A and bring it back twice; SIGHUP four times with another
        certificate each time."""
        plan = [(0.10, "hup"), (0.18, "kill"), (0.33, "restart"), (0.45, "hup"),
                (0.55, "kill"), (0.68, "restart"), (0.78, "hup"), (0.90, "hup")]
        hups = 0
        for frac, ev in plan:
            if self.stop.wait(max(0.0, self.t0 + frac * CHAOS_SECONDS - time.monotonic())):
                return
            try:
                if ev == "kill":
                    with self.lock:
                        self.down.append([time.monotonic(), None])
                    self.restart_a[0]()
                elif ev == "restart":
                    self.restart_a[1]()
                    with self.lock:
                        self.down[-1][1] = time.monotonic() + GRACE
                else:
                    cert = self.certs[hups % len(self.certs)]
                    hups += 1
                    install(cert, self.cert_dir)
                    before = reloads(self.f)
                    self.f.send_signal(signal.SIGHUP)
                    if not wait_until(lambda: reloads(self.f) > before, 5):
                        raise Unexpected(f"SIGHUP #{hups}: no reload logged within 5 s")
                    self.installed = cert
            except Exception as e:  # noqa: BLE001
                self.error("controller", ev, f"{e!r}")


def reloads(f):
    return f.error_log().count("SIGHUP: TLS certificates of 1 listener reloaded")


# --------------------------------------------------------------------------
# the test

def test_chaos_leaves_fulcrum_alive_correct_and_without_leaks(fulcrum, backend, backend_on_port,
                                                              p, tmp_path):
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
    # The websockets server logs every abrupt close, which is what ws_abort does.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    ws = WsEchoServer()
    try:
        run_chaos(fulcrum, backend, backend_on_port, p, tmp_path, seed, ws)
    finally:
        ws.stop()


def run_chaos(fulcrum, backend, backend_on_port, p, tmp_path, seed, ws):
    # Backends: A (killed and restarted on its port), B, the tcp echo server.
    a_port = free_port()
    a_box = {}

    def start_a():
        def make():
            try:
                return HttpBackend(lambda n, host, handler: backend_on_port(n, host, handler,
                                                                            a_port),
                                   "A", respond=answer("A"))
            except OSError:
                return None
        a_box["a"] = wait_until(make, 5, interval=0.05)
        assert a_box["a"], f"backend A could not listen on port {a_port} again"

    start_a()
    b = HttpBackend(backend, "B", respond=answer("B"))
    echo = backend("ECHO", handler=tcp_echo)

    install(p.a, tmp_path)
    ports = {"web": free_port(), "secure": free_port(), "raw": free_port()}
    ws_route = {"name": "ws", "match": {"path_prefix": "/ws"}, "pool": "ws"}
    live = {"cert": str(tmp_path / "live.crt"), "key": str(tmp_path / "live.key"),
            "chain": p.inter.crt}
    cfg = make_config(
        [{"name": "web", "bind": fmt_addr("127.0.0.1", ports["web"]), "protocol": "http",
          "pool": "app", "routes": [ws_route]},
         {"name": "secure", "bind": fmt_addr("127.0.0.1", ports["secure"]), "protocol": "https",
          "pool": "app", "routes": [ws_route], "tls": listener_tls([live])},
         listener("raw", fmt_addr("127.0.0.1", ports["raw"]), "echo")],
        [{"name": "app", "protocol": "http", "algorithm": "round_robin",
          # Keep-alive to the servers; idle ones close within a second, so
          # that they are gone when descriptors are counted afterwards.
          "keepalive": {"max_idle": 16, "idle_timeout": "1s"},
          "servers": [{"address": a_box["a"].address}, {"address": b.address}]},
         {"name": "ws", "protocol": "http", "servers": [{"address": ws.address}]},
         pool("echo", [echo.address])],
        workers=WORKERS)
    f = fulcrum(cfg)
    pid = f.pid

    base, _ = fd_census(pid)
    base_non_pipe = base["socket"] + base["other"]
    base_fds = describe_fds(pid)

    ctx = client_ctx(p)
    chaos = Chaos(f, ports, ctx, seed, (lambda: a_box["a"].stop(), start_a),
                  [p.a2, p.a, p.a_ec, p.a2], tmp_path)
    chaos.installed = p.a
    chaos.t0 = time.monotonic()
    chaos.t_end = chaos.t0 + CHAOS_SECONDS
    threads = [threading.Thread(target=chaos.client_thread, args=(i,), daemon=True,
                                name=f"chaos-{i}") for i in range(THREADS)]
    ctl = threading.Thread(target=chaos.controller, daemon=True, name="chaos-controller")
    for t in threads + [ctl]:
        t.start()
    for t in threads:
        t.join(max(0.1, chaos.t_end + 4 * OP_TIMEOUT - time.monotonic()))
    ctl.join(max(0.1, chaos.t_end + 10 - time.monotonic()))   # its plan ends before t_end
    chaos.stop.set()
    ctl.join(5)
    stuck = [t.name for t in threads + [ctl] if t.is_alive()]
    elapsed = time.monotonic() - chaos.t0
    summary = (f"seed {seed}, {elapsed:.1f}s, tally: "
               + ", ".join(f"{k}={dict(v)}" for k, v in sorted(chaos.tally.items())))
    print(summary)

    # 1. Alive, and nothing unexpected happened on the way.
    assert f.running(), (f"fulcrum died during the chaos (exit {f.proc.returncode})\n{summary}\n"
                         f"error log (end):\n{f.error_log()[-6000:]}")
    assert not stuck, f"threads still running after their deadline: {stuck}\n{summary}"
    assert not chaos.errors, (f"{len(chaos.errors)} unexpected outcome(s) ({summary}):\n"
                              + "\n".join(chaos.errors[:25]))
    # The chaos really happened: every action ran, and the bulk of them worked.
    missing = [n for n in Chaos.ACTIONS if not sum(chaos.tally[n].values())]
    assert not missing, f"actions never run: {missing}\n{summary}"
    assert chaos.tally["keepalive_get"]["ok"] >= 10, summary
    assert chaos.tally["malformed"]["ok"] >= 3, summary
    assert len(chaos.down) == 2 and reloads(f) == 4, \
        f"kills {chaos.down}, reloads {reloads(f)}\n{summary}"

    # 2. Descriptors: everything but the pipe cache is back to the baseline.
    settled = wait_until(lambda: non_pipe(pid) <= base_non_pipe + FD_MARGIN, FD_SETTLE)
    now, _ = fd_census(pid)
    assert settled, (f"descriptors other than pipes: {base_non_pipe} after start-up, "
                     f"{now['socket'] + now['other']} {FD_SETTLE}s after the chaos "
                     f"(margin {FD_MARGIN})\nnow:\n{describe_fds(pid)}\nafter start-up:\n"
                     f"{base_fds}\n{summary}")
    # Pipes: each worker keeps up to PIPE_POOL_MAX idle ones; a connection
    # holds at most two, so at most 2 per connection this test had open at
    # once can be cached.
    pipe_cap = base["pipe"] + 2 * min(2 * THREADS * CONNS_PER_THREAD, PIPE_POOL_MAX * WORKERS)
    assert now["pipe"] <= pipe_cap, (f"{now['pipe']} pipe descriptors after the chaos, "
                                     f"at most {pipe_cap} expected\n{describe_fds(pid)}")

    # 3. The pipe cache does not grow over more aborted bulk transfers made
    # one after another (a leak would add 2 descriptors per transfer).
    pipes_before = now["pipe"]
    rng = random.Random(seed)
    st = ThreadState()
    for i in range(8):
        for action in ("tcp_client_abort", "tcp_server_reset", "download_abort", "tcp_echo"):
            try:
                getattr(chaos, action)(rng, st, f"after-{i}")
            except Unexpected as e:
                chaos.error("after", action, str(e))
    st.reset()
    assert not chaos.errors, "\n".join(chaos.errors[:25])
    assert wait_until(lambda: non_pipe(pid) <= base_non_pipe + FD_MARGIN, FD_SETTLE), \
        f"descriptors not back after the sequential aborts:\n{describe_fds(pid)}"
    after, _ = fd_census(pid)
    print(f"descriptors: after start-up {dict(base)}, after the chaos {dict(now)}, "
          f"after the sequential aborts {dict(after)}")
    # Sequential transfers: at most two connections overlap on a worker
    # while one is torn down, two pipes each.
    assert after["pipe"] <= pipes_before + 2 * 4 * WORKERS, (
        f"pipes grew from {pipes_before} to {after['pipe']} over 32 sequential transfers\n"
        f"{describe_fds(pid)}")

    # 4. Still answers correctly on every listener.
    for front in ("web", "secure"):
        c = Conn(chaos.open(front))
        try:
            outcome, _ = chaos.exchange(c, front, "GET", f"/final/{front}")
            assert outcome == "ok", outcome
            outcome, _ = chaos.exchange(c, front, "POST", f"/final/{front}/post", b"x" * 1000,
                                        chunk=100)
            assert outcome == "ok", outcome
            if front == "secure":
                der = c.sock.getpeercert(binary_form=True)
                assert hashlib.sha256(der).hexdigest() == chaos.installed.sha256, \
                    f"https serves another certificate than the last one installed " \
                    f"({chaos.installed})"
        finally:
            c.sock.close()
    msg = b"still echoing\n"
    chaos._tcp(b"ECHO0000" + msg, len(msg),
               lambda got, how: None if (got, how) == (msg, "count") else
               f"tcp echo after the chaos: {got!r}, end {how}", rst=False)

    # 5. A clean stop, and no sanitizer report.
    rc = f.stop(15)
    log = f.error_log()
    try:
        log += f.stderr_path.read_text(errors="replace") if f.stderr_path != f.error_path else ""
    except FileNotFoundError:
        pass
    reports = [m for m in SANITIZER_MARKERS if m in log]
    assert not reports, f"sanitizer report ({reports}) in fulcrum's error log:\n{log[-20000:]}"
    assert rc == 0, f"fulcrum exited with {rc} after SIGTERM\n{log[-6000:]}"

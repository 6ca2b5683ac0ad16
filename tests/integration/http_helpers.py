"""Shared code of the HTTP integration tests (test_http_*.py).

- ``HttpBackend``: a strict, threaded, raw-socket HTTP/1.1 server built on
  conftest's ``Backend`` (so the ``backend`` fixture stops it). It records
  every request it receives (method, target, version, the header fields as a
  list, the body, how it was framed, the connection it came on) and answers
  with a configurable ``Resp`` (status, headers, body with Content-Length,
  chunked or close-delimited, interim 1xx responses, a delay, or no answer at
  all). Bytes it cannot parse as a request are recorded as ``garbage``.
- ``Client``: a raw-socket client with a receive buffer that reads responses
  exactly as framed (Content-Length, chunked, until close, HEAD/204/304,
  interim 1xx), so tests see precisely what fulcrum sent.
- ``http_config``: an http listener in front of http pools.
- ``access_records``: the access log parsed (text or JSON).

Every socket has a timeout and every loop is bounded.
"""

import hashlib
import json
import re
import socket
import threading
import time

from conftest import SOCK_TIMEOUT, fmt_addr, make_config, wait_until

MiB = 1024 * 1024
FRAMING = ("content-length", "transfer-encoding")


# --------------------------------------------------------------------------
# messages

class Headers(list):
    """A list of (name, value) pairs with case-insensitive lookups."""

    def all(self, name):
        n = name.lower()
        return [v for k, v in self if k.lower() == n]

    def get(self, name, default=None):
        vals = self.all(name)
        return vals[0] if vals else default

    def number(self, name):
        return len(self.all(name))

    def names(self):
        return [k.lower() for k, _ in self]


def parse_fields(lines):
    hdrs = Headers()
    for ln in lines:
        name, sep, value = ln.partition(b":")
        if not sep:
            raise ValueError(f"field line without a colon: {ln!r}")
        hdrs.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return hdrs


class Req:
    """One request as the backend received it."""

    def __init__(self, method, target, version, headers, conn):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.conn = conn            # index of the backend connection it came on
        self.framing = None         # "length", "chunked" or None
        self.body = b""
        self.body_len = 0
        self.body_sha = hashlib.sha256(b"").hexdigest()
        self.chunked_raw = None     # the chunked framing as received
        self.trailers = b""
        self.time = time.monotonic()

    def __repr__(self):
        return (f"<Req #{self.conn} {self.method} {self.target} {self.version} "
                f"{list(self.headers)} body={self.body_len}B>")

    def framing_headers(self):
        return [(k, v) for k, v in self.headers if k.lower() in FRAMING]


class Resp:
    """What the backend answers.

    framing: "length" (Content-Length), "chunked", "close" (body until the
    backend closes), "none" (no framing header, no body: 204/304), "raw" (send
    ``raw`` bytes as they are). action: None (answer), "close" (close without
    answering), "hang" (read on, never answer). interim: list of (status,
    [(name, value)]) sent first; hang_after: after sending, neither send nor
    close again; idle_close: seconds after which the backend closes the
    connection without having announced it. payload: a conftest.Payload streamed as the
    body (length framing)."""

    def __init__(self, status=200, body=b"", headers=(), framing="length", reason=None,
                 delay=0.0, interim=(), action=None, raw=None,
                 chunk_size=None, payload=None, close_after=False, hang_after=False,
                 idle_close=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = list(headers)
        self.framing = framing
        self.reason = reason
        self.delay = delay
        self.interim = list(interim)
        self.action = action
        self.raw = raw
        self.chunk_size = chunk_size
        self.payload = payload
        self.close_after = close_after
        self.hang_after = hang_after
        self.idle_close = idle_close

    def encode(self, req):
        reason = self.reason or REASONS.get(self.status, "Whatever")
        out = bytearray()
        for st, hdrs in self.interim:
            out += f"HTTP/1.1 {st} {REASONS.get(st, 'Info')}\r\n".encode()
            for k, v in hdrs:
                out += f"{k}: {v}\r\n".encode()
            out += b"\r\n"
        out += f"HTTP/1.1 {self.status} {reason}\r\n".encode()
        for k, v in self.headers:
            out += f"{k}: {v}\r\n".encode()
        head_only = req is not None and req.method == "HEAD"
        body = self.body
        if self.framing == "length":
            n = self.payload.total if self.payload else len(body)
            out += f"Content-Length: {n}\r\n".encode()
        elif self.framing == "chunked":
            out += b"Transfer-Encoding: chunked\r\n"
        if self.close_after or self.framing == "close":
            out += b"Connection: close\r\n"
        out += b"\r\n"
        if head_only or self.framing == "none":
            return bytes(out)
        if self.framing == "chunked":
            size = self.chunk_size or max(1, len(body))
            for i in range(0, len(body), size):
                part = body[i:i + size]
                out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
            out += b"0\r\n\r\n"
        elif not self.payload:
            out += body
        return bytes(out)


REASONS = {100: "Continue", 101: "Switching Protocols", 103: "Early Hints", 200: "OK",
           201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
           308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


# --------------------------------------------------------------------------
# the recording backend

class _ConnReader:
    """Buffered reads on a backend connection (records through conn)."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = bytearray()

    def fill(self):
        data = self.conn.recv_record(1 * MiB)
        if not data:
            return False
        self.buf += data
        return True

    def head(self, limit=1 * MiB):
        """The next head (up to the blank line), or None at a clean EOF."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", max(0, start - 3))
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            start = len(self.buf)
            if start > limit:
                raise ValueError("head too large")
            if not self.fill():
                if self.buf:
                    raise ValueError(f"EOF inside a head: {bytes(self.buf[:200])!r}")
                return None

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            if len(self.buf) > limit or not self.fill():
                raise ValueError("EOF or overlong line in a chunked body")

    def exact(self, n, sink):
        """n bytes into sink(bytes)."""
        while n > 0:
            if not self.buf and not self.fill():
                raise ValueError(f"EOF with {n} body bytes missing")
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take


class HttpBackend:
    """A recording HTTP/1.1 server on top of conftest's Backend.

    respond: a Resp, or a callable(req) -> Resp. Requests are recorded in
    ``requests`` (in arrival order) once their body is complete; ``heads``
    gets each request as soon as its head is parsed; anything that is not a
    valid request goes to ``garbage`` (and the connection is closed)."""

    KEEP_BODY = 8 * MiB     # bodies up to this size are kept; larger ones only hashed

    def __init__(self, backend_factory, name="A", respond=None, host="127.0.0.1",
                 send_continue=False, early=None):
        self.name = name
        self.send_continue = send_continue
        self.early = early
        if respond is None:
            respond = self.default_response
        elif isinstance(respond, Resp):
            fixed = respond
            respond = lambda req: fixed  # noqa: E731
        self.respond = respond
        self.requests = []
        self.heads = []
        self.garbage = []
        self.errors = []
        self.lock = threading.Condition()
        self.backend = backend_factory(name, host=host, handler=self._handle)
        self.address = self.backend.address
        self.port = self.backend.port

    def __repr__(self):
        return f"<HttpBackend {self.name} {self.address} requests={len(self.requests)}>"

    def default_response(self, req):
        return Resp(200, f"{self.name} {req.method} {req.target}\n".encode(),
                    headers=[("X-Backend", self.name)])

    # -- observations

    @property
    def accepted(self):
        """TCP connections accepted so far."""
        return self.backend.accepted

    def conn_bytes(self):
        """Every byte received on every connection, per connection."""
        with self.backend.cv:
            return [bytes(c.received) for c in self.backend.conns]

    def received_anything(self):
        return any(self.conn_bytes())

    def wait_requests(self, n, timeout=SOCK_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return list(self.requests)

    def stop(self):
        self.backend.stop()

    # -- the server

    def _handle(self, backend, conn):
        with backend.cv:
            cid = backend.conns.index(conn)
        rd = _ConnReader(conn)
        try:
            for _ in range(100000):
                head = rd.head()
                if head is None:
                    return
                req = self._parse_head(head, cid)
                with self.lock:
                    self.heads.append(req)
                early = self.early(req) if self.early else None
                if early is not None:
                    # Answer on the head alone, never read the body, close.
                    conn.sock.sendall(early.encode(req))
                    conn.sock.shutdown(socket.SHUT_WR)
                    while conn.recv_record():
                        pass
                    return
                if self.send_continue and \
                        (req.headers.get("expect") or "").lower() == "100-continue":
                    conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                self._read_body(rd, req)
                with self.lock:
                    self.requests.append(req)
                    self.lock.notify_all()
                resp = self.respond(req)
                if resp.action == "close":
                    return
                if resp.action == "hang":
                    while conn.recv_record():
                        pass
                    return
                if resp.delay:
                    time.sleep(resp.delay)
                if resp.raw is not None:
                    conn.sock.sendall(resp.raw)
                else:
                    conn.sock.sendall(resp.encode(req))
                    if resp.payload is not None and req.method != "HEAD":
                        for c in resp.payload.chunks():
                            conn.sock.sendall(c)
                if resp.idle_close is not None:
                    # A server-side keep-alive timeout: close the idle
                    # connection quietly, without Connection: close.
                    time.sleep(resp.idle_close)
                    conn.sock.shutdown(socket.SHUT_WR)
                    while conn.recv_record():
                        pass
                    return
                if resp.hang_after:
                    while conn.recv_record():
                        pass
                    return
                if resp.framing == "close" or resp.close_after:
                    conn.sock.shutdown(socket.SHUT_WR)
                    return
                if req.headers.get("connection", "").lower() == "close" or req.version == "HTTP/1.0" \
                        and "keep-alive" not in req.headers.get("connection", "").lower():
                    conn.sock.shutdown(socket.SHUT_WR)
                    return
        except ValueError as e:
            with self.lock:
                self.garbage.append((cid, str(e), bytes(conn.received)))
                self.lock.notify_all()
        except (OSError, EOFError) as e:
            with self.lock:
                self.errors.append((cid, repr(e)))
        except Exception as e:  # a bug in a test's responder: make it visible
            with self.lock:
                self.errors.append((cid, repr(e)))
            raise

    def _parse_head(self, head, cid):
        lines = head[:-4].split(b"\r\n")
        for ln in lines:
            if b"\n" in ln or b"\r" in ln or b"\0" in ln:
                raise ValueError(f"bare CR/LF or NUL in head {head!r}")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise ValueError(f"bad request line {lines[0]!r}")
        hdrs = parse_fields(lines[1:])
        for k, _ in hdrs:
            if not k or any(c in k for c in " \t"):
                raise ValueError(f"bad field name {k!r}")
        return Req(parts[0].decode("latin-1"), parts[1].decode("latin-1"),
                   parts[2].decode("latin-1"), hdrs, cid)

    def _read_body(self, rd, req):
        te = req.headers.all("transfer-encoding")
        cl = req.headers.all("content-length")
        if te and cl:
            raise ValueError("both Transfer-Encoding and Content-Length forwarded")
        if len(cl) > 1 or len(te) > 1:
            raise ValueError("repeated framing header forwarded")
        h = hashlib.sha256()
        kept = bytearray()
        count = [0]

        def sink(b):
            h.update(b)
            count[0] += len(b)
            if len(kept) < self.KEEP_BODY:
                kept.extend(b)

        if te:
            if te[0].lower() != "chunked":
                raise ValueError(f"Transfer-Encoding {te[0]!r} forwarded")
            req.framing = "chunked"
            raw = bytearray()
            for _ in range(10 ** 7):
                ln = rd.line()
                raw += ln + b"\r\n"
                size = int(ln.split(b";")[0], 16)
                if size == 0:
                    break
                rd.exact(size, lambda b: (sink(b), raw.extend(b) if len(raw) < self.KEEP_BODY
                                          else None))
                if rd.line() != b"":
                    raise ValueError("chunk data not followed by CRLF")
                raw += b"\r\n"
            trailers = bytearray()
            for _ in range(1000):
                ln = rd.line()
                if ln == b"":
                    break
                trailers += ln + b"\r\n"
            req.trailers = bytes(trailers)
            req.chunked_raw = bytes(raw)
        elif cl:
            req.framing = "length"
            rd.exact(int(cl[0]), sink)
        req.body = bytes(kept)
        req.body_len = count[0]
        req.body_sha = h.hexdigest()


def http_backend(backend, name="A", respond=None, host="127.0.0.1", send_continue=False,
                 early=None):
    """A started HttpBackend; `backend` is conftest's fixture (which stops it).
    respond is called once the request's body is in; send_continue: answer
    Expect: 100-continue with a 100 before reading the body; early(req) -> a
    Resp or None is asked on the head alone: a Resp is sent at once, without
    reading the body, and the connection is closed."""
    return HttpBackend(backend, name, respond, host, send_continue, early)


# --------------------------------------------------------------------------
# client side

class Response:
    def __init__(self, version, status, reason, headers, body=b"", interim=()):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.interim = list(interim)    # (status, headers) of 1xx responses

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} {list(self.headers)} "
                f"body={self.body[:200]!r}>")

    @property
    def closes(self):
        return "close" in [t.strip().lower() for v in self.headers.all("connection")
                           for t in v.split(",")]


class Client:
    """A raw HTTP/1.1 client over one socket (from conftest's `connect`)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 * MiB)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _head(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if not self._fill():
                raise EOFError(f"connection closed before a complete response head; "
                               f"got {bytes(self.buf[:300])!r}")
        raise AssertionError("response head never ended")

    def _line(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            if not self._fill():
                raise EOFError("EOF in a chunked response body")
        raise AssertionError("line never ended")

    def _exact(self, n, sink):
        while n > 0:
            if not self.buf and not self._fill():
                raise EOFError(f"EOF with {n} body bytes missing")
            take = min(n, len(self.buf))
            sink(self.buf[:take])
            del self.buf[:take]
            n -= take

    def response(self, method="GET", sink=None):
        """Read one response (after any 1xx). sink(bytes) receives the body
        instead of Response.body when given."""
        interim = []
        for _ in range(20):
            head = self._head()
            lines = head[:-4].split(b"\r\n")
            m = re.match(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
            assert m, f"malformed status line {lines[0]!r}"
            status = int(m.group(2))
            hdrs = parse_fields(lines[1:])
            if 100 <= status < 200 and status != 101:
                interim.append((status, hdrs))
                continue
            break
        body = bytearray()
        out = sink or body.extend
        te = hdrs.get("transfer-encoding")
        cl = hdrs.get("content-length")
        if method == "HEAD" or status in (204, 304) or status < 200:
            pass
        elif te:
            assert te.lower() == "chunked", te
            for _ in range(10 ** 7):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    break
                self._exact(size, out)
                assert self._line() == b"", "chunk data not followed by CRLF"
            for _ in range(1000):
                if self._line() == b"":
                    break
        elif cl is not None:
            self._exact(int(cl), out)
        else:
            for _ in range(10 ** 7):
                if self.buf:
                    out(bytes(self.buf))
                    self.buf.clear()
                if not self._fill():
                    break
        return Response(m.group(1).decode(), status, m.group(3).decode("latin-1"), hdrs,
                        bytes(body), interim)

    def request(self, method="GET", target="/", host="example.com", headers=(), body=None,
                version="HTTP/1.1"):
        """Send a well-formed request and read its response."""
        self.send(build(method, target, host, headers, body, version))
        return self.response(method)

    def closed(self, timeout=SOCK_TIMEOUT):
        """True when the peer closes the connection (EOF or reset) within
        timeout with nothing more sent; raises on extra bytes; False when
        the connection stays open."""
        if self.buf:
            raise AssertionError(f"unexpected bytes after the response: {bytes(self.buf)!r}")
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)
        if data:
            raise AssertionError(f"unexpected bytes after the response: {data!r}")
        return True


def build(method="GET", target="/", host="example.com", headers=(), body=None,
          version="HTTP/1.1"):
    """A request's bytes; a body gets a Content-Length unless the headers
    already frame it."""
    out = f"{method} {target} {version}\r\n"
    if host is not None:
        out += f"Host: {host}\r\n"
    names = [k.lower() for k, _ in headers]
    for k, v in headers:
        out += f"{k}: {v}\r\n"
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        out += f"Content-Length: {len(body)}\r\n"
    data = (out + "\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def chunked(body, size=7, ext=""):
    """body in chunked framing, size-byte chunks."""
    out = bytearray()
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}{ext}\r\n".encode() + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def client(connect, port, host="127.0.0.1", source=None, timeout=SOCK_TIMEOUT):
    return Client(connect(port, host=host, source=source, timeout=timeout))


# --------------------------------------------------------------------------
# config and logs

def http_config(port, pools, routes=None, default_pool="__first__", workers=1,
                listener_kw=None, pool_kw=None, log=None, **global_kw):
    """One http listener 'web' on 127.0.0.1:port.

    pools: {name: [HttpBackend or 'host:port' or server dict]}; the
    listener's pool is the first pool unless default_pool says otherwise
    (None: no listener pool)."""
    pl = []
    for name, servers in pools.items():
        srv = []
        for s in servers:
            if isinstance(s, dict):
                srv.append(s)
            elif isinstance(s, str):
                srv.append({"address": s})
            else:
                srv.append({"address": s.address})
        d = {"name": name, "protocol": "http", "algorithm": "round_robin"}
        d.update((pool_kw or {}).get(name, {}))
        d["servers"] = srv
        pl.append(d)
    lst = {"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http"}
    if default_pool == "__first__":
        default_pool = next(iter(pools)) if pools else None
    if default_pool:
        lst["pool"] = default_pool
    if routes:
        lst["routes"] = routes
    lst.update(listener_kw or {})
    kw = dict(global_kw)
    if log:
        kw["log"] = log
    return make_config([lst], pl, workers=workers, **kw)


_TEXT_RX = re.compile(
    r'^(?P<client>\S+) - - \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<target>\S+) '
    r'(?P<version>HTTP/1\.\d)" (?P<status>\d+) (?P<bytes_out>\d+) (?P<rest>.*)$')


def parse_text_http(line):
    """A text access record -> dict of strings (None when it does not parse)."""
    m = _TEXT_RX.match(line)
    if not m:
        return None
    rec = {k: v for k, v in m.groupdict().items() if k != "rest"}
    for part in m.group("rest").split(" "):
        k, sep, v = part.partition("=")
        if sep:
            rec[k] = v
    return rec


def access_records(f):
    """Every access record of a Fulcrum so far (dicts; JSON values typed)."""
    lines = f.access_lines()
    if f.json:
        return [json.loads(ln) for ln in lines]
    recs = [parse_text_http(ln) for ln in lines]
    assert all(recs), "unparseable access log line(s):\n" + "\n".join(lines)
    return recs


def wait_records(f, n, pred=None, timeout=SOCK_TIMEOUT):
    def match():
        recs = [r for r in access_records(f) if pred is None or pred(r)]
        return recs if len(recs) >= n else None
    recs = wait_until(match, timeout)
    assert recs, (f"expected {n} access record(s) within {timeout}s; got:\n"
                  + "\n".join(f.access_lines()))
    return recs

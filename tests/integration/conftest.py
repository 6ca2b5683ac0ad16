"""Shared fixtures of fulcrum's integration tests.

Everything runs on loopback (127.0.0.0/8 and ::1) on ports picked at run time:

- ``fulcrum(config)`` writes ``config`` (a dict) as YAML into the test's
  tmp_path, starts ``build/fulcrum -c FILE`` with stdout (the access log) and
  stderr (the error log) captured in files, and waits for the "ready" line.
  On teardown it sends SIGTERM (a second one if needed, then SIGKILL) and
  fails the test if fulcrum did not exit 0 or a sanitizer reported anything.
- ``backend(name, handler=...)`` starts an in-process threaded TCP server on
  a free port that records every connection it accepted (peer address,
  bytes received) and can be stopped ("killed") mid-test.
- ``connect(port, ...)`` opens a client socket with a timeout, optionally
  bound to a source address (127.0.0.2, ...) so ACLs and hashing see
  different clients; every client socket is closed at teardown.

- ``port`` / ``free_port()``: a port for fulcrum to listen on, chosen below
  the kernel's ephemeral range (so this run's backends and clients cannot
  take it first); ``dead_address()``: a bound, never-listening socket, so
  connects to it are refused.

The binary is $FULCRUM_BIN (default build/fulcrum), copied once per session.
No timing-based assertion is tighter than a few hundred milliseconds, and
every wait is bounded.
"""

import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FULCRUM_BIN = os.environ.get("FULCRUM_BIN", str(REPO / "build" / "fulcrum"))
# The binary the tests run: a private copy made at session start (see _binary),
# so that a rebuild of build/fulcrum during the run cannot change it midway.
_bin = {"path": FULCRUM_BIN}


def fulcrum_bin():
    return _bin["path"]

SOCK_TIMEOUT = 5.0       # default timeout of every socket operation
READY_TIMEOUT = 10.0     # fulcrum start-up
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# small helpers

def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fmt_addr(host, port):
    """host:port the way fulcrum writes it ([v6]:port)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()
_rng = random.Random(os.getpid() ^ time.time_ns())


def _bindable(port, hosts):
    for host in hosts:
        with socket.socket(family_of(host), socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host="127.0.0.1"):
    """A port for fulcrum to listen on, free on 127.0.0.1 and ::1 right now.

    Taken below the kernel's ephemeral range when there is room, so that
    backends (bound to port 0) and clients (ephemeral ports) of this very test
    cannot land on it between now and fulcrum's bind; never the same port
    twice in one session. Otherwise (no room) the kernel picks (port 0)."""
    hosts = ("127.0.0.1", "::1")
    if _EPHEMERAL_LOW > 11000:
        for _ in range(200):
            p = _rng.randrange(10000, _EPHEMERAL_LOW)
            if p not in _handed_out and _bindable(p, hosts):
                _handed_out.add(p)
                return p
    for _ in range(50):
        with socket.socket(family_of(host), socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            p = s.getsockname()[1]
        if p not in _handed_out and _bindable(p, hosts):
            _handed_out.add(p)
            return p
    raise RuntimeError("no free port found")


def wait_until(pred, timeout, interval=0.02):
    """Poll pred() until it returns something truthy or timeout expires."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))   # double-quoted YAML scalar


def to_yaml(obj, indent=0):
    """A minimal block-style YAML writer for the config dicts of the tests."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 1).split("\n")
                out.append(f"{pad}- {body[0].lstrip()}")
                out.extend(body[1:])
            elif isinstance(item, list):
                raise ValueError("nested lists are not used in fulcrum configs")
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def parse_text_access(line):
    """'TIME k=v k=v ...' -> dict (with 'time')."""
    ts, _, rest = line.partition(" ")
    rec = {"time": ts}
    for part in rest.split():
        k, sep, v = part.partition("=")
        if sep:
            rec[k] = v
    return rec


def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --------------------------------------------------------------------------
# deterministic pseudo-random payloads

class Payload:
    """total bytes of pseudo-random data, produced in chunks without copying.

    Every chunk is a different window of a 3 MiB random pool, so dropped,
    duplicated or reordered bytes change the SHA-256 of the stream."""

    _pool = None
    _pool_lock = threading.Lock()

    def __init__(self, total, chunk=1 * MiB, seed=0):
        with Payload._pool_lock:
            if Payload._pool is None:
                Payload._pool = memoryview(random.Random(20240601).randbytes(3 * MiB))
        self.total = total
        self.chunk = chunk
        self.seed = seed

    def chunks(self):
        pool = Payload._pool
        span = len(pool) - self.chunk
        sent, i = 0, 0
        while sent < self.total:
            n = min(self.chunk, self.total - sent)
            off = (self.seed * 7919 + i * 104729) % span
            yield pool[off:off + n]
            sent += n
            i += 1

    def sha256(self):
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        return h.hexdigest()


TRANSFER_LIMIT = 60.0    # seconds any one bulk send or receive may take


def send_payload(sock, payload, limit=TRANSFER_LIMIT):
    """sendall every chunk; returns (bytes sent, sha256 hex) of what was sent."""
    deadline = time.monotonic() + limit
    h = hashlib.sha256()
    n = 0
    for c in payload.chunks():
        if time.monotonic() > deadline:
            raise TimeoutError(f"sent only {n} bytes in {limit}s")
        sock.sendall(c)
        h.update(c)
        n += len(c)
    return n, h.hexdigest()


def recv_hash(sock, max_bytes=1 << 30, limit=TRANSFER_LIMIT, bufsize=1 * MiB):
    """Read until EOF (at most max_bytes + 1, at most limit seconds);
    returns (bytes received, sha256 hex)."""
    deadline = time.monotonic() + limit
    h = hashlib.sha256()
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    n = 0
    while n <= max_bytes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"received only {n} bytes in {limit}s")
        k = sock.recv_into(buf)
        if k == 0:
            return n, h.hexdigest()
        h.update(mv[:k])
        n += k
    return n, h.hexdigest()


# --------------------------------------------------------------------------
# client side

def recv_line(sock, limit=4096):
    """Bytes up to and including the first newline (or EOF)."""
    data = bytearray()
    while len(data) < limit:
        c = sock.recv(1)
        if not c:
            break
        data += c
        if c == b"\n":
            break
    return bytes(data)


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        c = sock.recv(n - len(data))
        if not c:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += c
    return bytes(data)


def recv_all(sock, limit=64 * MiB):
    """Everything until EOF (a reset counts as the end too)."""
    data = bytearray()
    while len(data) < limit:
        try:
            c = sock.recv(65536)
        except ConnectionResetError:
            break
        if not c:
            break
        data += c
    return bytes(data)


def closed_by_peer(sock, timeout=SOCK_TIMEOUT):
    """True when the peer closes the connection (EOF or reset) within timeout
    without sending any data; False on data; raises socket.timeout if the
    connection stays open and silent."""
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(old)
    return data == b""


# --------------------------------------------------------------------------
# backends

class BackendConn:
    """One connection a backend accepted."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer                 # (host, port, ...) as seen by the backend
        self.received = bytearray()
        self.eof = threading.Event()     # the proxy side sent FIN
        self.done = threading.Event()    # handler finished, socket closed
        self.error = None
        self.info = {}                   # handler-specific results

    def recv_record(self, bufsize=65536):
        try:
            data = self.sock.recv(bufsize)
        except ConnectionResetError as e:
            self.error = e
            data = b""
        if data:
            self.received += data
        else:
            self.eof.set()
        return data


class Backend:
    """A threaded TCP server on a free loopback port running handler(backend,
    conn) for every connection."""

    def __init__(self, name, host="127.0.0.1", handler=None, backlog=128, port=0, reuse=False,
                 listening=True):
        """port: 0 for any. reuse: SO_REUSEADDR (inherited by the accepted
        connections), so that a killed server can come back on its port at
        once, or another loopback address can listen on the same port.
        listening=False holds the port (connects are refused) until serve()."""
        self.name = name
        self.host = host
        self.handler = handler or hello
        self.lsock = socket.socket(family_of(host), socket.SOCK_STREAM)
        if reuse:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.lsock.bind((host, port))
        except OSError:
            self.lsock.close()
            raise
        self.backlog = backlog
        self.port = self.lsock.getsockname()[1]
        self.address = fmt_addr(host, self.port)
        self.conns = []
        self.cv = threading.Condition()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, name=f"backend-{name}",
                                       daemon=True)
        if listening:
            self.serve()

    def serve(self):
        self.lsock.listen(self.backlog)
        self.thread.start()

    def __repr__(self):
        return f"<Backend {self.name} {self.address}>"

    def _accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                s, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(30.0)
            conn = BackendConn(s, peer)
            with self.cv:
                self.conns.append(conn)
                self.cv.notify_all()
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(self, conn)
        except (OSError, EOFError) as e:
            conn.error = e
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass
            conn.done.set()

    @property
    def accepted(self):
        with self.cv:
            return len(self.conns)

    def wait_accepted(self, n, timeout=SOCK_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.conns) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True

    def stop(self):
        """Kill the backend: stop listening (new connects are refused) and
        reset every open connection."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if not self.thread.is_alive() and not self.conns:
            self.lsock.close()  # never served
            return
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(5)
        with self.cv:
            conns = list(self.conns)
        for c in conns:
            if c.done.is_set():
                continue
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for c in conns:
            c.done.wait(5)


# Handlers: handler(backend, conn). They run in the connection's own thread.

def hello(backend, conn):
    """Send 'NAME\\n' at once, then echo until EOF."""
    conn.sock.sendall(backend.name.encode() + b"\n")
    echo(backend, conn)


def echo(backend, conn):
    while True:
        data = conn.recv_record()
        if not data:
            return
        conn.sock.sendall(data)


def silent(backend, conn):
    """Never send; record what arrives until EOF."""
    while conn.recv_record():
        pass


# --------------------------------------------------------------------------
# fulcrum

class Fulcrum:
    def __init__(self, tmp_path, config, name):
        self.name = name
        self.config = config
        self.dir = Path(tmp_path)
        self.cfg_path = self.dir / f"{name}.yaml"
        self.stdout_path = self.dir / f"{name}.stdout"
        self.stderr_path = self.dir / f"{name}.stderr"
        self.proc = None
        self.returncode = None
        log = (config.get("global") or {}).get("log") or {}
        access = log.get("access", "stdout")
        error = log.get("error", "stderr")
        target = {"stdout": self.stdout_path, "stderr": self.stderr_path}
        self.access_path = target.get(access, None if access == "off" else Path(access))
        self.error_path = target.get(error, Path(error))
        self.json = log.get("format") == "json"
        self.cfg_path.write_text(to_yaml(config) + "\n")

    # -- process

    def start(self, wait_ready=True, nofile=None, preexec=None):
        """nofile: RLIMIT_NOFILE for the fulcrum process; preexec: a function
        run in the child before fulcrum starts (a restriction to put on it)."""
        def setup():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if preexec:
                preexec()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([fulcrum_bin(), "-c", str(self.cfg_path)],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         preexec_fn=setup if nofile or preexec else None)
        if wait_ready:
            self.wait_ready()
        return self

    def bind_ports(self):
        """(host, port) of every bind address of the config."""
        out = []
        for lst in self.config.get("listeners", []):
            binds = lst["bind"] if isinstance(lst["bind"], list) else [lst["bind"]]
            for b in binds:
                host, _, p = b.rpartition(":")
                out.append((host.strip("[]") or "127.0.0.1", int(p)))
        return out

    def _ports_accept(self):
        for host, p in self.bind_ports():
            try:
                with socket.create_connection((host, p), timeout=1):
                    pass
            except OSError:
                return False
        return True

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until the "ready" line is logged, or, when the log level hides it,
        until every bind port accepts a connection."""
        level = ((self.config.get("global") or {}).get("log") or {}).get("level", "info")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if level in ("info", "debug"):
                if re.search(r"\] ready$", self.error_log(), re.M):
                    return
            elif self.running() and self._ports_accept():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"fulcrum exited with {self.proc.returncode} during start-up\n"
                    f"config:\n{self.cfg_path.read_text()}\nerror log:\n{self.error_log()}\n"
                    f"stdout:\n{self.stdout_path.read_text(errors='replace')}")
            time.sleep(0.01)
        raise AssertionError(f"fulcrum not ready after {timeout}s\nerror log:\n{self.error_log()}")

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=10.0):
        """SIGTERM and wait; the exit code (None if it did not exit)."""
        self.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def cleanup(self):
        """Teardown: make sure the process is gone. Returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait(5)
            if rc is None:
                # A second signal closes every connection at once.
                self.proc.send_signal(signal.SIGTERM)
                rc = self.wait(5)
            if rc is None:
                self.proc.kill()
                self.proc.wait(5)
                problems.append(f"{self.name}: did not exit within 10 s of SIGTERM; killed")
            elif rc != 0:
                problems.append(f"{self.name}: exited with {rc} after SIGTERM")
        elif self.proc.returncode < 0:
            problems.append(f"{self.name}: died of signal {-self.proc.returncode}")
        text = self.error_log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                problems.append(f"{self.name}: sanitizer report in the error log:\n{text}")
                break
        return problems

    # -- logs

    def error_log(self):
        try:
            return self.error_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_lines(self, path=None):
        p = path or self.access_path
        try:
            text = Path(p).read_text(errors="replace")
        except FileNotFoundError:
            return []
        # Only complete lines: a line is written in one write(), but be safe.
        return [ln for ln in text.split("\n")[:-1] if ln]

    def access_records(self, path=None):
        lines = self.access_lines(path)
        if self.json:
            return [json.loads(ln) for ln in lines]
        return [parse_text_access(ln) for ln in lines]

    def wait_access(self, n, pred=None, timeout=SOCK_TIMEOUT):
        """Wait until at least n access records (matching pred) exist; returns
        the matching records."""
        def match():
            recs = [r for r in self.access_records() if pred is None or pred(r)]
            return recs if len(recs) >= n else None
        recs = wait_until(match, timeout)
        assert recs, (f"expected {n} access log record(s) within {timeout}s; got:\n"
                      + "\n".join(self.access_lines()))
        return recs

    def record_of(self, sock_or_addr, timeout=SOCK_TIMEOUT):
        """The access record of one client (a socket, or 'host:port')."""
        addr = sock_or_addr
        if isinstance(sock_or_addr, socket.socket):
            addr = fmt_addr(*sock_or_addr.getsockname()[:2])
        return self.wait_access(1, pred=lambda r: r["client"] == addr, timeout=timeout)[0]

    def wait_error_log(self, pattern, timeout=SOCK_TIMEOUT):
        rx = re.compile(pattern, re.M)
        m = wait_until(lambda: rx.search(self.error_log()), timeout)
        assert m, f"no error log line matching {pattern!r} within {timeout}s:\n{self.error_log()}"
        return m

    def counters(self, kind, name, server=None):
        """The counters line (after stop) for listener=name or pool=name."""
        for ln in self.error_log().splitlines():
            if " counters " not in ln:
                continue
            rec = parse_text_access("x " + ln.split(" counters ", 1)[1])
            if rec.get(kind) == name and rec.get("server") == server:
                return {k: (int(v) if v.isdigit() else v) for k, v in rec.items()}
        raise AssertionError(f"no counters line for {kind}={name} server={server}:\n"
                             + self.error_log())


def listener(name, bind, pool, **kw):
    d = {"name": name, "bind": bind, "protocol": "tcp", "pool": pool}
    d.update(kw)
    return d


def pool(name, servers, algorithm="round_robin", **kw):
    d = {"name": name, "protocol": "tcp", "algorithm": algorithm}
    d.update(kw)
    d["servers"] = [s if isinstance(s, dict) else {"address": s} for s in servers]
    return d


def make_config(listeners, pools, workers=2, **global_kw):
    g = {"workers": workers, "drain_timeout": "5s",
         "log": {"level": "info", "format": "text", "access": "stdout", "error": "stderr"}}
    log = global_kw.pop("log", None)
    if log:
        g["log"].update(log)
    g.update(global_kw)
    return {"global": g, "listeners": listeners, "pools": pools}


def simple_config(backends, port, workers=2, algorithm="round_robin", host="127.0.0.1",
                  listener_kw=None, pool_kw=None, **global_kw):
    """One listener 'front' on host:port -> pool 'backs' of the given backends."""
    servers = []
    for b in backends:
        if isinstance(b, dict):
            servers.append(b)
        elif isinstance(b, Backend):
            servers.append({"address": b.address})
        else:
            servers.append({"address": b})
    return make_config([listener("front", fmt_addr(host, port), "backs", **(listener_kw or {}))],
                       [pool("backs", servers, algorithm, **(pool_kw or {}))],
                       workers=workers, **global_kw)


# --------------------------------------------------------------------------
# fixtures


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (testssl); deselect with -m 'not slow'")

@pytest.fixture(scope="session", autouse=True)
def _binary(tmp_path_factory):
    assert os.access(FULCRUM_BIN, os.X_OK), (
        f"{FULCRUM_BIN} is missing: run `make` first (or set FULCRUM_BIN)")
    copy = tmp_path_factory.mktemp("bin") / "fulcrum"
    shutil.copy2(FULCRUM_BIN, copy)
    _bin["path"] = str(copy)
    yield
    _bin["path"] = FULCRUM_BIN


@pytest.fixture
def fulcrum(tmp_path):
    """fulcrum(config, wait_ready=True, name=None, nofile=None, preexec=None) -> a started
    Fulcrum."""
    started = []

    def start(config, wait_ready=True, name=None, nofile=None, preexec=None):
        f = Fulcrum(tmp_path, config, name or f"fulcrum{len(started)}")
        started.append(f)
        return f.start(wait_ready, nofile, preexec)

    yield start
    problems = []
    for f in started:
        problems += f.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)



@pytest.fixture(scope="session")
def p(tmp_path_factory):
    """The test PKI of tls_helpers: CAs, server and client certificates,
    made once per session with the openssl CLI."""
    from tls_helpers import pki
    return pki(tmp_path_factory)

@pytest.fixture
def backend():
    """backend(name, host='127.0.0.1', handler=hello) -> a running Backend."""
    made = []

    def make(name, host="127.0.0.1", handler=None, backlog=128):
        b = Backend(name, host, handler, backlog)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def connect():
    """connect(port, host='127.0.0.1', source=None, timeout=5) -> a socket."""
    socks = []

    def make(port, host="127.0.0.1", source=None, timeout=SOCK_TIMEOUT):
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        socks.append(s)
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        return s

    yield make
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


@pytest.fixture
def dead_address():
    """dead_address(host='127.0.0.1') -> 'HOST:PORT' where connects are
    refused: a socket bound there (so no one else gets the port) that never
    listens. Released at teardown."""
    held = []

    def make(host="127.0.0.1"):
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        held.append(s)
        s.bind((host, 0))
        return fmt_addr(host, s.getsockname()[1])

    yield make
    for s in held:
        s.close()


@pytest.fixture
def port():
    """A free port on 127.0.0.1."""
    return free_port()


def socket_ccs(port):
    """{(local, peer): congestion control} of the established TCP sockets
    with `port` at either end, from `ss -ti`."""
    out = subprocess.run(["ss", "-tinH", "state", "established",
                          f"( sport = :{port} or dport = :{port} )"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    ccs, key = {}, None
    for line in out.splitlines():
        if not line[:1].isspace():
            f = line.split()
            key = (f[-2], f[-1])
        elif key:
            ccs[key] = line.split()[0]
            key = None
    return ccs


def available_ccs():
    with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
        return f.read().split()

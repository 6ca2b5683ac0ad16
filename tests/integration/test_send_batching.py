"""Send batching (global.batch_sends): small writes to plain sockets are
staged and handed to the kernel together in one io_uring call. What a client
must see is unchanged: every byte, in order, then the close. These tests
drive the paths where the kernel takes less than was staged (a client that
does not read), on both settings."""

import ctypes
import hashlib
import os
import socket
import threading
import time

import pytest

from conftest import SOCK_TIMEOUT, simple_config, wait_until
from http_helpers import build, client, http_config

CHUNK = 1000          # bytes per backend write: small enough to be staged
CHUNKS = 3000         # 3 MB in all: far more than the socket buffers hold
STALL = 1.5           # seconds the client reads nothing
SMALL_RCVBUF = 4096


def payload():
    return b"".join(hashlib.sha256(b"%d" % i).digest() * 31 + b"12345678"[: CHUNK - 992]
                    for i in range(CHUNKS))


def dribble(sock, data):
    """Send data in CHUNK-byte writes with short pauses, so that the proxy
    reads (and writes) it in small pieces."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), CHUNK):
        sock.sendall(data[i:i + CHUNK])
        time.sleep(0.0002)


def slow_client(port):
    """A client with a small receive buffer, connected to port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    s.settimeout(SOCK_TIMEOUT)
    s.connect(("127.0.0.1", port))
    return s


def read_to_eof(s, limit=10 * CHUNK * CHUNKS):
    got = bytearray()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        b = s.recv(65536)
        if not b:
            return bytes(got)
        got += b
        assert len(got) <= limit, "more bytes than were sent"
    raise AssertionError(f"no end of stream after {len(got)} bytes")


def io_uring_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]":
                n += 1
        except OSError:
            pass
    return n


NR_IO_URING_SETUP = 425   # the same numbers on every architecture (asm-generic)
NR_IO_URING_ENTER = 426


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp(*insns):
    """A preexec function that installs the seccomp filter insns (classic
    BPF over struct seccomp_data) in the process it runs in, and so in what
    that executes. The filter and the libc call are prepared here, before
    the fork."""
    insns = (_SockFilter * len(insns))(*insns)
    prog = _SockFprog(len(insns), insns)
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                      ctypes.c_ulong]

    def apply():
        # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER
        if prctl(38, 1, None, 0, 0) != 0 or prctl(22, 2, ctypes.addressof(prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "seccomp filter refused")
    apply.keep = (insns, prog)
    return apply


ALLOW = _SockFilter(0x06, 0, 0, 0x7FFF0000)     # return SECCOMP_RET_ALLOW


def fail_with(errno):
    return _SockFilter(0x06, 0, 0, 0x00050000 | errno)   # return SECCOMP_RET_ERRNO | errno


def io_uring_refused():
    """io_uring_setup fails with EPERM, as on a host with sysctl
    kernel.io_uring_disabled=2. Everything else is allowed."""
    return seccomp(
        _SockFilter(0x20, 0, 0, 0),                   # A = seccomp_data.nr
        _SockFilter(0x15, 0, 1, NR_IO_URING_SETUP),   # if A == io_uring_setup
        fail_with(1),                                 #   EPERM
        ALLOW)


def batched_flush_fails():
    """io_uring_enter fails with ENOMEM when it would submit two or more
    entries, as a batched flush does; the worker's startup probe (one entry)
    and everything else pass."""
    return seccomp(
        _SockFilter(0x20, 0, 0, 0),                   # A = seccomp_data.nr
        _SockFilter(0x15, 0, 3, NR_IO_URING_ENTER),   # if A == io_uring_enter:
        _SockFilter(0x20, 0, 0, 24),                  #   A = to_submit (args[1], low half)
        _SockFilter(0x35, 0, 1, 2),                   #   if A >= 2
        fail_with(12),                                #     ENOMEM
        ALLOW)


def host_allows_io_uring():
    """Whether this process may create an io_uring (io_uring_setup)."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)    # __NR_io_uring_setup on x86-64 and arm64
    if fd < 0:
        return False
    os.close(fd)
    return True


@pytest.mark.parametrize("batch", [True, False])
def test_setting_decides_whether_io_uring_is_used(fulcrum, backend, port, batch):
    b = backend("A")
    f = fulcrum(simple_config([b], port, workers=2, batch_sends=batch))
    # Each worker makes its ring when its thread starts: let the workers
    # answer a few connections first, and wait for the rings.
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT) as c:
            c.recv(100)
    if batch:
        wait_until(lambda: io_uring_fds(f.pid) == 2 or "send batching" in f.error_log(),
                   SOCK_TIMEOUT)
    warned = "send batching is off: io_uring cannot be used" in f.error_log()
    if not batch:
        assert io_uring_fds(f.pid) == 0 and not warned
    elif io_uring_fds(f.pid) == 2:
        assert not warned
    else:
        # Only where the host refuses io_uring (or its kernel parks
        # MSG_DONTWAIT sends), and then fulcrum says so.
        assert warned, "no io_uring in the workers and no warning"
        assert not host_allows_io_uring() or "not supported" in f.error_log()


def test_host_that_refuses_io_uring_gets_a_warning_and_unbatched_sends(fulcrum, backend, port):
    """batch_sends is on, but io_uring_setup fails (as where the sysctl
    kernel.io_uring_disabled forbids it): fulcrum says once, with the
    reason, that it sends without batching, no worker has a ring, and the
    proxy works."""
    b = backend("A")
    f = fulcrum(simple_config([b], port, workers=2, batch_sends=True),
                preexec=io_uring_refused())
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT) as c:
            assert c.recv(100) == b"A\n"
    assert f.error_log().count("send batching is off") == 1
    assert "send batching is off: io_uring cannot be used (Operation not permitted)" \
        in f.error_log()
    assert io_uring_fds(f.pid) == 0


def test_failed_batched_flush_stops_batching_and_loses_nothing(fulcrum, backend, port):
    """The kernel refuses a batched flush (io_uring_enter fails; here a
    seccomp filter makes it fail with ENOMEM). The worker says so once,
    drops its ring, and sends each write at once from then on: the writes
    of that turn still arrive, and so does everything after."""
    b = backend("A")
    f = fulcrum(simple_config([b], port, workers=1, batch_sends=True),
                preexec=batched_flush_fails())
    assert wait_until(lambda: io_uring_fds(f.pid) == 1, SOCK_TIMEOUT), "the worker made no ring"

    def clients(n, tag):
        # Many clients at once, so that some loop turn stages writes to
        # several sockets: the backend's greetings, then the echoes.
        socks = [socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
                 for _ in range(n)]
        try:
            for i, s in enumerate(socks):
                s.sendall(b"%s %d\n" % (tag, i))
            for i, s in enumerate(socks):
                want = b"A\n%s %d\n" % (tag, i)
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(100)
                    assert chunk, f"client {i} of {tag} closed after {got!r}"
                    got += chunk
                assert got == want
        finally:
            for s in socks:
                s.close()

    for r in range(20):
        clients(50, b"round%d" % r)
        if "send batching stops" in f.error_log():
            break
    log = f.error_log()
    assert log.count("send batching stops") == 1, log
    assert ("send batching stops: io_uring_enter: Cannot allocate memory; each write goes "
            "out with its own syscall from now on") in log
    assert io_uring_fds(f.pid) == 0
    clients(50, b"after")
    assert f.running()
    assert f.error_log().count("send batching stops") == 1


@pytest.mark.parametrize("batch", [True, False, "refused"])
def test_tcp_stalled_client_gets_every_byte_then_the_close(fulcrum, backend, port, batch):
    """refused: batch_sends is on but the host refuses io_uring."""
    data = payload()

    def handler(bk, conn):
        conn.sock.settimeout(30)
        dribble(conn.sock, data)
        conn.sock.close()

    b = backend("DRIBBLE", handler=handler)
    f = fulcrum(simple_config([b], port, workers=1, batch_sends=bool(batch),
                              listener_kw={"forwarding": "buffer"}),
                preexec=io_uring_refused() if batch == "refused" else None)
    s = slow_client(port)
    time.sleep(STALL)            # the proxy's writes to us fill every buffer
    got = read_to_eof(s)
    s.close()
    assert len(got) == len(data)
    assert got == data, "bytes lost or out of order"
    assert f.running()


@pytest.mark.parametrize("batch", [True, False])
def test_http_close_after_response_to_stalled_client_delivers_it_whole(fulcrum, backend, port,
                                                                        batch):
    """The response ends, fulcrum closes the client connection, but the
    client has read nothing yet: the rest still arrives before the close."""
    body = payload()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))

    def handler(bk, conn):
        conn.sock.settimeout(30)
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.sock.recv(4096)
            if not chunk:
                return
            req += chunk
        conn.sock.sendall(head)
        dribble(conn.sock, body)
        conn.sock.recv(1)        # the proxy keeps the connection; wait for its close

    b = backend("DRIBBLE", handler=handler)
    f = fulcrum(http_config(port, {"p": [b.address]}, batch_sends=batch))
    s = slow_client(port)
    s.sendall(build("GET", "/big", headers=[("Connection", "close")]))
    time.sleep(STALL)
    got = read_to_eof(s)
    s.close()
    head_end = got.find(b"\r\n\r\n") + 4
    assert got.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in got[:head_end].lower()
    assert got[head_end:] == body, (f"body of {len(got) - head_end} bytes, "
                                    f"{len(body)} sent")
    assert wait_until(lambda: "200" in f.stdout_text(), SOCK_TIMEOUT)


@pytest.mark.parametrize("batch", [True, False])
def test_pipelined_requests_to_stalled_client_answered_in_order(fulcrum, backend, connect, port,
                                                               batch):
    def handler(bk, conn):
        conn.sock.settimeout(30)
        buf = b""
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                req, buf = buf.split(b"\r\n\r\n", 1)
                n = req.split(b" ", 2)[1].lstrip(b"/")
                body = n + b" " + b"x" * 200
                conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(body), body))

    b = backend("ECHO", handler=handler)
    fulcrum(http_config(port, {"p": [b.address]}, batch_sends=batch))
    n = 3000
    c = client(connect, port)
    reqs = b"".join(build("GET", f"/{i}") for i in range(n))
    # The proxy stops reading requests while its answers cannot go out, so
    # the requests are sent from a thread.
    sender = threading.Thread(target=c.sock.sendall, args=(reqs,), daemon=True)
    sender.start()
    time.sleep(STALL)
    for i in range(n):
        r = c.response()
        assert r.status == 200
        assert r.body == b"%d " % i + b"x" * 200, f"response {i} is not the answer to request {i}"
    sender.join(SOCK_TIMEOUT)
    assert not sender.is_alive()

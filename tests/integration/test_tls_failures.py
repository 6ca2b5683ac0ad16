"""What goes wrong on a TLS port: garbage bytes, plain HTTP sent to an https
port (a plain-text 400), clients that stall or vanish in the handshake.
Each is counted by reason, logged at debug level, and disturbs no other
connection."""

import socket
import ssl
import threading
import time

import pytest

from conftest import SOCK_TIMEOUT
from http_helpers import http_backend
from tls_helpers import (client_ctx, https_config, https_get, read_tls_records,
                         ssl_config, tls_connect, tls_counters)


def web_config(port, a, p, **tls_kw):
    cfg = https_config(port, {"p": [a]}, [p.a], tls_kw=tls_kw or None,
                       log={"level": "debug"})
    return cfg


def test_plain_http_to_https_port_gets_400(fulcrum, backend, connect, port, p):
    a = http_backend(backend, "A")
    f = fulcrum(web_config(port, a, p))
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
    data, closed = read_tls_records(s)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert closed, "the connection stayed open after the 400"
    assert a.accepted == 0
    f.wait_error_log(r"listener web: client 127\.0\.0\.1:\d+: TLS handshake failed "
                     r"\(plain_http\): a plain HTTP request")
    c = tls_counters(f, "web")
    assert c["tls_failed_plain_http"] == 1 and c["tls_handshakes"] == 0, c


def test_plain_http_with_curl(fulcrum, backend, port, p):
    import subprocess
    a = http_backend(backend, "A")
    fulcrum(web_config(port, a, p))
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w",
                        "%{http_code}", f"http://127.0.0.1:{port}/"], capture_output=True,
                       text=True, timeout=20)
    assert r.stdout == "400", (r.stdout, r.stderr)


@pytest.mark.parametrize("garbage", [
    b"\x00" * 64,
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x16\x03\x01\x00\x05hello",                       # a handshake record that is no hello
    b"\x16\x03\x01\xff\xff" + b"\x01" * 300,            # an oversized record header
    bytes(range(256)),
], ids=["zeros", "ssh", "bad-hello", "oversized", "bytes"])
def test_garbage_is_refused_and_others_are_served(fulcrum, backend, connect, port, p, garbage):
    a = http_backend(backend, "A")
    f = fulcrum(web_config(port, a, p))
    good = tls_connect(port, client_ctx(p))       # a connection open before the garbage
    s = connect(port)
    s.sendall(garbage)
    data, closed = read_tls_records(s)
    assert closed, "a client sending garbage was left open"
    assert b"HTTP/" not in data
    # Nothing else was disturbed.
    good.sendall(b"GET /still HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert good.recv(100).startswith(b"HTTP/1.1 200 ")
    good.close()
    assert https_get(port, client_ctx(p))[0] == 200
    assert a.accepted >= 1
    c = tls_counters(f, "web")
    failed = sum(v for k, v in c.items() if k.startswith("tls_failed_"))
    assert failed == 1 and c["tls_handshakes"] == 2, c
    assert "TLS handshake failed" in f.error_log()


def test_not_tls_counted_as_such(fulcrum, backend, connect, port, p):
    a = http_backend(backend, "A")
    f = fulcrum(web_config(port, a, p))
    s = connect(port)
    s.sendall(b"\x00" * 64)
    read_tls_records(s)
    f.wait_error_log(r"TLS handshake failed \(not_tls\)")
    assert tls_counters(f, "web")["tls_failed_not_tls"] == 1


def test_handshake_timeout(fulcrum, backend, connect, port, p):
    a = http_backend(backend, "A")
    cfg = web_config(port, a, p)
    cfg["listeners"][0]["timeouts"] = {"handshake": "500ms"}
    f = fulcrum(cfg)
    silent = connect(port)
    partial = connect(port)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00")   # the start of a ClientHello
    t0 = time.monotonic()
    for s in (silent, partial):
        _, closed = read_tls_records(s, timeout=5)
        assert closed
    took = time.monotonic() - t0
    assert 0.3 <= took <= 3.0, f"closed after {took:.2f}s with handshake: 500ms"
    assert https_get(port, client_ctx(p))[0] == 200
    c = tls_counters(f, "web")
    assert c["tls_failed_timeout"] == 2, c


def test_client_closing_mid_handshake_is_counted(fulcrum, backend, connect, port, p):
    a = http_backend(backend, "A")
    f = fulcrum(web_config(port, a, p))
    s = connect(port)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00")
    time.sleep(0.1)
    s.close()
    s = connect(port)
    s.close()
    assert https_get(port, client_ctx(p))[0] == 200
    time.sleep(0.2)
    c = tls_counters(f, "web")
    assert c["tls_failed_closed"] == 2, c


def test_many_bad_clients_do_not_stop_good_ones(fulcrum, backend, port, p):
    """200 garbage / stalled / half-hello clients in parallel with 50 good
    requests: every good request is answered."""
    a = http_backend(backend, "A")
    cfg = web_config(port, a, p)
    cfg["listeners"][0]["timeouts"] = {"handshake": "1s"}
    cfg["global"]["workers"] = 2
    f = fulcrum(cfg)
    bad = []
    errors = []
    results = []

    def bad_client(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
            bad.append(s)
            s.sendall([b"\x00" * 10, b"\x16\x03\x01\x01\x00\x01", b"GET / HTTP/1.1\r\n\r\n",
                       b""][i % 4])
        except OSError as e:
            errors.append(e)

    def good_client():
        try:
            results.append(https_get(port, client_ctx(p), "/g")[0])
        except (OSError, ssl.SSLError, EOFError) as e:
            errors.append(e)

    threads = [threading.Thread(target=bad_client, args=(i,)) for i in range(200)]
    threads += [threading.Thread(target=good_client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:5]
    assert results == [200] * 50
    for s in bad:
        s.close()
    c = tls_counters(f, "web")
    assert c["tls_handshakes"] == 50, c


def test_ssl_listener_plain_text_gets_no_http_answer(fulcrum, backend, connect, port, p):
    """On an ssl (not https) listener plain HTTP is just not TLS: closed
    without an HTTP answer."""
    b = backend("B")
    f = fulcrum(ssl_config(port, [b], [p.a]))
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    data, closed = read_tls_records(s)
    assert closed and b"HTTP/1.1" not in data, data
    assert b.accepted == 0
    c = tls_counters(f, "front")
    assert c["tls_failed_plain_http"] + c["tls_failed_not_tls"] == 1, c


def test_handshake_failures_are_quiet_at_info_level(fulcrum, backend, connect, port, p):
    """Garbage from the internet must not flood the error log: handshake
    failures are debug messages."""
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [p.a]))     # level info
    for data in (b"\x00" * 32, b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello"):
        s = connect(port)
        s.sendall(data)
        read_tls_records(s)
        s.close()
    assert https_get(port, client_ctx(p))[0] == 200
    c = tls_counters(f, "web")
    assert sum(v for k, v in c.items() if k.startswith("tls_failed_")) == 3, c
    assert "TLS handshake failed" not in f.error_log()

"""Every listener/pool pairing with TLS, end to end, with curl, openssl
s_client, python's ssl module and the websockets client:

- ssl listener -> tcp pool (terminated at fulcrum, plain TCP behind);
- https listener -> http pool (offload) and -> https pool (re-encryption);
- tcp listener -> tcp pool with tls enabled, and ssl -> tls tcp pool;
- WebSocket over https (wss), offloaded and re-encrypted.
"""

import asyncio
import hashlib
import socket
import subprocess

import pytest
import websockets

from conftest import (MiB, Payload, SOCK_TIMEOUT, fmt_addr, make_config,
                      recv_exact, recv_hash, recv_line, send_payload)
from http_helpers import Resp, http_backend
from test_http_websocket import WsEchoServer as WsEcho
from tls_helpers import (client_ctx, conn_infos, curl, https_config, https_get, read_response,
                         s_client, server_ctx, ssl_config, tls_backend, tls_connect, tls_counters,
                         tls_http_backend)


# --------------------------------------------------------------------------
# ssl -> tcp

def test_ssl_listener_to_tcp_pool_echoes_over_tls(fulcrum, backend, port, p):
    b = backend("B")
    f = fulcrum(ssl_config(port, [b], [p.a]))
    s = tls_connect(port, client_ctx(p), sni="a.example.com")
    assert s.version() in ("TLSv1.2", "TLSv1.3")
    assert recv_line(s) == b"B\n"
    s.sendall(b"hello through tls\n")
    assert recv_exact(s, 18) == b"hello through tls\n"
    s.close()
    # The backend got the plain bytes, not TLS records.
    assert b.wait_accepted(1)
    conn = b.conns[0]
    assert conn.eof.wait(SOCK_TIMEOUT)
    assert bytes(conn.received) == b"hello through tls\n"
    c = tls_counters(f, "front")
    assert c["tls_handshakes"] == 1 and c["tls_failed_other"] == 0, c


def test_ssl_listener_upload_and_download_are_intact(fulcrum, backend, port, p):
    """8 MiB from the client to the server, then 8 MiB from the server to the
    client, through TLS on the client side: every byte arrives in order and
    the ends (client close, server close) are passed on."""
    down = Payload(8 * MiB, chunk=256 * 1024, seed=4)

    def sink_then_send(be, conn):
        while len(conn.received) < 8 * MiB and conn.recv_record():
            pass
        for c in down.chunks():
            conn.sock.sendall(c)
        conn.sock.shutdown(socket.SHUT_WR)
        while conn.recv_record():
            pass

    b = backend("B", handler=sink_then_send)
    fulcrum(ssl_config(port, [b], [p.a]))
    s = tls_connect(port, client_ctx(p))
    s.settimeout(60)
    n, sha = send_payload(s, Payload(8 * MiB, chunk=256 * 1024, seed=3))
    got, got_sha = recv_hash(s, max_bytes=16 * MiB)
    assert (got, got_sha) == (down.total, down.sha256()), "download through TLS differs"
    assert b.wait_accepted(1)
    conn = b.conns[0]
    assert len(conn.received) == n
    assert hashlib.sha256(bytes(conn.received)).hexdigest() == sha
    s.close()
    assert conn.eof.wait(SOCK_TIMEOUT), "the client's close did not reach the server"


def test_ssl_listener_large_echo_is_intact(fulcrum, backend, port, p):
    """4 MiB sent, the same 4 MiB echoed back in order through TLS."""
    b = backend("B", handler=lambda be, conn: _echo(conn))
    fulcrum(ssl_config(port, [b], [p.a_ec]))
    s = tls_connect(port, client_ctx(p))
    s.settimeout(60)
    payload = Payload(4 * MiB, chunk=64 * 1024, seed=9)
    got = bytearray()
    h = hashlib.sha256()
    sent = 0
    # One thread (an SSL object must not be read and written concurrently):
    # keep at most ~192 KiB in flight so that neither side's buffers fill up.
    for c in payload.chunks():
        s.sendall(c)
        h.update(c)
        sent += len(c)
        while len(got) < sent - 128 * 1024:
            d = s.recv(1 * MiB)
            assert d, f"closed after {len(got)} echoed bytes"
            got.extend(d)
    while len(got) < sent:
        d = s.recv(1 * MiB)
        assert d, f"closed after {len(got)} echoed bytes"
        got.extend(d)
    sha = h.hexdigest()
    assert len(got) == payload.total, f"echoed {len(got)} of {payload.total} bytes"
    assert hashlib.sha256(got).hexdigest() == sha
    s.close()


def _echo(conn):
    while True:
        d = conn.recv_record()
        if not d:
            return
        conn.sock.sendall(d)


# --------------------------------------------------------------------------
# https -> http (offload)

def test_https_offload_with_curl(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    r = curl(f"https://a.example.com:{port}/hello?x=1", "--cacert", p.root.crt,
             "-D", "-", resolve=f"a.example.com:{port}:127.0.0.1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 200"), r.stdout
    assert "A GET /hello?x=1" in r.stdout
    req = a.wait_requests(1)[0]
    # The server gets plain HTTP, told that the client used https.
    assert req.headers.all("x-forwarded-proto") == ["https"], req
    assert req.headers.all("x-forwarded-port") == [str(port)], req
    assert req.headers.get("host") == f"a.example.com:{port}"


def test_https_redirect_scheme_is_the_clients(fulcrum, port, p):
    """{scheme} in a redirect is https on an https listener."""
    fulcrum(https_config(port, {}, [p.a], default_pool=None, routes=[
        {"match": {"path_prefix": "/"}, "redirect": {"to": "{scheme}://{host}/moved{path}"}}]))
    st, h, _, _ = https_get(port, client_ctx(p), path="/x?y=1")
    assert st == 302, h
    assert h.get("location") == "https://a.example.com/moved/x?y=1", h


def test_https_offload_with_s_client_and_keepalive(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    reqs = (b"GET /one HTTP/1.1\r\nHost: a.example.com\r\n\r\n"
            b"GET /two HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
    rc, out = s_client(port, "-ign_eof", input=reqs, cafile=p.root.crt)
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "A GET /one" in out and "A GET /two" in out, out
    got = a.wait_requests(2)
    assert [r.target for r in got] == ["/one", "/two"]
    assert got[0].conn == got[1].conn, "fulcrum did not keep its server connection"


def test_https_offload_python_keepalive_and_post(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    s = tls_connect(port, client_ctx(p))
    body = bytes(range(256)) * 4096   # 1 MiB
    for i in range(3):
        s.sendall(f"POST /up/{i} HTTP/1.1\r\nHost: a.example.com\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        st, h, b = read_response(s)
        assert st == 200, (st, h, b)
        assert b == f"A POST /up/{i}\n".encode()
    s.close()
    got = a.wait_requests(3)
    assert all(r.body_len == len(body) and r.body_sha == hashlib.sha256(body).hexdigest()
               for r in got)


def test_https_offload_large_response(fulcrum, backend, port, p):
    payload = Payload(6 * MiB, seed=5)
    a = http_backend(backend, "A", respond=Resp(200, payload=payload))
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    raw = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", p.root.crt,
                          "--resolve", f"a.example.com:{port}:127.0.0.1",
                          f"https://a.example.com:{port}/big"], capture_output=True, timeout=40)
    assert raw.returncode == 0, raw.stderr
    assert len(raw.stdout) == payload.total
    assert hashlib.sha256(raw.stdout).hexdigest() == payload.sha256()


def test_https_alpn_offers_http11_only(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    rc, out = s_client(port, "-alpn", "h2,http/1.1", cafile=p.root.crt)
    assert rc == 0, out
    assert "ALPN protocol: http/1.1" in out, out
    # curl prefers h2 when offered; it must get HTTP/1.1.
    r = curl(f"https://a.example.com:{port}/", "--cacert", p.root.crt, "--http2", "-o",
             "/dev/null", "-w", "%{http_version} %{http_code}",
             resolve=f"a.example.com:{port}:127.0.0.1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1.1 200", r.stdout


def test_https_custom_alpn_list(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"alpn": ["http/1.1", "http/1.0"]}))
    rc, out = s_client(port, "-alpn", "http/1.0", cafile=p.root.crt)
    assert rc == 0, out
    assert "ALPN protocol: http/1.0" in out, out


# --------------------------------------------------------------------------
# https -> https (re-encryption)

def test_https_reencrypt_to_https_pool(fulcrum, backend, port, p):
    a = tls_http_backend(backend, server_ctx(p.local, alpn=["http/1.1"]), "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         pool_kw={"p": {"protocol": "https",
                                        "tls": {"ca": p.root.crt, "server_name": "localhost"}}}))
    st, h, body, _ = https_get(port, client_ctx(p), "/secure")
    assert st == 200 and body == b"A GET /secure\n", (st, h, body)
    req = a.wait_requests(1)[0]
    assert req.headers.all("x-forwarded-proto") == ["https"]
    info = conn_infos(a.backend)[0]
    # fulcrum spoke TLS to the server, with the configured SNI and ALPN.
    assert info["version"] in ("TLSv1.2", "TLSv1.3"), info
    assert info["sni"] == "localhost", info
    assert info["alpn"] == "http/1.1", info


def test_https_reencrypt_with_curl_many_requests(fulcrum, backend, port, p):
    a = tls_http_backend(backend, server_ctx(p.local_ec), "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a_ec],
                         pool_kw={"p": {"protocol": "https",
                                        "tls": {"ca": p.root.crt, "server_name": "localhost"}}}))
    urls = [f"https://a.example.com:{port}/n{i}" for i in range(5)]
    # One curl run, five URLs: curl reuses its connection for them in order.
    r = curl(urls[-1], "--cacert", p.root.crt, *urls[:-1],
             resolve=f"a.example.com:{port}:127.0.0.1")
    assert r.returncode == 0, r.stderr
    for i in range(5):
        assert f"A GET /n{i}\n" in r.stdout, r.stdout
    assert [q.target for q in a.wait_requests(5)] == [f"/n{i}" for i in range(5)]


# --------------------------------------------------------------------------
# tcp pools with TLS

def test_tcp_listener_to_tls_tcp_pool(fulcrum, backend, connect, port, p):
    """Plain TCP from the client, TLS from fulcrum to the server."""
    b = tls_backend(backend, "B", server_ctx(p.local))
    cfg = make_config([{"name": "front", "bind": fmt_addr("127.0.0.1", port), "protocol": "tcp",
                        "pool": "backs"}],
                      [{"name": "backs", "protocol": "tcp", "servers": [{"address": b.address}],
                        "tls": {"enabled": True, "ca": p.root.crt, "server_name": "localhost"}}],
                      workers=1)
    fulcrum(cfg)
    s = connect(port)
    assert recv_line(s) == b"B\n"
    s.sendall(b"ping\n")
    assert recv_exact(s, 5) == b"ping\n"
    s.close()
    info = conn_infos(b)[0]
    assert info["version"] in ("TLSv1.2", "TLSv1.3") and info["sni"] == "localhost", info


def test_ssl_listener_to_tls_tcp_pool(fulcrum, backend, port, p):
    """TLS terminated and a new TLS session to the server (L4 re-encryption)."""
    b = tls_backend(backend, "B", server_ctx(p.local))
    fulcrum(ssl_config(port, [b], [p.a],
                       pool_tls={"enabled": True, "ca": p.root.crt, "server_name": "localhost"}))
    s = tls_connect(port, client_ctx(p))
    assert recv_line(s) == b"B\n"
    s.sendall(b"x" * 100000)
    assert recv_exact(s, 100000) == b"x" * 100000
    s.close()
    assert conn_infos(b)[0]["sni"] == "localhost"


# --------------------------------------------------------------------------
# wss

def _wss_talk(port, ctx):
    big = bytes(range(256)) * 2048   # 512 KiB

    async def talk():
        async with websockets.connect(f"wss://a.example.com:{port}/chat", ssl=ctx,
                                      host="127.0.0.1", port=port,
                                      server_hostname="a.example.com", max_size=None) as ws:
            await ws.send("hello wss")
            text = await ws.recv()
            await ws.send(big)
            data = await ws.recv()
            await ws.close()
            return text, data, ws.close_code

    text, data, code = asyncio.run(asyncio.wait_for(talk(), SOCK_TIMEOUT * 3))
    assert text == "hello wss"
    assert data == big
    assert code == 1000


@pytest.mark.parametrize("reencrypt", [False, True], ids=["offload", "reencrypt"])
def test_wss_through_https_listener(fulcrum, port, p, reencrypt):
    srv = WsEcho(server_ctx(p.local) if reencrypt else None)
    try:
        pool_kw = {"ws": {"protocol": "https",
                          "tls": {"ca": p.root.crt, "server_name": "localhost"}}} if reencrypt \
            else None
        fulcrum(https_config(port, {"ws": [srv.address]}, [p.a], pool_kw=pool_kw))
        _wss_talk(port, client_ctx(p))
        assert srv.paths and srv.paths[0] == "/chat"
    finally:
        srv.stop()



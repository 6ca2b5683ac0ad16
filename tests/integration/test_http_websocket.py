"""WebSocket through an http listener: the upgrade is forwarded, a 101 turns
the connection into a tunnel, anything else keeps it HTTP."""

import asyncio
import os
import socket
import threading
import time

import websockets

from conftest import fmt_addr, free_port, make_config, recv_exact, SOCK_TIMEOUT


class WsEchoServer:
    """A websockets echo server (with TLS when given ssl_ctx) on its own event
    loop thread; it records the path of each connection."""

    def __init__(self, ssl_ctx=None):
        self.port = free_port()
        self.address = fmt_addr("127.0.0.1", self.port)
        self.connections = 0
        self.paths = []
        self.ssl_ctx = ssl_ctx
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(SOCK_TIMEOUT)

    async def _echo(self, ws, path=None):
        self.connections += 1
        self.paths.append(path or getattr(ws, "path", None))
        async for msg in ws:
            await ws.send(msg)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await websockets.serve(self._echo, "127.0.0.1", self.port,
                                                 ssl=self.ssl_ctx, max_size=None)
            self.ready.set()
            await self.server.wait_closed()

        self.loop.run_until_complete(main())

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(SOCK_TIMEOUT)


def ws_config(port, server_address, **timeouts):
    lst = {"name": "web", "bind": fmt_addr("127.0.0.1", port), "protocol": "http", "pool": "ws"}
    if timeouts:
        lst["timeouts"] = timeouts
    pool = {"name": "ws", "protocol": "http", "servers": [{"address": server_address}]}
    return make_config([lst], [pool], workers=1, log={"format": "json"})


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, SOCK_TIMEOUT * 2))


def test_websocket_echo_text_binary_and_close(fulcrum, port):
    srv = WsEchoServer()
    try:
        f = fulcrum(ws_config(port, srv.address))
        big = os.urandom(1 << 20)

        async def talk():
            async with websockets.connect(f"ws://127.0.0.1:{port}/chat", max_size=None) as ws:
                await ws.send("hello")
                text = await ws.recv()
                await ws.send(big)
                data = await ws.recv()
                await ws.close()
                return text, data, ws.close_code

        text, data, code = run(talk())
        assert text == "hello"
        assert data == big
        assert code == 1000
        recs = f.wait_access(2)
        http = [r for r in recs if r.get("status") == 101]
        assert http and http[0]["cause"] == "upgraded"
        tunnel = [r for r in recs if "duration_ms" in r]
        assert tunnel and tunnel[0]["cause"] == "closed"
        assert int(tunnel[0]["bytes_in"]) > len(big) and int(tunnel[0]["bytes_out"]) > len(big)
    finally:
        srv.stop()


def test_handshake_without_key_or_version_is_refused(fulcrum, backend, port):
    b = backend("B")
    fulcrum(ws_config(port, b.address))
    for extra in (b"Sec-WebSocket-Version: 13\r\n", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"):
        s = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  + extra + b"\r\n")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400 "), reply
        assert b"Connection: close" in reply
        s.close()
    time.sleep(0.2)
    assert b.accepted == 0, "a refused handshake reached the server"


def test_upgrade_refused_by_the_server_stays_http(fulcrum, backend, port):
    """A server that answers 200 instead of 101: the answer is passed on and
    the client connection keeps serving HTTP requests."""
    def plain(b, conn):
        buf = b""
        for _ in range(100):
            while b"\r\n\r\n" not in buf:
                d = conn.sock.recv(65536)
                if not d:
                    return
                buf += d
            head, _, buf = buf.partition(b"\r\n\r\n")
            conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nno\n")

    b = backend("B", handler=plain)
    fulcrum(ws_config(port, b.address))
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    first = b""
    while not first.endswith(b"no\n"):
        d = s.recv(4096)
        assert d, "closed before the answer"
        first += d
    assert first.startswith(b"HTTP/1.1 200 ")
    assert b"upgrade" not in first.lower()
    s.sendall(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
    second = b""
    while not second.endswith(b"no\n"):
        d = s.recv(4096)
        assert d, "the connection did not stay HTTP"
        second += d
    assert second.startswith(b"HTTP/1.1 200 ")
    s.close()


def test_idle_tunnel_is_closed_after_timeouts_tunnel(fulcrum, port):
    srv = WsEchoServer()
    try:
        f = fulcrum(ws_config(port, srv.address, tunnel="500ms"))

        async def idle():
            async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
                t0 = time.monotonic()
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    return time.monotonic() - t0
                return None

        waited = run(idle())
        assert waited is not None and 0.3 < waited < 3, waited
        recs = f.wait_access(2)
        assert any(r.get("cause") in ("client_idle_timeout", "server_idle_timeout") for r in recs)
    finally:
        srv.stop()

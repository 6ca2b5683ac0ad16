"""The counters an operator reads: responses by class per listener, route
and server, refusals by status, and the latency histogram."""

import socket

from conftest import SOCK_TIMEOUT
from http_helpers import client, http_backend, http_config


def counter_lines(f):
    f.stop()
    return [ln.split(" counters ", 1)[1] for ln in f.error_log().splitlines() if " counters " in ln]


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
    s.sendall(data)
    reply = s.recv(65536)
    s.close()
    return reply


def test_responses_refusals_and_latency_are_counted(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    routes = [{"name": "hello", "match": {"path": "/hello"}, "respond": {"status": 200, "body": "hi"}},
              {"name": "app", "match": {"path_prefix": "/app"}, "pool": "p"}]
    f = fulcrum(http_config(port, {"p": [a]}, routes=routes, default_pool=None))
    c = client(connect, port)
    for _ in range(3):
        assert c.request("GET", "/app/x").status == 200
    assert c.request("GET", "/hello").status == 200
    assert c.request("GET", "/nowhere").status == 404
    assert raw(port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")          # no Host
    assert raw(port, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n") \
        .startswith(b"HTTP/1.1 501 ")

    lines = counter_lines(f)
    lst = [fields(ln) for ln in lines if ln.startswith("listener=web retries=")][0]
    assert lst["2xx"] == "4" and lst["4xx"] == "2" and lst["5xx"] == "2", lst
    assert lst["rejected_400"] == "1" and lst["rejected_505"] == "1" and lst["rejected_501"] == "1"
    hist = [int(x) for x in lst["latency_ms_le_1,2,5,10,25,50,100,250,500,1000,5000,inf"].split(",")]
    assert sum(hist) == 8 and len(hist) == 12
    routes_seen = {fields(ln)["route"]: fields(ln) for ln in lines if " route=" in ln}
    assert routes_seen["app"]["requests"] == "3" and routes_seen["app"]["2xx"] == "3"
    assert routes_seen["hello"]["requests"] == "1"
    srv = [fields(ln) for ln in lines if ln.startswith("pool=p server=")][0]
    assert srv["2xx"] == "3" and srv["streams"] == "3"

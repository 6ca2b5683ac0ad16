"""Header, query and regex matchers, splits, path rewrites, header edits,
sticky cookies, hash keys and error pages."""

import re

from http_helpers import client, http_backend, http_config, wait_records


def served_by(r):
    return r.headers.get("x-backend")


def test_header_query_and_regex_matchers(fulcrum, backend, connect, port):
    a, b = http_backend(backend, "A"), http_backend(backend, "B")
    routes = [
        {"match": {"header": {"X-Env": "staging"}}, "pool": "b"},
        {"match": {"header": {"User-Agent": "~(?i)^curl/"}, "query": {"v": "2"}}, "pool": "b"},
        {"match": {"path_regex": "^/img/[0-9]+\\.png$"}, "pool": "b"},
    ]
    fulcrum(http_config(port, {"a": [a], "b": [b]}, routes=routes))
    c = client(connect, port)
    assert served_by(c.request(headers=[("X-Env", "staging")])) == "B"
    assert served_by(c.request(headers=[("X-Env", "prod")])) == "A"
    assert served_by(c.request(target="/x?v=2", headers=[("User-Agent", "CURL/8")])) == "B"
    assert served_by(c.request(target="/x?v=3", headers=[("User-Agent", "curl/8")])) == "A"
    assert served_by(c.request(target="/x?v=2", headers=[("User-Agent", "wget")])) == "A"
    assert served_by(c.request(target="/img/12.png")) == "B"
    assert served_by(c.request(target="/img/x.png")) == "A"


def test_rewrite_and_header_edits(fulcrum, backend, connect, port):
    def respond(req):
        from http_helpers import Resp
        return Resp(200, req.target.encode(), headers=[("Server", "secret/1.0"), ("X-Keep", "1")])
    a = http_backend(backend, "A", respond=respond)
    routes = [{"match": {"path_prefix": "/api/"}, "rewrite": {"path_prefix": "/v1/"},
               "request_headers": {"set": {"X-Route": "api"}, "add": {"X-Extra": "1"},
                                   "remove": ["X-Secret"]},
               "response_headers": {"add": {"X-Served-By": "fulcrum"}, "remove": ["Server"]},
               "pool": "a"}]
    fulcrum(http_config(port, {"a": [a]}, routes=routes))
    c = client(connect, port)
    r = c.request(target="/api/items?x=1",
                  headers=[("X-Secret", "s"), ("X-Route", "client-value")])
    assert r.status == 200 and r.body == b"/v1/items?x=1"
    assert r.headers.all("server") == [] and r.headers.get("x-served-by") == "fulcrum"
    assert r.headers.get("x-keep") == "1"
    req = a.wait_requests(1)[0]
    assert req.headers.all("x-route") == ["api"]
    assert req.headers.all("x-extra") == ["1"]
    assert req.headers.all("x-secret") == []


def test_split_follows_the_weights(fulcrum, backend, connect, port):
    a, b = http_backend(backend, "A"), http_backend(backend, "B")
    routes = [{"split": [{"pool": "a", "weight": 90}, {"pool": "b", "weight": 10}]}]
    fulcrum(http_config(port, {"a": [a], "b": [b]}, routes=routes, default_pool=None))
    c = client(connect, port)
    n = 2000
    to_b = sum(served_by(c.request(target=f"/{i}")) == "B" for i in range(n))
    assert abs(to_b / n - 0.10) <= 0.05, to_b   # 10% of requests, within 5 points


def test_sticky_cookie_keeps_a_client_on_its_server(fulcrum, backend, connect, port):
    a, b = http_backend(backend, "A"), http_backend(backend, "B")
    fulcrum(http_config(port, {"p": [a, b]}, pool_kw={"p": {"sticky": {"cookie": "SRV"}}}))
    c = client(connect, port)
    first = c.request()
    cookie = first.headers.get("set-cookie")
    assert cookie and re.match(r"SRV=[0-9a-f]{16}; Path=/; HttpOnly$", cookie), cookie
    assert "127.0.0.1" not in cookie
    value = cookie.split(";")[0]
    for _ in range(10):
        r = c.request(headers=[("Cookie", value)])
        assert served_by(r) == served_by(first)
        assert r.headers.all("set-cookie") == []
    # A cookie naming no server gets a new one.
    r = c.request(headers=[("Cookie", "SRV=0000000000000000")])
    assert r.headers.get("set-cookie", "").startswith("SRV=")


def test_hash_key_header_picks_the_server(fulcrum, backend, connect, port):
    servers = [http_backend(backend, n) for n in "ABCD"]
    fulcrum(http_config(port, {"p": servers}, pool_kw={"p": {"algorithm": "maglev",
                                                           "hash_key": "header:X-User"}}))
    c = client(connect, port)
    seen = {}
    for user in range(20):
        got = {served_by(c.request(headers=[("X-User", f"u{user}")])) for _ in range(3)}
        assert len(got) == 1, (user, got)
        seen[user] = got.pop()
    assert len(set(seen.values())) > 1, "every user hashed to one server"


def test_error_page_replaces_the_body(fulcrum, connect, port, tmp_path):
    page = tmp_path / "503.html"
    page.write_bytes(b"<h1>we are down</h1>\n")
    fulcrum(http_config(port, {"p": ["127.0.0.1:1"]},
                        listener_kw={"error_pages": {503: str(page)}}))
    r = client(connect, port).request()
    assert r.status == 503
    assert r.body == b"<h1>we are down</h1>\n"
    assert r.headers.get("content-type") == "text/html"


def echo_target(req):
    from http_helpers import Resp
    return Resp(200, req.target.encode())


# Spellings of /admin that a server reads as /admin; none may slip past a
# route that guards /admin.
ADMIN_SPELLINGS = ["/admin", "//admin", "/./admin", "/public/../admin", "/%61dmin",
                   "/public/%2E%2E/admin", "/public/.%2e/admin", "/x/y/../../admin/"]


def guard_config(port, a, **listener_kw):
    routes = [{"match": {"path_prefix": "/admin"}, "respond": {"status": 403, "body": "no\n"}}]
    return http_config(port, {"a": [a]}, routes=routes, listener_kw=listener_kw or None)


def test_path_spellings_cannot_bypass_a_route(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=echo_target)
    fulcrum(guard_config(port, a))
    c = client(connect, port)
    for t in ADMIN_SPELLINGS:
        r = c.request(target=t)
        assert r.status == 403, (t, r)
    assert a.requests == []
    # The server gets the path the route saw; the query is left as it came.
    for sent, seen in [("/a/./b//c", "/a/b/c"), ("/a/b/../c?q=/../x", "/a/c?q=/../x"),
                       ("/%7euser/%3f", "/~user/%3F"), ("/.well-known/x", "/.well-known/x"),
                       ("http://example.com/a/../b?x", "/b?x")]:
        r = c.request(target=sent)
        assert (r.status, r.body) == (200, seen.encode()), (sent, r)


def test_bad_paths_are_refused(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=echo_target)
    f = fulcrum(guard_config(port, a))
    for t in ["/..", "/a/../../b", "/%2e%2e/admin", "/x%zz", "/x%4"]:
        r = client(connect, port).request(target=t)
        assert r.status == 400, (t, r)
        assert r.headers.get("connection") == "close", r
    assert a.requests == []
    # Each refusal is logged with its cause and the target as received.
    recs = wait_records(f, 5)
    assert [r.get("cause") for r in recs] == ["bad_path"] * 5, recs
    assert "/%2e%2e/admin" in [r.get("target") for r in recs], recs


def test_normalize_path_false_forwards_the_path_as_received(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=echo_target)
    fulcrum(guard_config(port, a, normalize_path=False))
    c = client(connect, port)
    assert c.request(target="/admin").status == 403
    r = c.request(target="/public/../admin")
    assert (r.status, r.body) == (200, b"/public/../admin"), r


def test_escaped_slashes_are_kept_by_default(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=echo_target)
    fulcrum(guard_config(port, a))
    # Kept by default: one segment for the route, passed on as it came.
    r = client(connect, port).request(target="/public%2F..%2Fadmin")
    assert (r.status, r.body) == (200, b"/public%2F..%2Fadmin"), r


def test_escaped_slashes_reject(fulcrum, backend, connect, port):
    a = http_backend(backend, "A", respond=echo_target)
    f = fulcrum(guard_config(port, a, escaped_slashes="reject"))
    for t in ["/public%2F..%2Fadmin", "/a%5cb", "/a%2fb?x=1"]:
        r = client(connect, port).request(target=t)
        assert r.status == 400, (t, r)
    assert a.requests == []
    assert client(connect, port).request(target="/a/b?q=%2F").status == 200
    recs = wait_records(f, 4)
    assert [r.get("cause") for r in recs][:3] == ["bad_path"] * 3, recs


def test_normalised_paths_in_a_pipeline(fulcrum, backend, connect, port):
    """The path is rewritten in place in the input buffer; requests
    pipelined behind it, with their bodies, arrive intact."""
    from http_helpers import build

    def respond(req):
        from http_helpers import Resp
        return Resp(200, f"{req.method} {req.target} {req.body.decode()}".encode())
    a = http_backend(backend, "A", respond=respond)
    fulcrum(http_config(port, {"a": [a]}))
    c = client(connect, port)
    c.send(build("POST", "/x/../a//b?q=/../y", body=b"one") + build("GET", "/%7Eu/./c")
           + build("POST", "/plain", body=b"three") + build("GET", "//d"))
    bodies = [c.response().body for _ in range(4)]
    assert bodies == [b"POST /a/b?q=/../y one", b"GET /~u/c ", b"POST /plain three",
                      b"GET /d "], bodies

"""Routing on an http listener: host (exact and *.wildcard, case-insensitive,
port ignored), path_prefix, path, method and source; first match wins; the
listener pool for unmatched requests, 404 without it; respond and redirect
routes."""

import pytest

from http_helpers import build, client, http_backend, http_config, wait_records


def backends(backend, *names):
    return {n: http_backend(backend, n) for n in names}


def who(connect, port, target="/", host="example.com", method="GET", source=None, body=None):
    """Which backend answered (its name), or the status fulcrum answered with."""
    c = client(connect, port, source=source)
    c.send(build(method, target, host, body=body))
    r = c.response(method)
    if r.status != 200:
        return r.status
    return r.headers.get("x-backend")


def test_host_exact_and_wildcard(fulcrum, backend, connect, port):
    b = backends(backend, "api", "wild", "default")
    fulcrum(http_config(port, {"default": [b["default"]], "api": [b["api"]], "wild": [b["wild"]]},
                        routes=[{"name": "api", "match": {"host": "api.example.com"}, "pool": "api"},
                                {"name": "wild", "match": {"host": "*.example.com"}, "pool": "wild"}]))
    cases = {
        "api.example.com": "api",
        "API.Example.COM": "api",
        "api.example.com:8080": "api",
        "www.example.com": "wild",
        "A.B.EXAMPLE.com:81": "wild",
        "example.com": "default",            # *.example.com needs a subdomain
        "api.example.com.evil.net": "default",
        "notexample.com": "default",
        "xexample.com": "default",
        "api.example.com.": "api",           # the fully qualified name is the same host
        "api.example.com.:443": "api",
        "www.example.com.": "wild",
    }
    got = {h: who(connect, port, host=h) for h in cases}
    assert got == cases


def test_host_route_uses_the_absolute_form_authority(fulcrum, backend, connect, port):
    b = backends(backend, "api", "default")
    fulcrum(http_config(port, {"default": [b["default"]], "api": [b["api"]]},
                        routes=[{"match": {"host": "api.example.com"}, "pool": "api"}]))
    assert who(connect, port, target="http://api.example.com/x", host="other.example") == "api"


def test_path_prefix_and_exact_path(fulcrum, backend, connect, port):
    b = backends(backend, "prefix", "exact", "default")
    fulcrum(http_config(port, {"default": [b["default"]], "prefix": [b["prefix"]],
                               "exact": [b["exact"]]},
                        routes=[{"match": {"path": "/login"}, "pool": "exact"},
                                {"match": {"path_prefix": "/api/"}, "pool": "prefix"}]))
    cases = {
        "/login": "exact",
        "/login?next=/api/": "exact",         # the query is not part of the path
        "/login/": "default",
        "/loginx": "default",
        "/LOGIN": "default",                  # paths are case-sensitive
        "/api/": "prefix",
        "/api/v1/users?id=3": "prefix",
        "/api": "default",
        "/apix/": "default",
        "/x?q=/api/": "default",
    }
    got = {t: who(connect, port, target=t) for t in cases}
    assert got == cases


def test_method_match(fulcrum, backend, connect, port):
    b = backends(backend, "writes", "default")
    fulcrum(http_config(port, {"default": [b["default"]], "writes": [b["writes"]]},
                        routes=[{"match": {"method": ["POST", "PUT"]}, "pool": "writes"}]))
    assert who(connect, port, method="POST", body=b"x") == "writes"
    assert who(connect, port, method="PUT", body=b"x") == "writes"
    assert who(connect, port, method="GET") == "default"
    assert who(connect, port, method="DELETE") == "default"
    assert who(connect, port, method="post", body=b"x") == "default"   # methods are case-sensitive


def test_source_match(fulcrum, backend, connect, port):
    b = backends(backend, "office", "default")
    fulcrum(http_config(port, {"default": [b["default"]], "office": [b["office"]]},
                        routes=[{"match": {"source": "127.0.0.2/32"}, "pool": "office"}]))
    assert who(connect, port, source="127.0.0.2") == "office"
    assert who(connect, port, source="127.0.0.1") == "default"
    assert who(connect, port, source="127.0.0.3") == "default"


def test_all_conditions_must_hold_and_first_match_wins(fulcrum, backend, connect, port):
    b = backends(backend, "first", "second", "third")
    fulcrum(http_config(port, {"first": [b["first"]], "second": [b["second"]],
                               "third": [b["third"]]},
                        routes=[{"name": "r1", "match": {"host": "a.example", "path_prefix": "/x/",
                                                         "method": "GET"}, "pool": "first"},
                                {"name": "r2", "match": {"path_prefix": "/x/"}, "pool": "second"},
                                {"name": "r3", "match": {"path_prefix": "/"}, "pool": "third"},
                                {"name": "r4", "match": {"path_prefix": "/x/"}, "pool": "first"}],
                        default_pool=None))
    assert who(connect, port, "/x/1", host="a.example") == "first"
    assert who(connect, port, "/x/1", host="b.example") == "second"
    assert who(connect, port, "/x/1", host="a.example", method="HEAD") == "second"
    assert who(connect, port, "/y", host="a.example") == "third"


def test_no_match_and_no_listener_pool_is_404(fulcrum, backend, connect, port):
    b = backends(backend, "api")
    f = fulcrum(http_config(port, {"api": [b["api"]]}, default_pool=None,
                            routes=[{"match": {"path_prefix": "/api/"}, "pool": "api"}]))
    r = client(connect, port).request("GET", "/other")
    assert r.status == 404, r
    assert client(connect, port).request("GET", "/api/ok").status == 200
    assert [q.target for q in b["api"].wait_requests(1)] == ["/api/ok"]
    assert b["api"].accepted == 1
    rec = wait_records(f, 1, pred=lambda r: r["status"] == "404")[0]
    assert rec["route"] == "-" and rec["server"] == "-"


def test_respond_route(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, routes=[
        {"name": "health", "match": {"path": "/healthz"},
         "respond": {"status": 503, "body": '{"ok": false}', "content_type": "application/json"}},
        {"name": "plain", "match": {"path": "/plain"}, "respond": {"body": "hi\n"}},
    ]))
    r = client(connect, port).request("GET", "/healthz")
    assert r.status == 503 and r.body == b'{"ok": false}', r
    assert r.headers.all("content-type") == ["application/json"], r
    assert r.headers.all("content-length") == [str(len(b'{"ok": false}'))]
    r = client(connect, port).request("GET", "/plain")
    assert r.status == 200 and r.body == b"hi\n", r
    assert r.headers.all("content-type") == ["text/plain"]
    r = client(connect, port).request("HEAD", "/plain")
    assert r.status == 200 and r.body == b"", r
    assert a.accepted == 0
    recs = wait_records(f, 3)
    assert [x["route"] for x in recs] == ["health", "plain", "plain"]


@pytest.mark.parametrize("kind", ["respond", "redirect", "404"])
def test_connection_after_an_answer_from_fulcrum(fulcrum, backend, connect, port, kind):
    """An answer fulcrum makes itself (respond, redirect, 404) either says
    Connection: close and closes, or leaves the connection usable: a
    keep-alive client's next request must not meet a closed connection."""
    fulcrum(http_config(port, {}, default_pool=None, routes=[
        {"match": {"path": "/respond"}, "respond": {"body": "ok"}},
        {"match": {"path": "/redirect"}, "redirect": {"to": "/elsewhere", "code": 301}},
        {"match": {"path": "/respond2"}, "respond": {"body": "second"}}]))
    c = client(connect, port)
    r = c.request("GET", "/" + kind)
    assert r.status in (200, 301, 404), r
    if r.closes:
        assert c.closed()
        return
    r2 = c.request("GET", "/respond2")
    assert r2.status == 200 and r2.body == b"second", r2


def test_pipelined_requests_after_an_answer_from_fulcrum(fulcrum, backend, connect, port):
    a = http_backend(backend, "A")
    fulcrum(http_config(port, {"p": [a]}, routes=[
        {"match": {"path": "/old"}, "redirect": {"to": "/new", "code": 308}}]))
    c = client(connect, port)
    c.send(build("GET", "/old") + build("GET", "/new"))
    r = c.response()
    assert r.status == 308, r
    if r.closes:
        return
    r2 = c.response()
    assert r2.status == 200 and r2.body == b"A GET /new\n", r2


def test_respond_route_reason_phrase(fulcrum, backend, connect, port):
    """A status that fulcrum answers itself carries its own reason phrase."""
    fulcrum(http_config(port, {}, default_pool=None, routes=[
        {"match": {"path": "/made"}, "respond": {"status": 201, "body": "made"}},
        {"match": {"path": "/gone"}, "respond": {"status": 410, "body": "gone"}}]))
    c = client(connect, port)
    r = c.request("GET", "/made")
    assert r.status == 201 and r.reason == "Created", r
    r = c.request("GET", "/gone")
    assert r.status == 410 and r.reason == "Gone", r


def test_respond_route_after_a_request_body(fulcrum, backend, connect, port):
    fulcrum(http_config(port, {}, default_pool=None, routes=[
        {"match": {"path": "/sink"}, "respond": {"status": 202, "body": "queued"}}]))
    c = client(connect, port)
    r = c.request("POST", "/sink", body=b"data" * 100)
    assert r.status == 202 and r.body == b"queued", r


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_codes(fulcrum, backend, connect, port, code):
    a = http_backend(backend, "A")
    f = fulcrum(http_config(port, {"p": [a]}, routes=[
        {"name": "move", "match": {"host": "old.example"},
         "redirect": {"to": "https://{host}{path}", "code": code}}]))
    r = client(connect, port).request("GET", "/a/b?q=1&r=%20", host="old.example")
    assert r.status == code, r
    assert r.headers.all("location") == ["https://old.example/a/b?q=1&r=%20"], r
    assert client(connect, port).request("GET", "/", host="new.example").status == 200
    assert a.accepted == 1 and [q.headers.get("host") for q in a.requests] == ["new.example"]
    rec = wait_records(f, 1, pred=lambda r: r["status"] == str(code))[0]
    assert rec["route"] == "move"


def test_redirect_scheme_on_plain_http(fulcrum, connect, port):
    fulcrum(http_config(port, {}, default_pool=None, routes=[
        {"match": {"path_prefix": "/"}, "redirect": {"to": "{scheme}://{host}/moved{path}"}}]))
    r = client(connect, port).request("GET", "/x?y=1", host="example.com")
    assert r.status == 302, r
    assert r.headers.get("location") == "http://example.com/moved/x?y=1"


def test_redirect_default_code_and_fixed_target(fulcrum, connect, port):
    fulcrum(http_config(port, {}, default_pool=None, routes=[
        {"match": {"path_prefix": "/"}, "redirect": {"to": "https://www.example.com{path}"}}]))
    c = client(connect, port)
    r = c.request("GET", "/shop?id=9", host="example.com")
    assert r.status == 302, r
    assert r.headers.get("location") == "https://www.example.com/shop?id=9"

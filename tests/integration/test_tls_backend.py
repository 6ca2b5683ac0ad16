"""TLS from fulcrum to the servers (https pools, tcp pools with tls):
certificate and hostname verification (a failure is a 502 with the reason
in the log), the SNI sent (server_name, sni_from_client), a client
certificate for servers that require one, min_version, ALPN and session
reuse to the servers."""

import ssl

import pytest

from http_helpers import http_backend
from tls_helpers import (client_ctx, conn_infos, https_config, https_get, server_ctx,
                         tls_http_backend)


def reencrypt(port, srv, p, pool_tls, listener_certs=None, **kw):
    tls = {"ca": p.root.crt}
    tls.update(pool_tls)
    return https_config(port, {"p": [srv]}, listener_certs or [p.a, p.b],
                        pool_kw={"p": {"protocol": "https", "tls": tls}}, **kw)


def get(port, p, sni="a.example.com", path="/"):
    st, _, body, _ = https_get(port, client_ctx(p), path, sni=sni)
    return st, body


@pytest.mark.parametrize("cert,reason", [
    ("rogue_srv", "unable to get local issuer certificate|self-signed certificate in certificate chain"),
    ("expired", "certificate has expired"),
])
def test_unverifiable_server_gives_502(fulcrum, backend, port, p, cert, reason):
    srv = tls_http_backend(backend, server_ctx(getattr(p, cert)), "S")
    f = fulcrum(reencrypt(port, srv, p, {"verify_hostname": False}))
    st, body = get(port, p)
    assert st == 502, (st, body)
    assert srv.wait_requests(1, timeout=0.5) == [], "a request went to an unverified server"
    f.wait_error_log(rf"certificate verify failed: ({reason})")


def test_hostname_mismatch_gives_502(fulcrum, backend, port, p):
    srv = tls_http_backend(backend, server_ctx(p.local), "S")
    f = fulcrum(reencrypt(port, srv, p, {"server_name": "wrong.example.com"}))
    st, _ = get(port, p)
    assert st == 502
    f.wait_error_log(r"certificate verify failed: [Hh]ostname mismatch")
    assert srv.wait_requests(1, timeout=0.5) == []


def test_verify_hostname_false_accepts_other_name(fulcrum, backend, port, p):
    srv = tls_http_backend(backend, server_ctx(p.local), "S")
    fulcrum(reencrypt(port, srv, p, {"server_name": "wrong.example.com",
                                     "verify_hostname": False}))
    assert get(port, p) == (200, b"S GET /\n")
    assert conn_infos(srv.backend)[0]["sni"] == "wrong.example.com"


def test_verify_false_accepts_any_certificate(fulcrum, backend, port, p):
    srv = tls_http_backend(backend, server_ctx(p.rogue_srv), "S")
    fulcrum(reencrypt(port, srv, p, {"verify": False}))
    assert get(port, p) == (200, b"S GET /\n")


def test_system_trust_store_is_the_default_ca(fulcrum, backend, port, p):
    """Without ca, the system bundle is used: our test root is not in it."""
    srv = tls_http_backend(backend, server_ctx(p.local), "S")
    f = fulcrum(https_config(port, {"p": [srv]}, [p.a], pool_kw={
        "p": {"protocol": "https", "tls": {"server_name": "localhost"}}}))
    assert get(port, p)[0] == 502
    f.wait_error_log(r"certificate verify failed: ")


def sni_switching_server(backend, p):
    """A TLS HTTP server with a certificate for a.example.com and, when asked
    for b.example.com, one for b.example.com."""
    sctx, sctx2 = server_ctx(p.a), server_ctx(p.b)

    def pick(sslobj, name):
        if name == "b.example.com":
            sslobj.context = sctx2

    srv = tls_http_backend(backend, sctx, "S")
    inner = sctx.sni_callback
    sctx.sni_callback = lambda s, n, c: (inner(s, n, c), pick(s, n))[0]
    return srv


def test_sni_from_client(fulcrum, backend, port, p):
    """sni_from_client: the server gets (and must have a certificate for) the
    name the client asked for. (max_idle: 0: a new server connection for
    every request.)"""
    srv = sni_switching_server(backend, p)
    cfg = reencrypt(port, srv, p, {"sni_from_client": True})
    cfg["pools"][0]["keepalive"] = {"max_idle": 0}
    fulcrum(cfg)
    assert get(port, p, sni="a.example.com") == (200, b"S GET /\n")
    assert get(port, p, sni="b.example.com") == (200, b"S GET /\n")
    assert [i["sni"] for i in conn_infos(srv.backend)] == ["a.example.com", "b.example.com"]


def test_sni_from_client_connections_are_kept_apart_by_name(fulcrum, backend, port, p):
    """With keep-alive to the servers, a server connection opened (and
    verified) for a.example.com must not carry the request of a client that
    asked for b.example.com: that request needs a connection whose SNI and
    certificate are b.example.com's."""
    srv = sni_switching_server(backend, p)
    fulcrum(reencrypt(port, srv, p, {"sni_from_client": True}, workers=1))
    assert get(port, p, sni="a.example.com") == (200, b"S GET /\n")
    assert get(port, p, sni="b.example.com") == (200, b"S GET /\n")
    assert get(port, p, sni="a.example.com") == (200, b"S GET /\n")
    reqs = srv.wait_requests(3)
    infos = conn_infos(srv.backend)
    got = [(r.headers.get("host"), infos[r.conn]["sni"]) for r in reqs]
    assert got == [("a.example.com", "a.example.com"), ("b.example.com", "b.example.com"),
                   ("a.example.com", "a.example.com")], got


def test_server_requiring_a_client_certificate(fulcrum, backend, port, p):
    sctx = server_ctx(p.local, client_ca=p.clientca.crt, require_client=True)
    srv = tls_http_backend(backend, sctx, "S")
    fulcrum(reencrypt(port, srv, p, {"server_name": "localhost", "cert": p.alice.crt,
                                     "key": p.alice.key}))
    assert get(port, p) == (200, b"S GET /\n")
    info = conn_infos(srv.backend)[0]
    assert info["peer_cert"] and ssl.DER_cert_to_PEM_cert(info["peer_cert"]).strip() == \
        open(p.alice.crt).read().strip()


def test_server_requiring_a_client_certificate_without_one(fulcrum, backend, port, p):
    sctx = server_ctx(p.local, client_ca=p.clientca.crt, require_client=True)
    srv = tls_http_backend(backend, sctx, "S")
    fulcrum(reencrypt(port, srv, p, {"server_name": "localhost"}))
    assert get(port, p)[0] == 502
    assert srv.wait_requests(1, timeout=0.5) == []


def test_pool_min_version(fulcrum, backend, port, p):
    srv = tls_http_backend(backend, server_ctx(p.local, maxv=ssl.TLSVersion.TLSv1_2), "S")
    f = fulcrum(reencrypt(port, srv, p, {"server_name": "localhost", "min_version": "1.3"}))
    assert get(port, p)[0] == 502
    assert srv.wait_requests(1, timeout=0.5) == []
    f.stop()
    srv2 = tls_http_backend(backend, server_ctx(p.local, maxv=ssl.TLSVersion.TLSv1_2), "T")
    from conftest import free_port
    port2 = free_port()
    fulcrum(reencrypt(port2, srv2, p, {"server_name": "localhost"}))
    assert get(port2, p) == (200, b"T GET /\n")
    assert conn_infos(srv2.backend)[0]["version"] == "TLSv1.2"


def test_alpn_http11_to_the_server(fulcrum, backend, port, p):
    srv = tls_http_backend(backend, server_ctx(p.local, alpn=["h2", "http/1.1"]), "S")
    fulcrum(reencrypt(port, srv, p, {"server_name": "localhost"}))
    assert get(port, p)[0] == 200
    assert conn_infos(srv.backend)[0]["alpn"] == "http/1.1"


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
def test_sessions_to_the_server_are_resumed(fulcrum, backend, port, p, maxv):
    """With keep-alive off (max_idle: 0) every request is a new server
    connection; after the first, they resume the server's session."""
    srv = tls_http_backend(backend, server_ctx(p.local, maxv=maxv), "S")
    cfg = reencrypt(port, srv, p, {"server_name": "localhost"}, workers=1)
    cfg["pools"][0]["keepalive"] = {"max_idle": 0}
    fulcrum(cfg)
    for i in range(4):
        assert get(port, p, path=f"/{i}") == (200, f"S GET /{i}\n".encode())
    infos = conn_infos(srv.backend)
    assert len(infos) == 4, "the server connections were reused, not reopened"
    assert [i["reused"] for i in infos] == [False, True, True, True], infos


def test_backend_tls_failure_does_not_affect_other_pools(fulcrum, backend, port, p):
    bad = tls_http_backend(backend, server_ctx(p.rogue_srv), "BAD")
    good = http_backend(backend, "GOOD")
    routes = [{"match": {"path_prefix": "/bad"}, "pool": "bad"}]
    cfg = https_config(port, {"good": [good], "bad": [bad]}, [p.a], routes=routes,
                       pool_kw={"bad": {"protocol": "https", "tls": {"ca": p.root.crt}}})
    fulcrum(cfg)
    assert get(port, p, path="/bad")[0] == 502
    assert get(port, p, path="/ok") == (200, b"GOOD GET /ok\n")

"""Client certificates on TLS listeners: client_auth required / optional,
a CRL with a revoked certificate, a certificate from an unknown CA, the
X-Client-Cert-* fields (forward_client_cert) and routes on
client_cert_subject."""

import ssl

import pytest

from http_helpers import http_backend
from tls_helpers import (client_ctx, curl, https_config, https_get, ssl_config,
                         tls_connect, tls_counters)

CERT_FIELDS = ("x-client-cert-subject", "x-client-cert-issuer", "x-client-cert-serial",
               "x-client-cert-fingerprint", "x-client-cert-verify")


def auth(p, mode="required", crl=False, **kw):
    d = {"mode": mode, "ca": p.clientca.crt}
    if crl:
        d["crl"] = p.crl
    d.update(kw)
    return d


def refused(port, ctx):
    """True when the TLS connection fails, at the handshake or (TLS 1.3:
    the server checks the client's certificate after the client finished)
    at the first request."""
    try:
        st, _, _, _ = https_get(port, ctx)
    except (ssl.SSLError, OSError, EOFError):
        return True
    return False


def test_required_refuses_a_client_without_certificate(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"client_auth": auth(p)}))
    assert refused(port, client_ctx(p)), "served a client without a certificate"
    assert refused(port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2))
    st, _, body, _ = https_get(port, client_ctx(p, cert=p.alice))
    assert st == 200 and body == b"A GET /\n"
    assert len(a.wait_requests(1, timeout=0.5)) == 1, "a refused client reached the server"
    c = tls_counters(f, "web")
    assert c["tls_failed_client_certificate"] == 2, c
    assert c["tls_handshakes"] == 1, c


def test_required_with_curl(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"client_auth": auth(p)}))
    url = f"https://a.example.com:{port}/me"
    res = f"a.example.com:{port}:127.0.0.1"
    r = curl(url, "--cacert", p.root.crt, "--cert", p.alice.crt, "--key", p.alice.key,
             resolve=res)
    assert r.returncode == 0 and r.stdout == "A GET /me\n", r.stderr
    r = curl(url, "--cacert", p.root.crt, resolve=res)
    assert r.returncode != 0 and r.stdout == "", r.stdout


def test_certificate_from_unknown_ca_is_refused(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"client_auth": auth(p)}))
    assert refused(port, client_ctx(p, cert=p.rogue_cli))
    assert refused(port, client_ctx(p, cert=p.rogue_cli, maxv=ssl.TLSVersion.TLSv1_2))
    assert a.wait_requests(1, timeout=0.5) == []


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_revoked_certificate_is_refused(fulcrum, backend, port, p, mode):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         tls_kw={"client_auth": auth(p, mode, crl=True)}))
    assert refused(port, client_ctx(p, cert=p.mallory)), "a revoked certificate was accepted"
    assert refused(port, client_ctx(p, cert=p.mallory, maxv=ssl.TLSVersion.TLSv1_2))
    # Not revoked: fine.
    st, _, _, _ = https_get(port, client_ctx(p, cert=p.bob))
    assert st == 200
    assert [r.target for r in a.wait_requests(1, timeout=0.5)] == ["/"]


def test_revoked_certificate_accepted_without_crl(fulcrum, backend, port, p):
    """The control of the test above: without crl, mallory's certificate is valid."""
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"client_auth": auth(p)}))
    st, _, _, _ = https_get(port, client_ctx(p, cert=p.mallory))
    assert st == 200


def test_optional_accepts_clients_with_and_without_certificates(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         tls_kw={"client_auth": auth(p, "optional"), "forward_client_cert": True}))
    st, _, _, _ = https_get(port, client_ctx(p))
    assert st == 200
    st, _, _, _ = https_get(port, client_ctx(p, cert=p.alice))
    assert st == 200
    # A certificate that is sent is verified: an unknown CA fails.
    assert refused(port, client_ctx(p, cert=p.rogue_cli))
    none, alice = a.wait_requests(2)
    assert none.headers.get("x-client-cert-verify") == "NONE", none
    assert none.headers.get("x-client-cert-subject") is None, none
    assert alice.headers.get("x-client-cert-verify") == "SUCCESS", alice


def test_forwarded_client_certificate_fields(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         tls_kw={"client_auth": auth(p), "forward_client_cert": True}))
    st, _, _, _ = https_get(port, client_ctx(p, cert=p.alice))
    assert st == 200
    h = a.wait_requests(1)[0].headers
    for name in CERT_FIELDS:
        assert len(h.all(name)) == 1, (name, h)
    assert h.get("x-client-cert-subject") == "CN=alice,O=Example"
    assert h.get("x-client-cert-issuer") == "CN=Fulcrum Test Client CA,O=Fulcrum Test"
    assert int(h.get("x-client-cert-serial"), 16) == p.alice.serial
    assert h.get("x-client-cert-fingerprint") == p.alice.sha256
    assert h.get("x-client-cert-verify") == "SUCCESS"


def test_client_sent_cert_fields_are_removed(fulcrum, backend, port, p):
    """A client cannot pretend to have a certificate: its X-Client-Cert-*
    fields never reach the server, with or without forward_client_cert."""
    spoof = [("X-Client-Cert-Subject", "CN=admin,O=Example"), ("X-Client-Cert-Verify", "SUCCESS"),
             ("x-client-cert-fingerprint", "00" * 32), ("X-Client-Cert-Whatever", "1")]
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         tls_kw={"client_auth": auth(p, "optional"), "forward_client_cert": True}))
    https_get(port, client_ctx(p), headers=spoof)
    https_get(port, client_ctx(p, cert=p.bob), headers=spoof)
    none, bob = a.wait_requests(2)
    assert none.headers.all("x-client-cert-verify") == ["NONE"], none
    assert none.headers.all("x-client-cert-subject") == [], none
    assert none.headers.all("x-client-cert-whatever") == [], none
    assert bob.headers.all("x-client-cert-subject") == ["CN=bob,O=Example"], bob
    assert bob.headers.all("x-client-cert-fingerprint") == [p.bob.sha256], bob
    assert bob.headers.all("x-client-cert-whatever") == [], bob


def test_no_cert_fields_without_forward_client_cert(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"client_auth": auth(p)}))
    https_get(port, client_ctx(p, cert=p.alice),
              headers=[("X-Client-Cert-Subject", "CN=admin,O=Example")])
    req = a.wait_requests(1)[0]
    assert not [k for k in req.headers.names() if k.startswith("x-client-cert-")], req


def test_routes_on_client_cert_subject(fulcrum, backend, port, p):
    a, b, d = http_backend(backend, "A"), http_backend(backend, "B"), http_backend(backend, "D")
    routes = [{"match": {"client_cert_subject": "CN=alice,O=Example"}, "pool": "pa"},
              {"match": {"client_cert_subject": "~^CN=b[a-z]+,O=Example$"}, "pool": "pb"}]
    fulcrum(https_config(port, {"pa": [a], "pb": [b], "pd": [d]}, [p.a], routes=routes,
                         default_pool="pd", tls_kw={"client_auth": auth(p, "optional")}))
    assert https_get(port, client_ctx(p, cert=p.alice))[2] == b"A GET /\n"
    assert https_get(port, client_ctx(p, cert=p.bob))[2] == b"B GET /\n"
    assert https_get(port, client_ctx(p, cert=p.mallory))[2] == b"D GET /\n"
    assert https_get(port, client_ctx(p))[2] == b"D GET /\n"


def test_ssl_listener_with_client_auth(fulcrum, backend, port, p):
    b = backend("B")
    fulcrum(ssl_config(port, [b], [p.a], tls_kw={"client_auth": auth(p)}))
    s = tls_connect(port, client_ctx(p, cert=p.alice))
    assert s.recv(10) == b"B\n"
    s.close()
    assert b.wait_accepted(1)
    try:
        s = tls_connect(port, client_ctx(p))
        data = s.recv(10)      # TLS 1.3: the refusal comes after the client's Finished
        s.close()
    except (ssl.SSLError, OSError):
        data = b""
    assert data == b"", f"served without a certificate: {data!r}"
    assert b.accepted == 1, "a client without a certificate reached the server"

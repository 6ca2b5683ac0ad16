"""Session resumption on TLS listeners: TLS 1.3 tickets, TLS 1.2 tickets and
TLS 1.2 session ids all resume within one listener and one server name, and
never across server names (not even two names of one wildcard certificate)
or across listeners."""

import ssl

import pytest

from conftest import fmt_addr, make_config
from http_helpers import http_backend
from tls_helpers import (client_ctx, https_config, https_get, listener_tls, s_client,
                         tls_counters)

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
KINDS = {
    "tls13-ticket": dict(minv=V13, maxv=V13),
    "tls12-ticket": dict(maxv=V12),
    "tls12-session-id": dict(maxv=V12, tickets=False),
}


@pytest.fixture
def web(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    return fulcrum(https_config(port, {"p": [a]}, [p.a, p.b, p.wild]))


def first_session(port, ctx, sni):
    st, _, _, info = https_get(port, ctx, sni=sni)
    assert st == 200 and not info.reused
    assert info.session is not None
    return info.session


@pytest.mark.parametrize("kind", KINDS)
def test_resumes_within_listener_and_name(web, port, p, kind):
    ctx = client_ctx(p, **KINDS[kind])
    sess = first_session(port, ctx, "a.example.com")
    for _ in range(2):
        st, _, body, info = https_get(port, ctx, sni="a.example.com", session=sess)
        assert st == 200 and body == b"A GET /\n"
        assert info.reused, f"{kind}: the session was not resumed"
        sess = info.session
    c = tls_counters(web, "web")
    assert c["tls_handshakes"] == 3 and c["tls_resumed"] == 2, c


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("first,second", [
    ("a.example.com", "b.example.com"),          # two certificates
    ("x.w.example.com", "y.w.example.com"),      # one wildcard certificate, two names
])
def test_never_resumes_across_server_names(web, port, p, kind, first, second):
    ctx = client_ctx(p, **KINDS[kind])
    sess = first_session(port, ctx, first)
    st, _, body, info = https_get(port, ctx, sni=second, session=sess)
    assert st == 200, "a full handshake must still succeed"
    assert not info.reused, f"{kind}: a session of {first} was resumed for {second}"
    # And the original name still resumes (the control).
    assert https_get(port, ctx, sni=first, session=sess)[3].reused


@pytest.mark.parametrize("kind", KINDS)
def test_never_resumes_across_listeners(fulcrum, backend, p, kind):
    """Two https listeners with the very same certificate: a session of one
    is not resumed on the other."""
    from conftest import free_port
    a = http_backend(backend, "A")
    p1, p2 = free_port(), free_port()
    lsts = [{"name": name, "bind": fmt_addr("127.0.0.1", pt), "protocol": "https", "pool": "p",
             "tls": listener_tls([p.a])} for name, pt in (("one", p1), ("two", p2))]
    fulcrum(make_config(lsts, [{"name": "p", "protocol": "http",
                                "servers": [{"address": a.address}]}], workers=2))
    ctx = client_ctx(p, **KINDS[kind])
    sess = first_session(p1, ctx, "a.example.com")
    assert not https_get(p2, ctx, session=sess)[3].reused, f"{kind}: resumed on another listener"
    assert https_get(p1, ctx, session=sess)[3].reused


def test_resumption_can_be_turned_off(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a],
                         tls_kw={"session_tickets": False, "session_cache": 0}))
    for kind, kw in KINDS.items():
        ctx = client_ctx(p, **kw)
        st, _, _, info = https_get(port, ctx)
        assert st == 200
        if info.session is not None:
            assert not https_get(port, ctx, session=info.session)[3].reused, kind


def test_session_cache_without_tickets(fulcrum, backend, port, p):
    """session_tickets: false still resumes TLS 1.2 clients by session id."""
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"session_tickets": False}))
    ctx = client_ctx(p, maxv=V12, tickets=False)
    sess = first_session(port, ctx, "a.example.com")
    assert https_get(port, ctx, session=sess)[3].reused


def test_resumption_across_workers(fulcrum, backend, port, p):
    """Ticket keys are shared by the workers: with 4 workers, a ticket from
    one connection resumes on the next ones wherever they land."""
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], workers=4))
    ctx = client_ctx(p, minv=V13)
    sess = first_session(port, ctx, "a.example.com")
    reused = [https_get(port, ctx, session=sess)[3].reused for _ in range(12)]
    assert all(reused), reused


def test_s_client_sess_out_sess_in(web, port, p, tmp_path):
    sess = tmp_path / "a.sess"
    req = b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n"
    rc, out = s_client(port, "-sess_out", str(sess), "-ign_eof", input=req, cafile=p.root.crt)
    assert rc == 0 and "New, TLSv1.3" in out, out
    assert sess.exists() and sess.stat().st_size > 0
    rc, out = s_client(port, "-sess_in", str(sess), "-ign_eof", input=req, cafile=p.root.crt)
    assert rc == 0, out
    assert "Reused, TLSv1.3" in out, out
    assert "A GET /" in out
    # The same session offered for another name: a new session.
    rc, out = s_client(port, "-sess_in", str(sess), "-ign_eof", input=req, sni="b.example.com",
                       cafile=p.root.crt)
    assert rc == 0, out
    assert "New, TLSv1.3" in out and "Reused" not in out, out


@pytest.mark.parametrize("kind", ["tls13-ticket", "tls12-ticket"])
def test_control_the_client_offers_its_session_for_another_name(backend, p, kind):
    """The control of the cross-name tests: the client really offers the
    session of x.w.example.com when it connects to y.w.example.com (a
    plain python server, which does not separate names, resumes it)."""
    from tls_helpers import server_ctx, tls_http_backend
    srv = tls_http_backend(backend, server_ctx(p.wild), "S")
    ctx = client_ctx(p, **KINDS[kind])
    sess = first_session(srv.port, ctx, "x.w.example.com")
    assert https_get(srv.port, ctx, sni="y.w.example.com", session=sess)[3].reused


def test_resumed_tls13_connection_gets_a_new_ticket(web, port, p, tmp_path):
    """TLS 1.3 clients use a ticket once (RFC 8446, C.4; browsers and
    OpenSSL do): unless each resumed connection brings a new ticket, every
    other connection is a full handshake. A chain of -sess_in/-sess_out
    connections must resume every time, each with a NewSessionTicket."""
    sess = tmp_path / "chain.sess"
    req = b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n"
    rc, out = s_client(port, "-tls1_3", "-sess_out", str(sess), "-ign_eof", input=req, cafile=p.root.crt)
    assert rc == 0 and "New, TLSv1.3" in out, out
    for i in range(3):
        rc, out = s_client(port, "-tls1_3", "-sess_in", str(sess), "-sess_out", str(sess), "-msg",
                           "-ign_eof", input=req, cafile=p.root.crt)
        assert rc == 0 and "Reused, TLSv1.3" in out, f"connection {i + 2} was not resumed:\n{out}"
        assert "NewSessionTicket" in out, f"resumed connection {i + 2} got no new ticket:\n{out}"


def test_one_ticket_per_full_handshake(web, port, p):
    """A full TLS 1.3 handshake brings one session ticket (OpenSSL sends
    two by default); each resumption renews it, so one is all a client
    needs, and the handshake is spared a second ticket's work."""
    req = b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n"
    rc, out = s_client(port, "-tls1_3", "-msg", "-ign_eof", input=req, cafile=p.root.crt)
    assert rc == 0 and "New, TLSv1.3" in out and "A GET /" in out, out
    got = [ln for ln in out.splitlines() if ln.startswith("<<<") and "NewSessionTicket" in ln]
    assert len(got) == 1, f"{len(got)} tickets received:\n{out}"

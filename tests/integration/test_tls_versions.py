"""Protocol versions and cipher suites of TLS listeners: TLS 1.0 and 1.1
are refused (whatever the config says), 1.2 and 1.3 are accepted by
default, min_version / max_version narrow that, and the default TLS 1.2
ciphers have forward secrecy and no CBC."""

import socket
import ssl
import subprocess

import pytest

from conftest import SOCK_TIMEOUT
from http_helpers import http_backend
from tls_helpers import (client_ctx, https_config, https_get, legacy_client_hello, read_tls_records,
                         s_client, ssl_config, tls_connect, tls_counters)


@pytest.fixture
def web(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    return fulcrum(https_config(port, {"p": [a]}, [p.a, p.a_ec]))


def first_client_bytes(*s_client_args):
    """The first bytes `openssl s_client ARGS` sends to a capturing socket:
    proves what the client offers (the control for the refusal tests)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(SOCK_TIMEOUT)
    port = lsock.getsockname()[1]
    proc = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                             *s_client_args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c, _ = lsock.accept()
        c.settimeout(SOCK_TIMEOUT)
        data = c.recv(65536)
        c.close()
    finally:
        lsock.close()
        try:
            proc.wait(SOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(SOCK_TIMEOUT)
    return data


@pytest.mark.parametrize("flag,legacy", [("-tls1", "0301"), ("-tls1_1", "0302")])
def test_tls10_and_tls11_refused_s_client(web, port, p, flag, legacy):
    args = [flag, "-cipher", "DEFAULT@SECLEVEL=0"]
    # Control: this client really offers that version (and nothing newer).
    hello = first_client_bytes(*args)
    assert hello[:1] == b"\x16" and hello[9:11].hex() == legacy, hello[:16].hex()
    rc, out = s_client(port, *args, cafile=p.root.crt)
    assert rc != 0, out
    assert "alert protocol version" in out or "unsupported protocol" in out, out
    assert "Cipher is (NONE)" in out or "Cipher    : 0000" in out, out


@pytest.mark.parametrize("version", [0x0301, 0x0302])
def test_legacy_client_hello_gets_protocol_version_alert(web, connect, port, version):
    """A hand-made TLS 1.0/1.1 ClientHello (no supported_versions): fulcrum
    answers with a fatal protocol_version alert (or just closes), never a
    ServerHello."""
    s = connect(port)
    s.sendall(legacy_client_hello(version))
    data, closed = read_tls_records(s)
    assert closed, f"the connection stayed open after {data[:16].hex()}"
    if data:
        assert data[:1] == b"\x15", f"not an alert: {data[:16].hex()}"
        assert data[5:7] == b"\x02\x46", f"not a fatal protocol_version alert: {data[:16].hex()}"


def test_version_refusals_are_counted(fulcrum, backend, connect, port, p):
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [p.a]))
    for v in (0x0301, 0x0302):
        s = connect(port)
        s.sendall(legacy_client_hello(v))
        read_tls_records(s)
        s.close()
    st, _, _, _ = https_get(port, client_ctx(p))
    assert st == 200
    c = tls_counters(f, "web")
    assert c["tls_failed_protocol_version"] == 2, c
    assert c["tls_handshakes"] == 1, c


@pytest.mark.parametrize("tls_kw", [{}, {"min_version": "1.2"}], ids=["default", "min12"])
def test_tls12_and_tls13_accepted(fulcrum, backend, port, p, tls_kw):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw=tls_kw))
    for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        st, _, body, s = https_get(port, client_ctx(p, minv=v, maxv=v))
        assert st == 200 and body == b"A GET /\n"
        assert s.version == name
    # A client that offers both gets the newest.
    s = tls_connect(port, client_ctx(p))
    assert s.version() == "TLSv1.3"
    s.close()
    for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(port, flag, cafile=p.root.crt)
        assert rc == 0 and f"New, {proto}" in out, out


def test_min_version_13_refuses_tls12(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"min_version": "1.3"}))
    with pytest.raises(ssl.SSLError):
        tls_connect(port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2))
    st, _, _, s = https_get(port, client_ctx(p))
    assert st == 200 and s.version == "TLSv1.3"


def test_max_version_12(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={"max_version": "1.2"}))
    st, _, _, s = https_get(port, client_ctx(p))
    assert st == 200 and s.version == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        tls_connect(port, client_ctx(p, minv=ssl.TLSVersion.TLSv1_3))


# --------------------------------------------------------------------------
# ciphers

@pytest.mark.parametrize("cipher", [
    "AES128-GCM-SHA256",            # RSA key exchange: no forward secrecy
    "AES256-SHA",                   # RSA key exchange, CBC
    "ECDHE-RSA-AES128-SHA",         # CBC
    "ECDHE-RSA-AES256-SHA384",      # CBC
    "DHE-RSA-AES128-GCM-SHA256",    # finite-field DH: not in the default
])
def test_default_tls12_ciphers_refuse_weak_suites(web, port, p, cipher):
    ctx = client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2, ciphers=cipher + ":@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls_connect(port, ctx)


@pytest.mark.parametrize("cipher", [
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
])
def test_default_tls12_ciphers_accept_aead_with_ecdhe(web, port, p, cipher):
    s = tls_connect(port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2, ciphers=cipher))
    assert s.cipher()[0] == cipher
    s.close()


def test_no_shared_cipher_is_counted(fulcrum, backend, port, p):
    b = backend("B")
    f = fulcrum(ssl_config(port, [b], [p.a]))
    ctx = client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls_connect(port, ctx)
    assert b.accepted == 0
    c = tls_counters(f, "front")
    assert c["tls_failed_no_shared_cipher"] == 1, c


def test_configured_ciphers_and_ciphersuites(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a], tls_kw={
        "ciphers": "ECDHE-RSA-CHACHA20-POLY1305",
        "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}))
    s = tls_connect(port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2))
    assert s.cipher()[0] == "ECDHE-RSA-CHACHA20-POLY1305"
    s.close()
    with pytest.raises(ssl.SSLError):
        tls_connect(port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2,
                                     ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    s = tls_connect(port, client_ctx(p))
    assert s.version() == "TLSv1.3" and s.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    s.close()
    rc, out = s_client(port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256",
                       cafile=p.root.crt)
    assert rc != 0, f"a TLS 1.3 suite outside ciphersuites was accepted:\n{out}"

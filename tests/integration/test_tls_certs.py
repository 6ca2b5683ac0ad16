"""Listener certificates: choice by SNI among several (a wildcard among
them), RSA and ECDSA for the same names, the chain sent after the leaf,
encrypted keys, OCSP stapling."""

import hashlib
import ssl
import subprocess

import pytest

from http_helpers import http_backend
from tls_helpers import (PROC_TIMEOUT, client_ctx, https_config, https_get, s_client,
                         ssl_config, tls_connect)


def served_cert(port, p, sni):
    """(sha256 of the leaf the listener sends for this SNI (None: no SNI),
    whether it verifies for that name)."""
    ctx = client_ctx(p, verify=False)
    s = tls_connect(port, ctx, sni=sni)
    der = s.getpeercert(binary_form=True)
    s.close()
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def three(fulcrum, backend, port, p):
    """An https listener with a.example.com (first), b.example.com and
    *.w.example.com."""
    a = http_backend(backend, "A")
    return fulcrum(https_config(port, {"p": [a]}, [p.a, p.b, p.wild]))


@pytest.mark.parametrize("sni,want", [
    ("a.example.com", "a"),
    ("b.example.com", "b"),
    ("x.w.example.com", "wild"),
    ("X.W.Example.COM", "wild"),        # names are case-insensitive
    ("B.EXAMPLE.COM", "b"),
    ("w.example.com", "a"),             # a wildcard does not cover the bare domain
    ("unknown.test", "a"),              # no match: the first certificate
    (None, "a"),                        # no SNI: the first certificate
])
def test_sni_selects_certificate(three, port, p, sni, want):
    assert served_cert(port, p, sni) == getattr(p, want).sha256, \
        f"SNI {sni!r} did not get the {want} certificate"


def test_selected_certificate_verifies_for_each_name(three, port, p):
    """A strict client (hostname checked) succeeds for every configured name,
    and is told the truth for a name none covers."""
    ctx = client_ctx(p)
    for name in ("a.example.com", "b.example.com", "anything.w.example.com"):
        st, _, body, _ = https_get(port, ctx, "/", sni=name)
        assert st == 200, (name, st, body)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(port, ctx, sni="other.example.com")


def test_sni_selection_with_curl_and_s_client(three, port, p):
    for name in ("b.example.com", "z.w.example.com"):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", p.root.crt,
                            "--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/ok"],
                           capture_output=True, text=True, timeout=PROC_TIMEOUT)
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout == "A GET /ok\n"
    rc, out = s_client(port, sni="z.w.example.com", cafile=p.root.crt)
    assert rc == 0, out
    assert "subject=O = Fulcrum Test, CN = *.w.example.com" in out, out


def test_chain_is_sent_after_the_leaf(fulcrum, backend, port, p):
    """Clients trust only the root: the listener must send the intermediate."""
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.a]))
    rc, out = s_client(port, "-showcerts", cafile=p.root.crt)
    assert rc == 0, out
    assert out.count("-----BEGIN CERTIFICATE-----") == 2, out
    assert "i:O = Fulcrum Test, CN = Fulcrum Test Intermediate CA" in out
    assert "Verify return code: 0 (ok)" in out


def test_chain_in_the_cert_file(fulcrum, backend, port, p):
    """cert may hold the leaf followed by the chain (no chain key)."""
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [{"cert": p.a.fullchain, "key": p.a.key}]))
    st, _, body, _ = https_get(port, client_ctx(p))
    assert st == 200 and body == b"A GET /\n"


def test_encrypted_key_with_password_file(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    fulcrum(https_config(port, {"p": [a]}, [p.enc]))
    s = tls_connect(port, client_ctx(p))
    assert hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest() == p.enc.sha256
    s.close()


# --------------------------------------------------------------------------
# RSA and ECDSA

@pytest.fixture
def dual(fulcrum, backend, port, p):
    a = http_backend(backend, "A")
    return fulcrum(https_config(port, {"p": [a]}, [p.a, p.a_ec]))


@pytest.mark.parametrize("cipher,want", [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "a_ec"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "a"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "a_ec"),
    ("ECDHE-RSA-CHACHA20-POLY1305", "a"),
])
def test_rsa_and_ecdsa_tls12_by_cipher(dual, port, p, cipher, want):
    ctx = client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2, ciphers=cipher)
    s = tls_connect(port, ctx)
    got = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    assert s.version() == "TLSv1.2" and s.cipher()[0] == cipher, s.cipher()
    s.close()
    assert got == getattr(p, want).sha256, f"{cipher} did not get the {want} certificate"


@pytest.mark.parametrize("sigalgs,keytype", [
    ("ECDSA+SHA256", "ECDSA"),
    ("rsa_pss_rsae_sha256:rsa_pss_rsae_sha384", "RSA"),
])
def test_rsa_and_ecdsa_tls13_by_signature_algorithms(dual, port, p, sigalgs, keytype):
    rc, out = s_client(port, "-tls1_3", "-sigalgs", sigalgs, cafile=p.root.crt)
    assert rc == 0, out
    assert "Protocol  : TLSv1.3" in out or "New, TLSv1.3" in out, out
    assert f"Peer signature type: {'ECDSA' if keytype == 'ECDSA' else 'RSA-PSS'}" in out, out
    if keytype == "ECDSA":
        assert "Server public key is 256 bit" in out, out
    else:
        assert "Server public key is 2048 bit" in out, out


def test_ecdsa_only_listener(fulcrum, backend, port, p):
    b = backend("B")
    fulcrum(ssl_config(port, [b], [p.a_ec]))
    s = tls_connect(port, client_ctx(p))
    assert s.recv(10) == b"B\n"
    s.close()
    rc, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                       cafile=p.root.crt)
    assert rc != 0, "an RSA-only TLS 1.2 client got a handshake with an ECDSA-only listener"


# --------------------------------------------------------------------------
# OCSP stapling

def make_ocsp(p, cert, out):
    subprocess.run(["openssl", "ocsp", "-index", str(p.inter.db / "index.txt"), "-rsigner",
                    p.inter.crt, "-rkey", p.inter.key, "-CA", p.inter.crt, "-issuer", p.inter.crt,
                    "-cert", cert.crt, "-respout", str(out), "-ndays", "7"],
                   check=True, capture_output=True, timeout=PROC_TIMEOUT)
    return str(out)


def test_ocsp_response_is_stapled(fulcrum, backend, port, p, tmp_path):
    resp = make_ocsp(p, p.a, tmp_path / "a.ocsp")
    a = http_backend(backend, "A")
    entry = {"cert": p.a.crt, "key": p.a.key, "chain": p.a.chain, "ocsp": resp}
    fulcrum(https_config(port, {"p": [a]}, [entry]))
    rc, out = s_client(port, "-status", cafile=p.root.crt)
    assert rc == 0, out
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out
    # Without -status nothing is stapled.
    rc, out = s_client(port, cafile=p.root.crt)
    assert "OCSP Response Status" not in out


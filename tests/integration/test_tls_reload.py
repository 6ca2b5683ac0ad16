"""SIGHUP reloads the certificates of TLS listeners from their files: new
handshakes get the new certificate, open connections go on; a broken new
certificate leaves the old one in service."""

import shutil
import signal

import pytest

from conftest import wait_until
from http_helpers import http_backend
from tls_helpers import client_ctx, https_config, https_get, read_response


def install(cert, d):
    shutil.copy(cert.crt, d / "live.crt")
    shutil.copy(cert.key, d / "live.key")


def live_entry(p, d):
    return {"cert": str(d / "live.crt"), "key": str(d / "live.key"), "chain": p.inter.crt}


def served(port, p):
    return https_get(port, client_ctx(p))[3].cert


def test_sighup_reloads_certificates(fulcrum, backend, port, p, tmp_path):
    install(p.a, tmp_path)
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [live_entry(p, tmp_path)]))
    assert served(port, p) == p.a.sha256
    # A keep-alive connection made with the old certificate.
    st, _, _, old = https_get(port, client_ctx(p), keep=True)
    assert st == 200 and old.cert == p.a.sha256

    install(p.a2, tmp_path)
    f.send_signal(signal.SIGHUP)
    assert wait_until(lambda: served(port, p) == p.a2.sha256, 5), \
        "new handshakes still get the old certificate after SIGHUP"
    # The old connection goes on.
    old.sock.sendall(b"GET /after HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
    st, _, body = read_response(old.sock)
    assert st == 200 and body == b"A GET /after\n"
    old.sock.close()
    assert f.running()


def test_sighup_with_a_broken_certificate_keeps_the_old_one(fulcrum, backend, port, p,
                                                             tmp_path):
    install(p.a, tmp_path)
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [live_entry(p, tmp_path)]))
    assert served(port, p) == p.a.sha256
    # The certificate of a2 with the key of a: they do not match.
    shutil.copy(p.a2.crt, tmp_path / "live.crt")
    f.send_signal(signal.SIGHUP)
    f.wait_error_log(r"does not match", timeout=5)
    assert f.running()
    for _ in range(3):
        assert served(port, p) == p.a.sha256
    # Fixed files and another SIGHUP: the new certificate.
    install(p.a2, tmp_path)
    f.send_signal(signal.SIGHUP)
    assert wait_until(lambda: served(port, p) == p.a2.sha256, 5)


def test_sighup_adds_a_certificate_for_a_new_name(fulcrum, backend, port, p, tmp_path):
    """The cert file of the one entry now holds b.example.com's certificate:
    clients asking for b get it (and verify it) after the reload."""
    install(p.a, tmp_path)
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [live_entry(p, tmp_path)]))
    install(p.b, tmp_path)
    f.send_signal(signal.SIGHUP)
    assert wait_until(lambda: https_get(port, client_ctx(p, verify=False),
                                        sni="b.example.com")[3].cert == p.b.sha256, 5)
    st, _, _, info = https_get(port, client_ctx(p), sni="b.example.com")
    assert st == 200


def test_reloads_in_quick_succession_while_serving(fulcrum, backend, port, p, tmp_path):
    """Reloads one after another, faster than the workers pick them up, while
    handshakes go on: every reload starts from the newest contexts (never from
    ones a worker may be dropping at that moment), fulcrum keeps serving, and
    the last certificate installed is the one served."""
    install(p.a, tmp_path)
    a = http_backend(backend, "A")
    f = fulcrum(https_config(port, {"p": [a]}, [live_entry(p, tmp_path)], workers=2))
    for i in range(20):
        install(p.a2 if i % 2 == 0 else p.a, tmp_path)
        f.send_signal(signal.SIGHUP)
        assert https_get(port, client_ctx(p))[0] == 200
    install(p.a2, tmp_path)
    f.send_signal(signal.SIGHUP)
    assert wait_until(lambda: served(port, p) == p.a2.sha256, 5)
    assert f.wait_error_log(r"SIGHUP: TLS certificates of 1 listener reloaded")
    assert f.running()

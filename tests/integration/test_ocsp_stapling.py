"""OCSP stapling: a listener certificate with `ocsp: FILE` has that response
stapled to handshakes that ask for it, and SIGHUP reads the file again.

The responses are made offline with `openssl ocsp` acting as a responder over
an index file, signed by the test CA."""

import signal
import subprocess

import pytest

from conftest import free_port, listener, make_config, pool, wait_until

OPENSSL_TIMEOUT = 20


def sh(*args, cwd):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stderr}"
    return r.stdout


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-days", "30", "-subj", "/CN=OCSP Test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-subj", "/CN=site.test", "-keyout", "site.key", "-out", "site.csr", cwd=d)
    (d / "site.ext").write_text("subjectAltName=DNS:site.test\n")
    sh("openssl", "x509", "-req", "-in", "site.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-days", "30", "-extfile", "site.ext", "-out", "site.crt", cwd=d)
    return d


def make_response(d, out, status="V"):
    """An OCSP response for site.crt saying `status` (V good, R revoked)."""
    serial = sh("openssl", "x509", "-in", "site.crt", "-noout", "-serial", cwd=d).split("=")[1].strip()
    line = f"{status}\t301231235959Z\t{'250101000000Z' if status == 'R' else ''}\t{serial}\tunknown\t/CN=site.test\n"
    (d / "index.txt").write_text(line)
    sh("openssl", "ocsp", "-issuer", "ca.crt", "-cert", "site.crt", "-reqout", "req.der", cwd=d)
    sh("openssl", "ocsp", "-index", "index.txt", "-rsigner", "ca.crt", "-rkey", "ca.key", "-CA", "ca.crt",
       "-reqin", "req.der", "-respout", out, "-ndays", "1", cwd=d)


def stapled(port, d):
    """What openssl s_client reports about the stapled OCSP response."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "site.test",
                        "-status", "-CAfile", str(d / "ca.crt")],
                       input="", capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    return r.stdout


def config(d, port, backend_port, ocsp=True):
    cert = {"cert": str(d / "site.crt"), "key": str(d / "site.key")}
    if ocsp:
        cert["ocsp"] = str(d / "site.ocsp.der")
    return make_config(
        [listener("secure", f"127.0.0.1:{port}", "app", protocol="https", tls={"certificates": [cert]})],
        [pool("app", [f"127.0.0.1:{backend_port}"], protocol="http")])


def test_response_is_stapled_and_reloaded_on_sighup(fulcrum, pki):
    make_response(pki, "site.ocsp.der", "V")
    port = free_port()
    f = fulcrum(config(pki, port, free_port()))
    out = stapled(port, pki)
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out

    # The CA now says revoked: after SIGHUP the new response is stapled.
    make_response(pki, "site.ocsp.der", "R")
    f.send_signal(signal.SIGHUP)
    f.wait_error_log(r"SIGHUP: TLS certificates of 1 listener reloaded")
    assert wait_until(lambda: "Cert Status: revoked" in stapled(port, pki), 5), stapled(port, pki)


def test_no_staple_without_ocsp_file(fulcrum, pki):
    port = free_port()
    fulcrum(config(pki, port, free_port(), ocsp=False))
    out = stapled(port, pki)
    assert "OCSP response: no response sent" in out, out


def test_bad_ocsp_file_is_refused_at_startup(fulcrum, pki):
    (pki / "site.ocsp.der").write_bytes(b"not DER at all")
    f = fulcrum(config(pki, free_port(), free_port()), wait_ready=False)
    assert f.wait(10) == 1
    assert "is not a DER OCSP response" in f.stderr_path.read_text()

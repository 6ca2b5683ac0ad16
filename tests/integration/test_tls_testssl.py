"""testssl.sh (Debian's testssl.sh package, /usr/bin/testssl) against an
https listener with fulcrum's default TLS settings: no finding of severity
MEDIUM, HIGH or CRITICAL.

Marked slow (about 1.5 minutes on an idle machine): `-m "not slow"` skips it.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tls_helpers import https_config

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
# Seconds the scan may take: about 80 s on an idle 2-CPU machine, but
# testssl spawns an openssl process per probe and slows down a lot when the
# machine is busy (measured: over 240 s beside a benchmark run).
LIMIT = 300
BLOCKING = ("MEDIUM", "HIGH", "CRITICAL")

# Findings that only describe this test's setup, never fulcrum: none so far.
# (The test certificates carry CRL and OCSP URIs and random serials so that
# testssl's certificate checks see a realistic certificate, and testssl is
# given the test root with --add-ca, so the chain of trust verifies.)
SETUP_ARTIFACTS = {}


@pytest.mark.slow
def test_testssl_finds_nothing_medium_or_worse(fulcrum, port, p, tmp_path):
    """Which checks, and why:

    - ``-p -s -f -P -S -U``: protocols, cipher categories, forward secrecy,
      the server's preferences, the server defaults (certificates, session
      resumption, OCSP) and every vulnerability check (Heartbleed, CCS,
      ticketbleed, ROBOT, renegotiation, CRIME, BREACH, POODLE, fallback
      SCSV, SWEET32, FREAK, DROWN, LOGJAM, BEAST, LUCKY13, RC4). That is
      everything of a default run except the client simulation (``-c``:
      ~100 more handshakes, over two more minutes here, and it only reports
      which well-known client would pick what) and the HTTP header checks
      (``-h``: HSTS and security headers are the application's answers, not
      the TLS setup; fulcrum passes the server's headers on).
    - ``--ip 127.0.0.1 -n none``: test a.example.com (the SNI the
      certificates are for) on loopback with no DNS.
    - ``--add-ca``: trust the test root, as clients of a real deployment
      trust theirs.
    - ``--openssl-timeout/--connect-timeout``: no check can hang the run.
    testssl's exit code does not tell findings apart, so the JSON is read.
    The listener has an RSA and an ECDSA certificate and every other TLS
    setting at its default.
    """
    if not TESTSSL:
        pytest.fail("testssl is not installed (Debian package testssl.sh)")
    f = fulcrum(https_config(port, {"app": ["127.0.0.1:9"]}, [p.a, p.a_ec], routes=[
        {"match": {"path_prefix": "/"}, "respond": {"status": 200, "body": "ok\n"}}]))
    out = tmp_path / "testssl.json"
    log = tmp_path / "testssl.log"
    cmd = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--ip", "127.0.0.1",
           "-n", "none", "--add-ca", p.root.crt, "--openssl-timeout", "10",
           "--connect-timeout", "10", "-p", "-s", "-f", "-P", "-S", "-U",
           "--jsonfile", str(out), f"a.example.com:{port}"]
    t0 = time.monotonic()
    with open(log, "wb") as lf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=tmp_path)
        try:
            proc.wait(LIMIT)
        except subprocess.TimeoutExpired:
            # testssl runs many openssl children: end its whole process group.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            pytest.fail(f"testssl did not finish within {LIMIT}s:\n{log.read_text()[-3000:]}")
    took = time.monotonic() - t0
    assert out.exists() and out.stat().st_size > 0, \
        f"testssl wrote no JSON (exit {proc.returncode}):\n{log.read_text()[-3000:]}"
    findings = json.loads(out.read_text())
    by_id = {x.get("id", "").split(" <")[0]: x for x in findings}
    # The scan really ran: protocols, certificates and vulnerabilities were tested.
    for must in ("TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "heartbleed", "ROBOT",
                 "cert_chain_of_trust"):
        assert must in by_id, f"testssl did not report {must}; its log:\n{log.read_text()[-3000:]}"
    assert by_id["TLS1"]["finding"].startswith("not offered"), by_id["TLS1"]
    assert by_id["TLS1_1"]["finding"].startswith("not offered"), by_id["TLS1_1"]
    assert by_id["TLS1_2"]["finding"].startswith("offered"), by_id["TLS1_2"]
    assert by_id["TLS1_3"]["finding"].startswith("offered"), by_id["TLS1_3"]
    assert not [x for x in findings if x.get("id") == "scanProblem"], findings
    bad = [x for x in findings if x.get("severity") in BLOCKING
           and x.get("id") not in SETUP_ARTIFACTS]
    report = "\n".join(f"{x['severity']:8} {x['id']}: {x.get('finding')}" for x in bad)
    assert not bad, f"testssl ({took:.0f}s) found:\n{report}"
    assert f.running()

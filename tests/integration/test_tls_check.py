"""`fulcrum check` on TLS configs that need real certificate files (made at
run time, never committed): unreadable files, a key that does not match its
certificate, an expired certificate (an error) and one that expires soon (a
warning), a wrong or missing key password. Each message names the file,
line and column of the certificate entry and its key path. fulcrum itself
refuses to start on the same configs."""

import os
import re
import subprocess

import pytest

from conftest import fmt_addr, fulcrum_bin, make_config
from tls_helpers import PROC_TIMEOUT, cert_entry, write_config


def config(p, entries, **tls_kw):
    """An https listener (two certificates: a good one first, then ENTRY)."""
    tls = {"certificates": entries}
    tls.update(tls_kw)
    lst = {"name": "web", "bind": fmt_addr("127.0.0.1", 18443), "protocol": "https",
           "pool": "app", "tls": tls}
    return make_config([lst], [{"name": "app", "protocol": "http",
                                "servers": [{"address": "127.0.0.1:9001"}]}], workers=1)


def check(path):
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT)
    return r.returncode, r.stdout, r.stderr


def where(path, needle, key):
    """FILE:LINE:COL of key KEY on the line of PATH that holds NEEDLE."""
    for i, ln in enumerate(open(path).read().splitlines(), 1):
        if needle in ln:
            return f"{path}:{i}:{ln.index(key + ':') + 1}"
    raise AssertionError(f"{needle} not in {path}")


def bad_entry(p, tmp_path, entry, pattern, index=1):
    """Check a config whose certificates[index] is ENTRY: exit 1, one line
    FILE:LINE:COL: listeners[0].tls.certificates[index]: <pattern>."""
    path = write_config(tmp_path / "tls.yaml", config(p, [cert_entry(p.b), entry]))
    rc, out, err = check(path)
    assert rc == 1, (rc, out, err)
    assert out == ""
    loc = where(path, entry["cert"], "cert")
    rx = re.escape(f"{loc}: listeners[0].tls.certificates[{index}]: ") + pattern
    assert re.search(rx, err, re.M), f"expected /{rx}/ in:\n{err}"
    assert err.rstrip().endswith("problem found") or "problems found" in err, err
    return err


def test_good_tls_config_passes(p, tmp_path):
    path = write_config(tmp_path / "tls.yaml", config(
        p, [cert_entry(p.enc), cert_entry(p.a_ec), cert_entry(p.b)],
        client_auth={"mode": "optional", "ca": p.clientca.crt, "crl": p.crl}))
    rc, out, err = check(path)
    assert rc == 0, err
    assert out.startswith(f"{path}: OK"), out
    assert err == "", err


def test_unreadable_certificate_file(p, tmp_path):
    missing = str(tmp_path / "nope.crt")
    bad_entry(p, tmp_path, {"cert": missing, "key": p.a.key},
              re.escape(f"cannot read certificate file {missing}: No such file or directory"))


def test_unreadable_key_file(p, tmp_path):
    missing = str(tmp_path / "nope.key")
    bad_entry(p, tmp_path, {"cert": p.a.crt, "key": missing},
              re.escape(f"cannot read key {missing}: No such file or directory"))


def test_a_directory_is_not_a_certificate(p, tmp_path):
    bad_entry(p, tmp_path, {"cert": str(tmp_path), "key": p.a.key},
              r".*" + re.escape(str(tmp_path)) + r"\b.*(directory|no PEM certificate)")


def test_not_pem_certificate(p, tmp_path):
    junk = tmp_path / "junk.crt"
    junk.write_text("this is not a certificate\n")
    bad_entry(p, tmp_path, {"cert": str(junk), "key": p.a.key}, r".*" + re.escape(str(junk)))


def test_key_does_not_match_certificate(p, tmp_path):
    bad_entry(p, tmp_path, {"cert": p.a.crt, "key": p.b.key},
              re.escape(f"key {p.b.key} does not match certificate {p.a.crt}"))


def test_ecdsa_key_for_rsa_certificate(p, tmp_path):
    bad_entry(p, tmp_path, {"cert": p.a.crt, "key": p.a_ec.key},
              re.escape(f"key {p.a_ec.key} does not match certificate {p.a.crt}"))


def test_expired_certificate(p, tmp_path):
    err = bad_entry(p, tmp_path, cert_entry(p.expired),
                    re.escape(f"certificate {p.expired.crt} expired on ") + r".*2021.*renew")
    assert "warning" not in err


def test_certificate_expiring_soon_is_a_warning(p, tmp_path):
    path = write_config(tmp_path / "tls.yaml", config(p, [cert_entry(p.b), cert_entry(p.soon)]))
    rc, out, err = check(path)
    assert rc == 0, err
    assert out.startswith(f"{path}: OK"), out
    loc = where(path, p.soon.crt, "cert")
    rx = re.escape(f"{loc}: warning: listeners[0].tls.certificates[1]: ") + \
        re.escape(f"certificate {p.soon.crt} expires on ") + r".*in [67] days"
    assert re.search(rx, err) or re.search(
        re.escape(f"{loc}: listeners[0].tls.certificates[1]: warning: ") + r".*expires", err), err


@pytest.mark.parametrize("fmt", ["pkcs8", "traditional"])
def test_wrong_key_password(p, tmp_path, fmt):
    e = cert_entry(p.enc)
    if fmt == "traditional":
        e["key"] = p.enc_traditional_key
    e["key_password_file"] = p.wrong_password_file
    bad_entry(p, tmp_path, e, re.escape(f"cannot decrypt key {e['key']} with the password in "
                                        f"{p.wrong_password_file} (wrong password)"))


def test_encrypted_key_without_password_file(p, tmp_path):
    e = cert_entry(p.enc)
    del e["key_password_file"]
    bad_entry(p, tmp_path, e, re.escape(f"key {p.enc.key} is encrypted; give its password in "
                                        "key_password_file"))


def test_unreadable_password_file(p, tmp_path):
    e = cert_entry(p.enc)
    e["key_password_file"] = str(tmp_path / "nope.pass")
    bad_entry(p, tmp_path, e, re.escape(f"cannot read key_password_file {tmp_path}/nope.pass"))


def test_several_bad_certificates_are_all_reported(p, tmp_path):
    path = write_config(tmp_path / "tls.yaml", config(p, [
        cert_entry(p.expired), {"cert": p.a.crt, "key": p.b.key}, cert_entry(p.b)]))
    rc, _, err = check(path)
    assert rc == 1
    assert "listeners[0].tls.certificates[0]: certificate" in err and "expired" in err, err
    assert "listeners[0].tls.certificates[1]: key" in err and "does not match" in err, err
    assert "certificates[2]" not in err, err
    assert err.splitlines()[-1] == f"{path}: 2 problems found", err


def test_unreadable_client_ca_and_crl(p, tmp_path):
    path = write_config(tmp_path / "tls.yaml", config(
        p, [cert_entry(p.a)], client_auth={"mode": "required", "ca": str(tmp_path / "no-ca.pem"),
                                           "crl": str(tmp_path / "no.crl")}))
    rc, _, err = check(path)
    assert rc == 1, err
    for name in ("no-ca.pem", "no.crl"):
        f = re.escape(str(tmp_path / name))
        assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: listeners\[0\]\.tls"
                         rf"(\.client_auth(\.ca|\.crl)?)?: (client_auth: )?cannot .*{f}: "
                         rf"No such file or directory$", err, re.M), err


def test_pool_client_key_mismatch(p, tmp_path):
    cfg = config(p, [cert_entry(p.a)])
    cfg["pools"][0]["protocol"] = "https"
    cfg["pools"][0]["tls"] = {"ca": p.root.crt, "cert": p.alice.crt, "key": p.bob.key}
    path = write_config(tmp_path / "tls.yaml", cfg)
    rc, _, err = check(path)
    assert rc == 1, err
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: pools\[0\]\.tls: key {re.escape(p.bob.key)} "
                     rf"does not match certificate {re.escape(p.alice.crt)}", err, re.M), err


def test_fulcrum_refuses_to_start_with_an_expired_certificate(p, tmp_path):
    path = write_config(tmp_path / "tls.yaml", config(p, [cert_entry(p.expired)]))
    r = subprocess.run([fulcrum_bin(), "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "expired" in r.stderr, r.stderr


def test_relative_paths_are_relative_to_the_working_directory(p, tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    for src, dst in ((p.a.crt, "a.crt"), (p.a.key, "a.key"), (p.inter.crt, "chain.crt")):
        os.symlink(src, d / dst)
    path = write_config(tmp_path / "tls.yaml",
                        config(p, [{"cert": "site/a.crt", "key": "site/a.key",
                                    "chain": "site/chain.crt"}]))
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=PROC_TIMEOUT, cwd="/")
    assert r.returncode == 1 and "site/a.crt" in r.stderr, r.stderr

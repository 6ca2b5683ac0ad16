"""Shared code of the TLS integration tests (test_tls_*.py).

- ``pki()``: a throw-away PKI made with the ``openssl`` CLI, once per test
  session, in pytest's temporary directory (no key is ever committed):

  - ``root``: "Fulcrum Test Root CA"; ``inter``: an intermediate CA under it
    that signs every server certificate (so a listener must send its chain);
  - server certificates (leaf only in ``.crt``, the intermediate in
    ``inter.crt``, leaf + intermediate in ``.fullchain.crt``):
    ``a`` (RSA, a.example.com), ``a_ec`` (ECDSA P-256, a.example.com),
    ``b`` (RSA, b.example.com), ``wild`` (RSA, *.w.example.com),
    ``local`` (RSA, localhost and 127.0.0.1, for TLS backends),
    ``expired``, ``soon`` (expires in 7 days), ``enc`` (key encrypted
    with the password in ``enc.pass``);
  - ``clientca``: a separate CA for client certificates ``alice``
    (CN=alice,O=Example), ``bob`` (CN=bob,O=Example) and ``mallory``
    (revoked in ``clientca.crl``);
  - ``rogue``: a self-signed CA nobody trusts, with a server certificate
    ``rogue_srv`` for localhost/127.0.0.1 and a client certificate
    ``rogue_cli`` (CN=alice,O=Example, same subject as the real alice).

- client side: ``client_ctx``, ``tls_connect`` (python ssl), ``https_get``
  (one request over python ssl), ``s_client`` / ``s_client_until`` and
  ``curl`` (subprocesses with timeouts), ``BioClient`` (a handshake over
  memory BIOs, so a test knows the exact bytes of the ClientHello it sent),
  ``split_records`` and ``legacy_client_hello`` (hand-made ClientHellos).
- server side: ``server_ctx``; ``tls_backend`` (conftest's Backend wrapped
  in TLS, recording what every connection negotiated in conn.info),
  ``tls_http_backend`` (http_helpers' HttpBackend over TLS),
  ``bio_tls_server`` (a TLS server that records every raw byte it got and
  the SNI its own context saw).
- config: ``cert_entry``, ``https_config``, ``ssl_config``,
  ``write_config``; ``tls_counters`` reads the TLS counters line fulcrum
  logs at shutdown.

Every socket and subprocess has a timeout.
"""

import hashlib
import os
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

from conftest import SOCK_TIMEOUT, fmt_addr, make_config, wait_until
from http_helpers import http_backend, http_config

PROC_TIMEOUT = 20          # seconds any openssl / curl run may take
PASSWORD = "correct horse battery staple"

_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
[ policy_any ]
organizationName = optional
commonName = supplied
"""

_EXT = {
    "ca": "basicConstraints = critical, CA:TRUE\n"
          "keyUsage = critical, keyCertSign, cRLSign\n"
          "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n",
    "inter": "basicConstraints = critical, CA:TRUE, pathlen:0\n"
             "keyUsage = critical, keyCertSign, cRLSign\n"
             "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n",
    "server": "basicConstraints = critical, CA:FALSE\n"
              "keyUsage = critical, digitalSignature, keyEncipherment\n"
              "extendedKeyUsage = serverAuth\n"
              "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
              "crlDistributionPoints = URI:http://crl.example.com/test.crl\n"
              "authorityInfoAccess = OCSP;URI:http://ocsp.example.com/\n"
              "subjectAltName = {san}\n",
    "client": "basicConstraints = critical, CA:FALSE\n"
              "keyUsage = critical, digitalSignature\n"
              "extendedKeyUsage = clientAuth\n"
              "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
}


def run(cmd, timeout=PROC_TIMEOUT, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def _openssl(*args, cwd=None):
    r = run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr.decode(errors='replace')}")
    return r.stdout


class Cert:
    """A certificate and its key (paths), with what tests compare against."""

    def __init__(self, name, crt, key, chain=None, fullchain=None, password_file=None):
        self.name = name
        self.crt = str(crt)
        self.key = str(key)
        self.chain = str(chain) if chain else None
        self.fullchain = str(fullchain) if fullchain else None
        self.password_file = str(password_file) if password_file else None

    def der(self):
        pem = Path(self.crt).read_text()
        return ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])

    @property
    def sha256(self):
        return hashlib.sha256(self.der()).hexdigest()

    def field(self, what):
        """openssl x509 -noout -<what> with RFC 2253 names, value only."""
        out = _openssl("x509", "-in", self.crt, "-noout", f"-{what}", "-nameopt", "RFC2253")
        return out.decode().strip().split("=", 1)[1]

    @property
    def serial(self):
        return int(self.field("serial"), 16)

    def __repr__(self):
        return f"<Cert {self.name}>"


class Pki:
    def __init__(self, base):
        self.dir = Path(base)
        self.certs = {}

    def __getattr__(self, name):
        try:
            return self.__dict__["certs"][name]
        except KeyError:
            raise AttributeError(name) from None

    # -- building blocks

    def _ca_dir(self, name):
        d = self.dir / f"{name}.db"
        (d / "new").mkdir(parents=True)
        (d / "index.txt").write_text("")
        (d / "serial").write_text(f"{0x1000 + 0x100 * len(self.certs):x}\n")
        (d / "crlnumber").write_text("01\n")
        (d / "ca.cnf").write_text(_CA_CNF.format(dir=d))
        return d

    def _key(self, name, kind="rsa"):
        key = self.dir / f"{name}.key"
        if kind == "ec":
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", str(key))
        else:
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", str(key))
        return key

    def root_ca(self, name, subject):
        key = self._key(name)
        crt = self.dir / f"{name}.crt"
        _openssl("req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "3650",
                 "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(crt))
        c = Cert(name, crt, key)
        c.db = self._ca_dir(name)
        self.certs[name] = c
        return c

    def issue(self, name, ca, subject, ext, san=None, kind="rsa", days=365, start=None,
              end=None, chain=None):
        """A certificate for a new key, signed by CA (a Cert made by root_ca
        or issue(..., ext='inter'))."""
        key = self._key(name, kind)
        csr = self.dir / f"{name}.csr"
        crt = self.dir / f"{name}.crt"
        extf = self.dir / f"{name}.ext"
        extf.write_text(_EXT[ext].format(san=san or ""))
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        # A random 127-bit serial, as real CAs use.
        (ca.db / "serial").write_text("%032x\n" % (int.from_bytes(os.urandom(16), "big") >> 1
                                                    | 1 << 120))
        args = ["ca", "-config", str(ca.db / "ca.cnf"), "-batch", "-notext", "-preserveDN",
                "-cert", ca.crt, "-keyfile", ca.key, "-in", str(csr), "-out", str(crt),
                "-extfile", str(extf)]
        if start or end:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", str(days)]
        _openssl(*args)
        fullchain = None
        if chain:
            fullchain = self.dir / f"{name}.fullchain.crt"
            fullchain.write_text(crt.read_text() + Path(chain.crt).read_text())
        c = Cert(name, crt, key, chain=chain.crt if chain else None, fullchain=fullchain)
        if ext == "inter":
            c.db = self._ca_dir(name)
        self.certs[name] = c
        return c

    def server(self, name, dns, kind="rsa", ip=None, **kw):
        san = ",".join([f"DNS:{d}" for d in dns] + ([f"IP:{ip}"] if ip else []))
        return self.issue(name, self.inter, f"/O=Fulcrum Test/CN={dns[0]}", "server", san=san,
                          kind=kind, chain=self.inter, **kw)

    def client(self, name, ca, cn, org="Example"):
        return self.issue(name, ca, f"/O={org}/CN={cn}", "client")

    # -- the whole set

    def build(self):
        self.root_ca("root", "/O=Fulcrum Test/CN=Fulcrum Test Root CA")
        self.issue("inter", self.root, "/O=Fulcrum Test/CN=Fulcrum Test Intermediate CA", "inter",
                   days=3000)
        self.server("a", ["a.example.com"])
        self.server("a_ec", ["a.example.com"], kind="ec")
        self.server("b", ["b.example.com"])
        self.server("wild", ["*.w.example.com"])
        self.server("local", ["localhost"], ip="127.0.0.1")
        self.server("local_ec", ["localhost"], kind="ec", ip="127.0.0.1")
        self.server("expired", ["a.example.com"], start="20200101000000Z", end="20210101000000Z")
        self.server("soon", ["a.example.com"], days=7)
        self.server("a2", ["a.example.com"])        # a second certificate, for reload tests
        enc = self.server("enc", ["a.example.com"])
        enc_key = self.dir / "enc.encrypted.key"
        pw = self.dir / "enc.pass"
        pw.write_text(PASSWORD + "\n")
        _openssl("pkey", "-in", enc.key, "-aes256", "-passout", f"file:{pw}", "-out", str(enc_key))
        trad = self.dir / "enc.traditional.key"
        _openssl("rsa", "-in", enc.key, "-aes256", "-traditional", "-passout", f"file:{pw}",
                 "-out", str(trad))
        self.enc_traditional_key = str(trad)
        enc.key, enc.password_file = str(enc_key), str(pw)
        wrong = self.dir / "wrong.pass"
        wrong.write_text("not the password\n")
        self.wrong_password_file = str(wrong)

        clientca = self.root_ca("clientca", "/O=Fulcrum Test/CN=Fulcrum Test Client CA")
        self.client("alice", clientca, "alice")
        self.client("bob", clientca, "bob")
        self.client("mallory", clientca, "mallory")
        _openssl("ca", "-config", str(clientca.db / "ca.cnf"), "-batch", "-cert", clientca.crt,
                 "-keyfile", clientca.key, "-revoke", self.mallory.crt)
        self.crl = str(self.dir / "clientca.crl")
        _openssl("ca", "-config", str(clientca.db / "ca.cnf"), "-batch", "-cert", clientca.crt,
                 "-keyfile", clientca.key, "-gencrl", "-out", self.crl)
        rogue = self.root_ca("rogue", "/O=Example/CN=Rogue CA")
        self.issue("rogue_srv", rogue, "/O=Rogue/CN=localhost", "server",
                   san="DNS:localhost,IP:127.0.0.1")
        self.client("rogue_cli", rogue, "alice")
        # Every key readable by the tests only.
        for p in self.dir.glob("*.key"):
            p.chmod(0o600)
        return self


_pki = {}
_pki_lock = threading.Lock()


def pki(tmp_path_factory):
    """The session's PKI (made on first use)."""
    with _pki_lock:
        if "p" not in _pki:
            _pki["p"] = Pki(tmp_path_factory.mktemp("pki")).build()
        return _pki["p"]


# --------------------------------------------------------------------------
# config

def cert_entry(c, chain=True):
    d = {"cert": c.crt, "key": c.key}
    if chain and c.chain:
        d["chain"] = c.chain
    if c.password_file:
        d["key_password_file"] = c.password_file
    return d


def listener_tls(certs, **kw):
    d = {"certificates": [cert_entry(c) if isinstance(c, Cert) else c for c in certs]}
    d.update(kw)
    return d


def https_config(port, pools, certs, tls_kw=None, listener_kw=None, **kw):
    """http_helpers.http_config with the listener 'web' speaking https."""
    lk = {"protocol": "https", "tls": listener_tls(certs, **(tls_kw or {}))}
    lk.update(listener_kw or {})
    return http_config(port, pools, listener_kw=lk, **kw)


def ssl_config(port, servers, certs, tls_kw=None, pool_tls=None, workers=1, **kw):
    """One ssl listener 'front' on 127.0.0.1:port -> tcp pool 'backs'."""
    lst = {"name": "front", "bind": fmt_addr("127.0.0.1", port), "protocol": "ssl",
           "pool": "backs", "tls": listener_tls(certs, **(tls_kw or {}))}
    pl = {"name": "backs", "protocol": "tcp",
          "servers": [{"address": s if isinstance(s, str) else s.address} for s in servers]}
    if pool_tls is not None:
        pl["tls"] = pool_tls
    return make_config([lst], [pl], workers=workers, **kw)


def tls_counters(f, name):
    """The TLS counters of listener NAME from the shutdown log (stops f)."""
    if f.running():
        assert f.stop() == 0, f.error_log()
    for ln in f.error_log().splitlines():
        if " counters " in ln and f"listener={name} " in ln and "tls_handshakes=" in ln:
            rest = ln.split(" counters ", 1)[1]
            return {k: (int(v) if v.isdigit() else v)
                    for k, _, v in (p.partition("=") for p in rest.split()) if k}
    raise AssertionError(f"no TLS counters line for listener {name}:\n{f.error_log()}")


# --------------------------------------------------------------------------
# client side

def client_ctx(p, cert=None, minv=None, maxv=None, ciphers=None, alpn=None, verify=True,
               tickets=True):
    """A client context trusting the test root; cert: a client Cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(p.root.crt)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert.crt, cert.key)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def tls_connect(port, ctx, sni="a.example.com", host="127.0.0.1", session=None,
                timeout=SOCK_TIMEOUT):
    """A TLS socket after a completed handshake (raises ssl.SSLError or
    OSError when it fails)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def read_response(s, limit=16 * 1024 * 1024):
    """(status, headers dict lower-case, body) of one HTTP/1.1 response with
    Content-Length (or until close)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError(f"closed before a response head: {buf!r}")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = hdrs.get("content-length")
    while (n is None or len(body) < int(n)) and len(body) < limit:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not d:
            break
        body += d
    return status, hdrs, body


def https_get(port, ctx, path="/", sni="a.example.com", host_header=None, headers=(),
              session=None, keep=False):
    """One GET over a new TLS connection: (status, headers, body, info);
    info has version, cipher, reused, session, cert (sha256 of the
    server's leaf) and sock (closed unless keep)."""
    s = tls_connect(port, ctx, sni=sni, session=session)
    req = f"GET {path} HTTP/1.1\r\nHost: {host_header or sni or 'x'}\r\n"
    for k, v in headers:
        req += f"{k}: {v}\r\n"
    if not keep:
        req += "Connection: close\r\n"
    s.sendall((req + "\r\n").encode())
    st, h, b = read_response(s)
    der = s.getpeercert(binary_form=True)
    info = SimpleNamespace(version=s.version(), cipher=s.cipher()[0], reused=s.session_reused,
                           session=s.session, cert=hashlib.sha256(der).hexdigest() if der else None,
                           sock=s)
    if not keep:
        s.close()
    return st, h, b, info


def s_client(port, *args, input=b"", sni="a.example.com", timeout=PROC_TIMEOUT, cafile=None):
    """openssl s_client -connect 127.0.0.1:port ...; returns (rc, text of
    stdout+stderr). input is sent on stdin, which is then closed."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    if sni:
        cmd += ["-servername", sni]
    else:
        cmd += ["-noservername"]
    if cafile:
        cmd += ["-CAfile", cafile, "-verify_return_error"]
    cmd += list(args)
    r = run(cmd, input=input, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def s_client_until(port, args, until, input=b"", sni="a.example.com", cafile=None,
                   timeout=10):
    """Run s_client (stdin kept open after input) until its output contains
    UNTIL or timeout; then stop it. Returns its output so far."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-servername", sni] if sni else ["-noservername"]
    if cafile:
        cmd += ["-CAfile", cafile, "-verify_return_error"]
    proc = subprocess.Popen(cmd + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = bytearray()
    done = threading.Event()

    def reader():
        while True:
            d = proc.stdout.read1(65536)
            if not d:
                break
            out.extend(d)
            if until.encode() in out:
                done.set()
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        if input:
            proc.stdin.write(input)
            proc.stdin.flush()
        done.wait(timeout)
    finally:
        proc.kill()
        proc.wait(5)
        t.join(5)
        proc.stdin.close()
        proc.stdout.close()
    return out.decode(errors="replace")


def curl(url, *args, resolve=None, timeout=PROC_TIMEOUT):
    """curl -sS URL; returns the CompletedProcess (text)."""
    cmd = ["curl", "-sS", "--max-time", str(timeout - 5)]
    if resolve:
        cmd += ["--resolve", resolve]
    cmd += list(args) + [url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class BioClient:
    """A TLS client over memory BIOs on a plain socket: the test sees the
    exact bytes of the first flight (the ClientHello) and may send them in
    any fragmentation it likes."""

    def __init__(self, sock, ctx, sni):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=False, server_hostname=sni)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = self.out.read()

    def send_hello(self, pieces=None):
        """Send the ClientHello: whole, or as the given list of pieces."""
        for p in pieces or [self.hello]:
            self.sock.sendall(p)

    def _pump_out(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pump_in(self):
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
            return False
        self.inc.write(data)
        return True

    def finish(self, limit=50):
        """Complete the handshake (after send_hello)."""
        for _ in range(limit):
            try:
                self.obj.do_handshake()
                self._pump_out()
                return
            except ssl.SSLWantReadError:
                self._pump_out()
                if not self._pump_in():
                    raise EOFError("closed during the handshake")
        raise AssertionError("handshake did not finish")

    def write(self, data):
        self.obj.write(data)
        self._pump_out()

    def read(self, n=65536):
        for _ in range(1000):
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._pump_out()
                if not self._pump_in():
                    return b""
        raise AssertionError("read never completed")


def split_records(hello, at):
    """Re-frame the first TLS record of HELLO (a ClientHello) as two records,
    the first carrying AT bytes of the handshake message."""
    typ, ver, n = hello[0], hello[1:3], struct.unpack(">H", hello[3:5])[0]
    body, rest = hello[5:5 + n], hello[5 + n:]
    one, two = body[:at], body[at:]
    return (bytes([typ]) + ver + struct.pack(">H", len(one)) + one
            + bytes([typ]) + ver + struct.pack(">H", len(two)) + two + rest)


def legacy_client_hello(version, sni="a.example.com"):
    """A raw TLS 1.0 (0x0301) or 1.1 (0x0302) ClientHello with no
    supported_versions extension, offering ECDHE-RSA/ECDSA-AES128-SHA and
    AES128-SHA (which such clients have)."""
    name = sni.encode()
    sni_ext = struct.pack(">HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    groups = struct.pack(">HHHH", 10, 4, 2, 0x0017)
    ecpf = struct.pack(">HHB B", 11, 2, 1, 0)
    exts = sni_ext + groups + ecpf + struct.pack(">HH", 0xff01, 1) + b"\x00"
    suites = struct.pack(">HHHH", 6, 0xc013, 0xc009, 0x002f)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00" + suites + b"\x01\x00"
            + struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16" + struct.pack(">HH", 0x0301, len(hs)) + hs


def read_tls_records(sock, timeout=SOCK_TIMEOUT):
    """(bytes the server sent, whether it closed) within timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 65536:
            d = sock.recv(65536)
            if not d:
                return data, True
            data += d
    except ConnectionResetError:
        return data, True
    except socket.timeout:
        pass
    return data, False


# --------------------------------------------------------------------------
# server side

def server_ctx(cert, client_ca=None, require_client=False, minv=None, maxv=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.fullchain or cert.crt, cert.key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_wrap_handler(ctx, inner):
    """A conftest Backend handler: TLS handshake on the accepted socket,
    record what was negotiated in conn.info, then run inner(backend, conn)
    on the TLS socket. A failed handshake is recorded as info['tls_error']."""
    seen = {}

    def on_sni(sslsock, name, _ctx):
        seen[id(sslsock)] = name

    ctx.sni_callback = on_sni

    def handler(backend, conn):
        try:
            s = ctx.wrap_socket(conn.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            conn.info["tls_error"] = repr(e)
            raise
        conn.info.update({
            "sni": seen.pop(id(s), None),
            "version": s.version(),
            "cipher": s.cipher()[0],
            "alpn": s.selected_alpn_protocol(),
            "reused": s.session_reused,
            "peer_cert": s.getpeercert(binary_form=True),
        })
        conn.sock = s
        inner(backend, conn)

    return handler


def tls_backend(backend, name, ctx, inner=None):
    """conftest's backend fixture, speaking TLS with ctx; inner defaults to
    conftest.hello (greeting line, then echo)."""
    from conftest import hello
    b = backend(name)
    b.handler = tls_wrap_handler(ctx, inner or hello)
    return b


def tls_http_backend(backend, ctx, name="A", respond=None):
    """http_helpers.HttpBackend over TLS."""
    hb = http_backend(backend, name, respond=respond)
    hb.backend.handler = tls_wrap_handler(ctx, hb._handle)
    return hb


def conn_infos(b):
    """info dicts of every connection a Backend accepted (wait for handshakes)."""
    with b.cv:
        conns = list(b.conns)
    wait_until(lambda: all("version" in c.info or "tls_error" in c.info or c.done.is_set()
                           for c in conns), SOCK_TIMEOUT)
    return [c.info for c in conns]


def write_config(path, config):
    from conftest import to_yaml
    Path(path).write_text(to_yaml(config) + "\n")
    return path


def bio_tls_server(ctx):
    """A conftest Backend handler: a TLS server over memory BIOs fed from
    conn.recv_record, so conn.received holds every byte exactly as it
    arrived (the client's ClientHello first). It records the server name
    the ssl context saw (sni_callback) in conn.info['sni'], greets with
    'NAME SNI\\n' over TLS, then echoes."""
    seen = {}

    def on_sni(obj, name, _ctx):
        seen[id(obj)] = name

    ctx.sni_callback = on_sni

    def handler(backend, conn):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=True)

        def flush():
            d = out.read()
            if d:
                conn.sock.sendall(d)

        def feed():
            d = conn.recv_record()
            if not d:
                inc.write_eof()
                return False
            inc.write(d)
            return True

        for _ in range(100):
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                if not feed():
                    return
            except ssl.SSLError as e:
                conn.info["tls_error"] = repr(e)
                flush()
                return
        flush()
        conn.info["sni"] = seen.pop(id(obj), None)
        conn.info["version"] = obj.version()
        obj.write(f"{backend.name} {conn.info['sni']}\n".encode())
        flush()
        for _ in range(1000000):
            try:
                data = obj.read(65536)
            except ssl.SSLWantReadError:
                flush()
                if not feed():
                    return
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return
            if not data:
                return
            obj.write(data)
            flush()

    return handler

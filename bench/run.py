#!/usr/bin/python3
"""Side-by-side benchmark of fulcrum, HAProxy, NGINX and the direct path.

Runs on loopback only, in one go: every contender in every round (rotated
order), medians over the rounds. Writes docs/benchmarks.md and a plot
(PNG with matplotlib when it is installed, otherwise a stdlib SVG).
Scenarios A-C put the proxies in TCP mode, D-F in HTTP mode, G-I terminate
TLS (HTTPS) in front of the same HTTP backend, and J downloads a large body
through the HTTP-mode proxies.

    /usr/bin/python3 bench/run.py [--scenarios A,B,C,D,E,F,G,H,I,J] [--rounds N]
                                  [--duration S] [--http-duration S]
                                  [--tls-duration S] [--quick] [--out PATH]
                                  [--keep] [--fresh]
    /usr/bin/python3 bench/run.py --render [--out PATH] [--results PATH]

The figures of every scenario are stored in bench/results.json (next to a
custom --out: the same name with .json), and the report is rendered from
all stored scenarios, so a run of a few scenarios keeps the others' figures
(each section says which run it comes from); --render only renders it. The
report ends with the section "Health checks at scale" (issue 5), rendered
by bench/health_scale.py's code from bench/health_results.json.

See bench/README.md for what is measured and how. Python 3 stdlib only (plus
gcc for the paced load generator of scenario F, the TLS load generator of
G and H and the parser microbenchmark, all C files in bench/, and the
openssl CLI for the per-run certificate of G-I).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import resource
import re
import shlex
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "bench" / "templates"
FULCRUM = ROOT / "build" / "fulcrum"

CONTENDERS = ["direct", "fulcrum", "haproxy", "nginx"]
PROXIES = ["fulcrum", "haproxy", "nginx"]
LABEL = {"direct": "direct", "fulcrum": "fulcrum", "haproxy": "HAProxy", "nginx": "NGINX"}
# Scenario C also runs fulcrum with `tcp_congestion: cubic` on the pool toward
# the iperf3 server (another listener of the same fulcrum process): it shows
# what that option does here. The goal rows are fulcrum's defaults.
CC_VARIANT = "fulcrum-cc"
CC_ALGO = "cubic"
LABEL[CC_VARIANT] = f"fulcrum, `tcp_congestion: {CC_ALGO}` on the pool"
# Scenario B also runs NGINX with `proxy_half_close on` (another server of the
# same NGINX process). fulcrum must keep each direction of a connection open
# until that side ends it (issue 2: half-close propagated both ways), and
# HAProxy's mode tcp does so by default; NGINX's stream module by default
# ends the whole session when either side closes, which saves it a shutdown,
# a read and a wake-up per connection. B's CPU goal is taken against the
# peers that do the same job; NGINX's default stays in the table.
HC_VARIANT = "nginx-hc"
LABEL[HC_VARIANT] = "NGINX, `proxy_half_close on`"
PROCESS_OF = {CC_VARIANT: "fulcrum", HC_VARIANT: "nginx"}
ALL_CONTENDERS = CONTENDERS + [CC_VARIANT, HC_VARIANT]
SCENARIOS = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]
TCP_SCENARIOS = ["A", "B", "C"]  # proxies in TCP mode (issue 2)
HTTP_SCENARIOS = ["D", "E", "F"]  # proxies in HTTP mode (issue 3)
TLS_SCENARIOS = ["G", "H", "I"]  # HTTPS: TLS terminated at the proxy (issue 4)
BODY_SCENARIOS = ["J"]  # large HTTP bodies through the HTTP-mode proxies (no goal)
HTTP_MODE = HTTP_SCENARIOS + BODY_SCENARIOS  # the scenarios of the HTTP-mode proxies
BULK_SCENARIOS = ["C", "J"]  # figures per GB moved
J_BYTES = 2 * 1024 ** 3  # the body scenario J downloads (a sparse file at the backend)
HANDSHAKE_SCENARIOS = ["G", "H"]  # bench/tls_load.c, a new connection per request
CLOSE_SCENARIOS = ["B", "E"]  # wrk -H 'Connection: close'
SCENARIO_TITLE = {
    "A": "Scenario A: small HTTP requests, keep-alive",
    "B": "Scenario B: small HTTP requests, new connection per request",
    "C": "Scenario C: bulk transfer (iperf3, one stream)",
    "D": "Scenario D: HTTP proxying, keep-alive",
    "E": "Scenario E: HTTP proxying, `Connection: close` per request",
    "F": "Scenario F: HTTP latency at a fixed request rate",
    "G": "Scenario G: HTTPS, full TLS handshake per request",
    "H": "Scenario H: HTTPS, resumed TLS handshake per request",
    "I": "Scenario I: HTTPS keep-alive",
    "J": "Scenario J: large HTTP download through the proxy",
}
WRK_CONNECTIONS = 50
GOAL_RPS_VS_HAPROXY = 1.10
GOAL_CPU_VS_BEST_PEER = 0.90
GOAL_BULK_VS_DIRECT = 0.95
# issue 3 (HTTP mode)
GOAL_H_RPS_VS_BEST_PEER = 1.15
GOAL_H_CPU_VS_BEST_PEER = 0.85
GOAL_H_P99_VS_BEST_PEER = 1.00
# issue 4 (HTTPS)
GOAL_T_FULL_VS_BEST_PEER = 1.00
GOAL_T_RESUMED_VS_BEST_PEER = 1.10
GOAL_T_RPS_VS_BEST_PEER = 1.10
TLS_CONNECTIONS = 50  # concurrent connections of tls_load (G, H)
TLS_WARMUP = 1.0  # seconds of tls_load before recording starts
TLS_SUITE = "TLS_AES_128_GCM_SHA256"  # the only suite the clients offer
TLS_GROUP = "X25519"  # the only key-exchange group the clients offer
TLS_SNI = "localhost"
TLS_LOAD_SRC = ROOT / "bench" / "tls_load.c"
RESULTS_FORMAT = 1
NOISY_LOAD = 0.25  # a run in which other processes used more of a CPU is "disturbed"
MIN_CLEAN_RUNS = 3  # disturbed runs are left out of the medians if this many others remain
F_CONNECTIONS = 50  # keep-alive connections of the paced load generator
F_WARMUP = 1.0  # seconds of paced load before recording starts
F_DRAIN = 2.0  # seconds allowed after the last request was due
F_RATE_SHARE = 0.5  # F's rate: this share of the slowest proxy's D requests/s
# F: a run in which the load generator's own delay in sending (its send lag)
# was over this many seconds for 1% of the requests, or that left requests
# unsent, measured a stalled load CPU, not the proxy (the direct path's p99
# send lag is about 0.1 ms); it is done again up to F_REDO times and left out
# of the medians like a disturbed run.
F_OVERRUN_S = 0.01
F_REDO = 2
PACED_LOAD_SRC = ROOT / "bench" / "paced_load.c"
HEALTH_RESULTS = ROOT / "bench" / "health_results.json"  # bench/health_scale.py's runs
PARSER_BENCH_SRC = ROOT / "bench" / "h1_parse_bench.c"
PARSER_BENCH = ROOT / "build" / "h1_parse_bench"
PARSER_BENCH_RUNS = 5
# names of the proxy processes, for the report
PROC_LABEL = {"fulcrum": "fulcrum", "haproxy": "HAProxy", "nginx-stream": "NGINX",
              "fulcrum-http": "fulcrum (http)", "haproxy-http": "HAProxy (http)",
              "nginx-http": "NGINX (http)", "fulcrum-https": "fulcrum (https)",
              "haproxy-https": "HAProxy (https)", "nginx-https": "NGINX (https)"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

class Proc:
    """A process we started, tracked by pid; stopped by pid only."""

    def __init__(self, name, argv, workdir, cpu_children=False):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.cpu_children = cpu_children  # nginx: CPU is in the workers
        self.popen = None
        self.starts = 0
        self.exits = []  # (when, returncode) of unexpected exits
        self.out_path = workdir / f"{name}.out.log"
        self.ports = []  # where it listens once started (waited for on restart)

    def start(self):
        self.starts += 1
        out = open(self.out_path, "ab")
        out.write(f"--- start #{self.starts}: {shlex.join(self.argv)}\n".encode())
        out.flush()
        # New session: a Ctrl-C in the terminal reaches only run.py, which
        # then stops everything it started, in order.
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      cwd=self.workdir)
        out.close()

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        if self.popen is None:
            return False
        rc = self.popen.poll()
        if rc is not None:
            return False
        return True

    def check(self):
        """Returns False (and records it) if the process exited on its own."""
        if self.popen is not None and self.popen.poll() is not None:
            self.exits.append((time.time(), self.popen.returncode))
            self.popen = None
            return False
        return self.popen is not None

    def cpu_pids(self):
        if not self.alive():
            return []
        if self.cpu_children:
            return children(self.pid)
        return [self.pid]

    def stop(self, grace=5.0):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            kids = children(self.pid) if self.cpu_children else []
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
                for k in kids:  # nginx workers left behind by the killed master
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.popen = None


def children(pid):
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
        return kids
    except OSError:
        pass
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if stat_fields(int(d))[1] == pid:
                    kids.append(int(d))
            except OSError:
                pass
    return kids


def stat_fields(pid):
    """Fields of /proc/PID/stat after the comm: [state, ppid, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    return [rest[0]] + [int(x) for x in rest[1:]]


def cpu_times(pids):
    """(utime, stime) of the processes (all their threads), in seconds."""
    user = system = 0
    for pid in pids:
        f = stat_fields(pid)
        user += f[11]  # field 14 of proc(5)
        system += f[12]  # field 15
    return user / CLK_TCK, system / CLK_TCK


def ctx_switches(pids):
    """Voluntary + involuntary context switches of the processes (all threads)."""
    n = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
    return n


def cpu_busy():
    """{cpu: (busy, total)} in clock ticks from /proc/stat (busy = all but
    idle and iowait, so it includes irq and softirq time)."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                total = sum(v[:8])  # guest time is already in user
                res[m.group(1)] = (total - v[3] - v[4], total)
    return res


def is_listening(port):
    """True if something listens on 127.0.0.1:port (IPv4, /proc/net/tcp).
    Checked without connecting, so that no proxy or iperf3 sees a probe."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[1] == want and parts[3] == "0A":
                return True
    return False


def tail(path, n=2000):
    """The last n characters of a file ("" if it cannot be read)."""
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited during startup; see {proc.out_path}:\n"
                             + tail(proc.out_path))
        if is_listening(port):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listening on 127.0.0.1:{port} after {timeout}s "
                     f"({proc.name if proc else ''})")


def free_ports(n):
    """n free loopback ports below the ephemeral range (so that client
    connections of earlier runs cannot be sitting on them)."""
    lo = 20000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph = int(f.read().split()[0])
        hi = max(lo + 2000, eph - 1)
    except (OSError, ValueError):
        hi = 32000
    ports = []
    p = random.randrange(lo, hi - 200)
    while len(ports) < n:
        p = p + 1 if p < hi else lo
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
    return ports


def render(template, dest, **values):
    text = string.Template((TEMPLATES / template).read_text()).substitute(
        {k: str(v) for k, v in values.items()})
    dest.write_text(text)
    return dest


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (r.stdout or "") + (r.stderr or "")
        return text.strip().splitlines()[0] if text.strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def find_stream_module():
    for d in ["/usr/lib/nginx/modules", "/usr/share/nginx/modules"]:
        p = Path(d) / "ngx_stream_module.so"
        if p.exists():
            return p
    raise BenchError("ngx_stream_module.so not found: install libnginx-mod-stream (make deps)")


# ---------------------------------------------------------------- load tools

UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise BenchError("cannot parse wrk output:\n" + out)
    r["requests"] = int(m.group(1))
    r["seconds"] = float(m.group(2)) * UNIT[m.group(3)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else r["requests"] / r["seconds"]
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+" + pct + r"%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        r["p" + pct] = float(m.group(1)) * UNIT[m.group(2)] if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                           map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"]["non2xx"] = int(m.group(1))
    return r


def tls_group_name(g):
    """One spelling for a key-exchange group (OpenSSL prints x25519 or X25519,
    prime256v1, secp256r1 or P-256)."""
    return {"x25519": "X25519", "prime256v1": "P-256", "secp256r1": "P-256",
            "p-256": "P-256", "x448": "X448"}.get(g.lower(), g)


def parse_tls_load(out):
    """The JSON summary of bench/tls_load.c."""
    try:
        j = json.loads(out)
    except ValueError:
        raise BenchError("cannot parse tls_load output:\n" + out[-500:])
    r = {"requests": j["completed"], "completed": j["completed_total"],
         "rps": j["handshakes_per_s"], "window": j["window"],
         "resumed": j["resumed"], "resumed_fraction": j["resumed_fraction"],
         "offered": j["offered"], "tickets": j["tickets"], "renewed": j.get("renewed"),
         "negotiated": {"protocol": j["protocol"], "cipher": j["cipher"],
                        "group": tls_group_name(j["group"]), "signature": j["signature"]},
         "errors": {k: v for k, v in j["errors"].items()}}
    if j["completed"]:
        r["client_cpu_per_req"] = (j["client_cpu_user"] + j["client_cpu_sys"]) / j["completed"]
    if "proxy_cpu_user" in j:
        r["window_cpu_user"], r["window_cpu_sys"] = j["proxy_cpu_user"], j["proxy_cpu_sys"]
    lat, hs = j["latency"], j["handshake"]
    if lat["n"] > 0:
        for k in ("p50", "p90", "p99", "p999", "max", "mean"):
            r[k] = lat[k]
        r["hs_p50"], r["hs_p99"] = hs["p50"], hs["p99"]
    return r


def parse_paced(out):
    """The JSON summary of bench/paced_load.c."""
    try:
        j = json.loads(out)
    except ValueError:
        raise BenchError("cannot parse paced_load output:\n" + out[-500:])
    r = {"requests": j["recorded"], "completed": j["completed"], "rps": j["achieved_rate"],
         "rate": j["rate"], "max_backlog": j["max_backlog"],
         "all_busy_events": j["all_busy_events"], "reconnects": j["reconnects"]}
    lat, svc, lag = j["latency"], j["service"], j["send_lag"]
    if lat["n"] > 0:
        for k in ("p50", "p90", "p99", "p999", "max", "mean"):
            r[k] = lat[k]
        r["svc_p50"], r["svc_p99"] = svc["p50"], svc["p99"]
        r["lag_p50"], r["lag_p99"] = lag["p50"], lag["p99"]
    r["errors"] = {"closed": j["errors_closed"], "status": j["errors_status"],
                   "parse": j["errors_parse"], "send": j["errors_send"],
                   "unanswered": j["unanswered"], "unsent": j["unsent"]}
    return r


class Bench:
    def __init__(self, args):
        self.args = args
        self.rounds = args.rounds
        self.duration = args.duration
        self.http_duration = args.http_duration
        self.scenarios = args.scenarios
        self.tcp = any(sc in TCP_SCENARIOS for sc in self.scenarios)
        self.http = any(sc in HTTP_MODE for sc in self.scenarios)
        self.tls = any(sc in TLS_SCENARIOS for sc in self.scenarios)
        self.tls_duration = args.tls_duration
        self.fulcrum_tls_skip = None  # why fulcrum sits out G-I (its https config was refused)
        self.tls_params = {}  # contender -> what `openssl s_client` negotiated (G-I)
        self.f_rate = args.f_rate  # None: from D (or a calibration run)
        self.f_rate_how = "given with --f-rate" if args.f_rate else None
        self.parser_bench = None  # {"runs": [ns, ...], "line": str} or {"error": str}
        self.dir = Path(tempfile.mkdtemp(prefix="fulcrum-bench-"))
        (self.dir / "nginx-tmp").mkdir()
        ncpu = os.cpu_count() or 1
        avail = sorted(os.sched_getaffinity(0))
        if len(avail) >= 2:
            self.proxy_cpu, self.load_cpu = str(avail[0]), str(avail[1])
        else:
            self.proxy_cpu = self.load_cpu = str(avail[0])
        self.ncpu = ncpu
        self.procs = []
        self.proxy, self.hproxy, self.sproxy = {}, {}, {}  # TCP, HTTP and HTTPS mode
        self.iperf_server = None
        self.results = {s: {c: [] for c in ALL_CONTENDERS} for s in SCENARIOS}
        self.cc_variant = False  # set by setup() when the kernel has CC_ALGO
        self.commands = {}  # (scenario, contender) -> command line
        self.notes = []

    # ------------------------------------------------------------ setup

    def setup(self):
        tools = ["wrk", "haproxy", "nginx", "taskset"]
        if "C" in self.scenarios:
            tools.append("iperf3")
        if "J" in self.scenarios:
            tools.append("curl")
        if self.http or self.tls:
            tools.append("gcc")
        if self.tls:
            tools.append("openssl")
        for tool in tools:
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found: run `make deps` (scripts/deps.sh)")
        if not FULCRUM.exists():
            raise BenchError(f"{FULCRUM} not built: run `make`")
        self.fulcrum_id = fulcrum_identity()
        (self.http_backend, self.bulk_backend,
         f_http, f_bulk, h_http, h_bulk, n_http, n_bulk, f_web, h_web, n_web,
         f_tls, h_tls, n_tls, f_bulk_cc, n_http_hc) = free_ports(16)
        self.http_port = {"direct": self.http_backend, "fulcrum": f_http,
                          "haproxy": h_http, "nginx": n_http, HC_VARIANT: n_http_hc}
        self.bulk_port = {"direct": self.bulk_backend, "fulcrum": f_bulk,
                          "haproxy": h_bulk, "nginx": n_bulk, CC_VARIANT: f_bulk_cc}
        try:
            with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
                self.cc_variant = CC_ALGO in f.read().split()
            with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
                self.system_cc = f.read().strip()
        except OSError:
            self.cc_variant, self.system_cc = False, "unknown"
        self.web_port = {"direct": self.http_backend, "fulcrum": f_web,
                         "haproxy": h_web, "nginx": n_web}
        self.tls_port = {"fulcrum": f_tls, "haproxy": h_tls, "nginx": n_tls}
        d = self.dir
        tp, tl = ["taskset", "-c", self.proxy_cpu], ["taskset", "-c", self.load_cpu]
        self.configs = {}
        cfg_backend = render("backend-nginx.conf", d / "backend-nginx.conf",
                             dir=d, http_port=self.http_backend)
        self.configs["backend"] = cfg_backend
        self.backend = Proc("backend-nginx", tl + [
            "nginx", "-p", str(d), "-c", str(cfg_backend), "-e", str(d / "backend-nginx.stderr.log")],
            d, cpu_children=True)
        self.backend.ports = [self.http_backend]
        self.procs = [self.backend]

        if self.tcp:
            stream_module = find_stream_module()
            common = dict(dir=d, http_backend=self.http_backend, bulk_backend=self.bulk_backend)
            cfg_fulcrum = render("fulcrum.yaml", d / "fulcrum.yaml", http_listen=f_http,
                                 bulk_listen=f_bulk, bulk_cc_listen=f_bulk_cc,
                                 bulk_cc_algo=CC_ALGO if self.cc_variant else "reno", **common)
            cfg_haproxy = render("haproxy.cfg", d / "haproxy.cfg", http_listen=h_http,
                                 bulk_listen=h_bulk, **common)
            cfg_nginx = render("nginx-stream.conf", d / "nginx-stream.conf", http_listen=n_http,
                               http_hc_listen=n_http_hc, bulk_listen=n_bulk,
                               stream_module=stream_module, **common)
            self.check_configs(cfg_fulcrum, cfg_haproxy)
            self.configs.update({"fulcrum": cfg_fulcrum, "haproxy": cfg_haproxy,
                                 "nginx": cfg_nginx})
            if "C" in self.scenarios:
                self.iperf_server = Proc("iperf3-server", tl + [
                    "iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.bulk_backend)], d)
                self.iperf_server.ports = [self.bulk_backend]
                self.procs.append(self.iperf_server)
            self.proxy = {
                "fulcrum": Proc("fulcrum", tp + [str(FULCRUM), "-c", str(cfg_fulcrum)], d),
                "haproxy": Proc("haproxy", tp + ["haproxy", "-db", "-f", str(cfg_haproxy)], d),
                "nginx": Proc("nginx-stream", tp + [
                    "nginx", "-p", str(d), "-c", str(cfg_nginx), "-e",
                    str(d / "nginx-stream.stderr.log")], d, cpu_children=True),
            }
            for name, p in self.proxy.items():
                p.ports = [self.http_port[name], self.bulk_port[name]]
            self.proxy["fulcrum"].ports.append(f_bulk_cc)
            self.proxy["nginx"].ports.append(n_http_hc)
            self.procs += list(self.proxy.values())

        if self.http:
            common = dict(dir=d, http_backend=self.http_backend)
            cfg_fulcrum = render("fulcrum-http.yaml", d / "fulcrum-http.yaml",
                                 web_listen=f_web, **common)
            cfg_haproxy = render("haproxy-http.cfg", d / "haproxy-http.cfg",
                                 web_listen=h_web, **common)
            cfg_nginx = render("nginx-http.conf", d / "nginx-http.conf",
                               web_listen=n_web, **common)
            self.check_configs(cfg_fulcrum, cfg_haproxy)
            self.configs.update({"fulcrum-http": cfg_fulcrum, "haproxy-http": cfg_haproxy,
                                 "nginx-http": cfg_nginx})
            self.hproxy = {
                "fulcrum": Proc("fulcrum-http", tp + [str(FULCRUM), "-c", str(cfg_fulcrum)], d),
                "haproxy": Proc("haproxy-http", tp + ["haproxy", "-db", "-f", str(cfg_haproxy)], d),
                "nginx": Proc("nginx-http", tp + [
                    "nginx", "-p", str(d), "-c", str(cfg_nginx), "-e",
                    str(d / "nginx-http.stderr.log")], d, cpu_children=True),
            }
            for name, p in self.hproxy.items():
                p.ports = [self.web_port[name]]
            self.procs += list(self.hproxy.values())
            if "J" in self.scenarios:
                # Sparse: the backend's sendfile() reads zero pages, no disk.
                # NGINX's worker (user nobody when run as root) must reach it.
                os.chmod(d, 0o711)
                (d / "www").mkdir(mode=0o755)
                with open(d / "www" / "big.bin", "wb") as f:
                    f.truncate(J_BYTES)
                os.chmod(d / "www" / "big.bin", 0o644)
            self.build_parser_bench()
            if "F" in self.scenarios:
                self.paced_load = d / "paced_load"
                r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.paced_load),
                                    str(PACED_LOAD_SRC)], capture_output=True, text=True,
                                   timeout=120)
                if r.returncode != 0:
                    raise BenchError("building bench/paced_load.c failed:\n" + r.stdout + r.stderr)

        if self.tls:
            self.setup_tls(tp)

        for p in self.procs:
            p.start()
            for port in p.ports:
                wait_listening(port, p)
        if self.tls:
            self.probe_tls()

    def setup_tls(self, tp):
        """Certificate, client OpenSSL config, HTTPS-mode proxies and
        tls_load, for scenarios G-I."""
        d = self.dir
        tls = d / "tls"
        tls.mkdir()
        # A fresh self-signed ECDSA P-256 certificate per run (never stored).
        argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tls / "key.pem"),
                "-out", str(tls / "cert.pem"), "-days", "365", "-subj", f"/CN={TLS_SNI}",
                "-addext", f"subjectAltName=DNS:{TLS_SNI},IP:127.0.0.1"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise BenchError("generating the certificate failed:\n" + r.stdout + r.stderr)
        self.cert_cmd = shlex.join([str(Path(x).relative_to(d)) if x.startswith(str(d)) else x
                                    for x in argv])
        # HAProxy wants certificate and key in one file
        (tls / "haproxy.pem").write_text((tls / "cert.pem").read_text()
                                         + (tls / "key.pem").read_text())
        for f in tls.iterdir():
            f.chmod(0o600)
        # wrk has no TLS options: an OpenSSL config (OPENSSL_CONF) makes every
        # client of this run (wrk, openssl s_client, tls_load) offer TLS 1.3
        # only, one cipher suite and one group.
        self.client_conf = d / "client-openssl.cnf"
        self.client_conf.write_text(
            "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
            "[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\n"
            f"MinProtocol = TLSv1.3\nMaxProtocol = TLSv1.3\nCiphersuites = {TLS_SUITE}\n"
            f"Groups = {TLS_GROUP}\n")
        self.client_env = dict(os.environ, OPENSSL_CONF=str(self.client_conf))
        common = dict(dir=d, http_backend=self.http_backend)
        cfg_fulcrum = render("fulcrum-https.yaml", d / "fulcrum-https.yaml",
                             tls_listen=self.tls_port["fulcrum"], **common)
        cfg_haproxy = render("haproxy-https.cfg", d / "haproxy-https.cfg",
                             tls_listen=self.tls_port["haproxy"], **common)
        cfg_nginx = render("nginx-https.conf", d / "nginx-https.conf",
                           tls_listen=self.tls_port["nginx"], **common)
        r = subprocess.run([str(FULCRUM), "check", "-c", str(cfg_fulcrum)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            why = " ".join((r.stdout + r.stderr).split())[:400]
            if r.returncode < 0:
                why = (why + " " if why else "") + (
                    f"(killed by signal {-r.returncode}, "
                    f"{signal.Signals(-r.returncode).name})")
            elif not why:
                why = f"(exit status {r.returncode}, no message)"
            self.fulcrum_tls_skip = (f"`build/fulcrum check` refused the https config "
                                     f"(`bench/templates/fulcrum-https.yaml`): {why}")
            log("!! fulcrum sits out scenarios G-I: its https config was refused: " + why)
        r = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg_haproxy)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError("haproxy -c failed (https):\n" + r.stdout + r.stderr)
        self.configs.update({"haproxy-https": cfg_haproxy, "nginx-https": cfg_nginx})
        self.sproxy = {
            "haproxy": Proc("haproxy-https", tp + ["haproxy", "-db", "-f", str(cfg_haproxy)], d),
            "nginx": Proc("nginx-https", tp + [
                "nginx", "-p", str(d), "-c", str(cfg_nginx), "-e",
                str(d / "nginx-https.stderr.log")], d, cpu_children=True),
        }
        if not self.fulcrum_tls_skip:
            self.configs["fulcrum-https"] = cfg_fulcrum
            self.sproxy["fulcrum"] = Proc("fulcrum-https", tp + [str(FULCRUM), "-c",
                                                                 str(cfg_fulcrum)], d)
        for name, p in self.sproxy.items():
            p.ports = [self.tls_port[name]]
        self.procs += [self.sproxy[c] for c in PROXIES if c in self.sproxy]
        if any(sc in HANDSHAKE_SCENARIOS for sc in self.scenarios):
            self.tls_load = d / "tls_load"
            r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.tls_load),
                                str(TLS_LOAD_SRC), "-lssl", "-lcrypto"],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise BenchError("building bench/tls_load.c failed (libssl-dev?):\n"
                                 + r.stdout + r.stderr)

    def probe_tls(self):
        """One `openssl s_client` handshake per HTTPS proxy, as the load
        generators' OpenSSL config makes them: what was negotiated (the same
        for every contender, or the report says otherwise)."""
        for c, p in self.sproxy.items():
            argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.tls_port[c]}",
                    "-servername", TLS_SNI]
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                   stdin=subprocess.DEVNULL, env=self.client_env)
                out = r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                out = ""
            m = re.search(r"New, (TLSv[\d.]+), Cipher is (\S+)", out)
            g = re.search(r"Server Temp Key: (\S+?),", out)
            sig = re.search(r"Peer signature type: (\S+)", out)
            dig = re.search(r"Peer signing digest: (\S+)", out)
            key = re.search(r"Server public key is (\d+) bit", out)
            self.tls_params[c] = {
                "protocol": m.group(1) if m else "?", "cipher": m.group(2) if m else "?",
                "group": tls_group_name(g.group(1)) if g else "?",
                "signature": (f"{sig.group(1)}+{dig.group(1)}" if sig and dig else "?"),
                "key_bits": key.group(1) if key else "?"}
            log(f"bench: TLS with {LABEL[c]}: " + ", ".join(
                f"{k} {v}" for k, v in self.tls_params[c].items()))
        self.tls_probe_cmd = ("OPENSSL_CONF=client-openssl.cnf openssl s_client -connect "
                              f"127.0.0.1:PORT -servername {TLS_SNI} </dev/null")

    def contenders(self, scenario):
        """Who runs in a scenario: no direct path in front of a plain-HTTP
        backend for the HTTPS scenarios, and no fulcrum there if its https
        config was refused."""
        if scenario in TLS_SCENARIOS:
            return [c for c in PROXIES if c in self.sproxy]
        return who(self, scenario)

    def check_configs(self, cfg_fulcrum, cfg_haproxy):
        r = subprocess.run([str(FULCRUM), "check", "-c", str(cfg_fulcrum)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError("fulcrum check failed:\n" + r.stdout + r.stderr)
        r = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg_haproxy)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError("haproxy -c failed:\n" + r.stdout + r.stderr)

    def proxy_for(self, scenario, contender):
        """The proxy process under test in this scenario (None for direct)."""
        table = (self.hproxy if scenario in HTTP_MODE else
                 self.sproxy if scenario in TLS_SCENARIOS else self.proxy)
        return table.get(PROCESS_OF.get(contender, contender))

    def port_for(self, scenario, contender):
        if scenario == "C":
            return self.bulk_port[contender]
        if scenario in HTTP_MODE:
            return self.web_port[contender]
        if scenario in TLS_SCENARIOS:
            return self.tls_port[contender]
        return self.http_port[contender]

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"warning: stopping {p.name}: {e}")

    def ensure_running(self, scenario, contender):
        """Restart anything that died (the exit is recorded as a note)."""
        proxy = self.proxy_for(scenario, contender)
        for p in [self.backend, self.iperf_server, proxy]:
            if p is None:
                continue
            if not p.check():
                msg = (f"{p.name} was found dead before a {scenario} {LABEL[contender]} run "
                       f"and restarted; exit status {p.exits[-1][1] if p.exits else '?'}")
                log("!! " + msg)
                self.notes.append(msg)
                p.start()
                for port in p.ports:
                    wait_listening(port, p)

    # ------------------------------------------------------------ runs

    def wrk_cmd(self, scenario, contender, duration):
        argv = ["taskset", "-c", self.load_cpu, "wrk", "-t1", f"-c{WRK_CONNECTIONS}",
                f"-d{duration}s", "--latency"]
        if scenario in CLOSE_SCENARIOS:
            argv += ["-H", "Connection: close"]
        scheme = "https" if scenario in TLS_SCENARIOS else "http"
        argv.append(f"{scheme}://127.0.0.1:{self.port_for(scenario, contender)}/")
        return argv

    def tls_load_cmd(self, scenario, contender, duration, pids):
        argv = ["taskset", "-c", self.load_cpu, str(self.tls_load),
                "-p", str(self.tls_port[contender]), "-d", str(duration),
                "-m", "full" if scenario == "G" else "resume", "-c", str(TLS_CONNECTIONS),
                "-w", f"{TLS_WARMUP:g}", "-s", TLS_SUITE, "-g", TLS_GROUP, "-n", TLS_SNI]
        if pids:
            argv += ["-P", ",".join(map(str, pids))]
        return argv

    def paced_cmd(self, contender, duration, rate=None):
        return ["taskset", "-c", self.load_cpu, str(self.paced_load),
                "-p", str(self.web_port[contender]), "-r", f"{rate or self.f_rate:.0f}",
                "-d", str(duration), "-c", str(F_CONNECTIONS), "-w", f"{F_WARMUP:g}",
                "-t", f"{F_DRAIN:g}"]

    def curl_cmd(self, contender):
        return ["taskset", "-c", self.load_cpu, "curl", "-sS", "-o", "/dev/null", "-w",
                "%{http_code} %{size_download} %{time_total}",
                f"http://127.0.0.1:{self.port_for('J', contender)}/big.bin"]

    def scenario_duration(self, scenario):
        if scenario in TLS_SCENARIOS:
            return self.tls_duration
        return self.http_duration if scenario in HTTP_SCENARIOS else self.duration

    def iperf_cmd(self, contender, duration):
        return ["taskset", "-c", self.load_cpu, "iperf3", "-c", "127.0.0.1",
                "-p", str(self.bulk_port[contender]), "-t", str(duration), "-J"]

    def measure(self, scenario, contender, duration=None, record=True, rate=None):
        duration = duration or self.scenario_duration(scenario)
        self.ensure_running(scenario, contender)
        limit = duration + 30
        proxy = self.proxy_for(scenario, contender)
        pids = proxy.cpu_pids() if proxy else []
        env = None
        if scenario == "C":
            argv = self.iperf_cmd(contender, duration)
        elif scenario == "J":
            argv = self.curl_cmd(contender)
        elif scenario == "F":
            argv = self.paced_cmd(contender, duration, rate)
            limit += F_WARMUP + F_DRAIN
        elif scenario in HANDSHAKE_SCENARIOS:
            argv = self.tls_load_cmd(scenario, contender, duration, pids)
            limit += TLS_WARMUP
            env = self.client_env
        else:
            argv = self.wrk_cmd(scenario, contender, duration)
            if scenario in TLS_SCENARIOS:
                env = self.client_env
        if record:
            shown = [x for x in argv]
            if scenario in HANDSHAKE_SCENARIOS:  # pids and temp dir vary per run
                shown = [("tls_load" if x == str(self.tls_load) else x) for x in argv]
                if "-P" in shown:
                    shown[shown.index("-P") + 1] = "PROXY_PIDS"
            self.commands[(scenario, contender)] = (
                ("OPENSSL_CONF=client-openssl.cnf " if env else "") + shlex.join(shown))
        cpu0 = cpu_times(pids) if pids else None
        # the load side on the other CPU: the load generator (a child of this
        # script, so its rusage) and the backend
        bpids = self.backend.cpu_pids()
        back0 = (sum(cpu_times(bpids)), ctx_switches(bpids)) if bpids else None
        gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0 = cpu_busy()
        own0 = self.own_cpu()
        # every other proxy process (both modes) should stay idle
        others = {p.name: p.cpu_pids() for p in list(self.proxy.values())
                  + list(self.hproxy.values()) + list(self.sproxy.values()) if p is not proxy}
        others0 = {n: sum(cpu_times(ps)) for n, ps in others.items() if ps}
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=limit, env=env)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{shlex.join(argv)} did not finish in {limit}s")
        wall = time.monotonic() - t0
        busy1 = cpu_busy()
        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        own1 = self.own_cpu()
        res = {"wall": wall, "idle_proxy_cpu": {}}
        res["gen_cpu"] = (gen1.ru_utime + gen1.ru_stime) - (gen0.ru_utime + gen0.ru_stime)
        res["gen_csw"] = (gen1.ru_nvcsw + gen1.ru_nivcsw) - (gen0.ru_nvcsw + gen0.ru_nivcsw)
        try:
            if back0 and sorted(self.backend.cpu_pids()) == sorted(bpids):
                res["backend_cpu"] = sum(cpu_times(bpids)) - back0[0]
                res["backend_csw"] = ctx_switches(bpids) - back0[1]
        except OSError:
            pass
        # CPU used by processes the benchmark did not start, as a share of one CPU.
        all_busy = sum(busy1[c][0] - busy0[c][0] for c in busy1) / CLK_TCK
        res["foreign_load"] = max(0.0, all_busy - (own1 - own0)) / wall
        for n, ps in others.items():
            try:
                if n in others0:
                    res["idle_proxy_cpu"][n] = sum(cpu_times(ps)) - others0[n]
            except OSError:
                pass
        for cpu, role in ((self.proxy_cpu, "busy_proxy_cpu"), (self.load_cpu, "busy_load_cpu")):
            b, tot = (busy1[cpu][0] - busy0[cpu][0]), (busy1[cpu][1] - busy0[cpu][1])
            res[role] = b / tot if tot else None
        if scenario == "C":
            try:
                j = json.loads(r.stdout)
            except ValueError:
                j = {"error": (r.stdout + r.stderr).strip()[-300:]}
            if "error" in j:
                res["error"] = "iperf3: " + str(j["error"])
            else:
                recv = j["end"]["sum_received"]
                res["bytes"] = recv["bytes"]
                res["seconds"] = recv["seconds"]
                res["mbps"] = recv["bits_per_second"] / 8 / 1e6
                res["retransmits"] = j["end"].get("sum_sent", {}).get("retransmits")
        elif scenario == "J":
            try:
                code, size, secs = r.stdout.split()
                size, secs = int(size), float(secs)
            except ValueError:
                code, size, secs = "?", 0, 0.0
            if r.returncode != 0 or code != "200" or size != J_BYTES or secs <= 0:
                res["error"] = (f"curl exit {r.returncode}, status {code}, {size} of "
                                f"{J_BYTES} bytes: {r.stderr.strip()[-200:]}")
            else:
                res["bytes"], res["seconds"] = size, secs
                res["mbps"] = size / secs / 1e6
        elif scenario in HANDSHAKE_SCENARIOS:
            if r.returncode != 0:
                res["error"] = f"tls_load exit {r.returncode}: {r.stderr.strip()[-300:]}"
            else:
                try:
                    res.update(parse_tls_load(r.stdout))
                except (BenchError, KeyError) as e:
                    res["error"] = str(e)[:300]
                if res.get("requests") == 0:
                    res["error"] = "no handshake completed"
        elif scenario == "F":
            if r.returncode != 0:
                res["error"] = f"paced_load exit {r.returncode}: {r.stderr.strip()[-300:]}"
            else:
                try:
                    res.update(parse_paced(r.stdout))
                except (BenchError, KeyError) as e:
                    res["error"] = str(e)[:300]
                if res.get("requests") == 0:
                    res["error"] = "no request answered"
                elif "rate" in res:
                    res["overrun"] = bool(res["errors"]["unsent"] or
                                          (res.get("lag_p99") or 0) > F_OVERRUN_S)
        else:
            if r.returncode != 0:
                res["error"] = f"wrk exit {r.returncode}: {r.stderr.strip()[-300:]}"
            else:
                try:
                    res.update(parse_wrk(r.stdout))
                except BenchError as e:
                    res["error"] = str(e)[:300]
        if proxy:
            alive = proxy.alive()
            pids_after = proxy.cpu_pids()
            if not alive:
                res["error"] = (res.get("error", "") + f" {proxy.name} died during the run").strip()
            elif cpu0 is None or sorted(pids_after) != sorted(pids):
                res["error"] = (res.get("error", "") +
                                f" {proxy.name} worker pids changed {pids} -> {pids_after}").strip()
            else:
                u, sy = cpu_times(pids_after)
                res["cpu_user"], res["cpu_sys"] = u - cpu0[0], sy - cpu0[1]
                if scenario in HANDSHAKE_SCENARIOS and "window_cpu_user" in res:
                    # tls_load read the proxy's CPU time at the start and the
                    # end of its recorded window (warm-up excluded)
                    res["cpu_user"], res["cpu_sys"] = (res["window_cpu_user"],
                                                       res["window_cpu_sys"])
                res["cpu"] = res["cpu_user"] + res["cpu_sys"]
                if scenario not in BULK_SCENARIOS and res.get("requests"):
                    # F: every answered request (warm-up and priming included)
                    # fell in the CPU window, not only the recorded ones
                    n = (res["completed"] + F_CONNECTIONS if scenario == "F"
                         else res["requests"])
                    res["cpu_per_req"] = res["cpu"] / n
                    res["user_per_req"], res["sys_per_req"] = res["cpu_user"] / n, res["cpu_sys"] / n
                if scenario in BULK_SCENARIOS and res.get("bytes"):
                    gb = res["bytes"] / 1e9
                    res["cpu_per_gb"] = res["cpu"] / gb
                    res["user_per_gb"], res["sys_per_gb"] = res["cpu_user"] / gb, res["cpu_sys"] / gb
        # (G, H: the load generator's CPU includes its warm-up, its count not)
        if scenario not in BULK_SCENARIOS + HANDSHAKE_SCENARIOS and res.get("requests"):
            n = res["completed"] + F_CONNECTIONS if scenario == "F" else res["requests"]
            for k in ("gen_cpu", "gen_csw", "backend_cpu", "backend_csw"):
                if k in res:
                    res[k + "_per_req"] = res[k] / n
        if record:
            self.results[scenario][contender].append(res)
        return res

    def own_cpu(self):
        """CPU seconds used so far by everything the benchmark started (alive
        servers and their workers via /proc, finished load runs via rusage)
        and by this script."""
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            total += ru.ru_utime + ru.ru_stime
        for p in self.procs:
            if p.alive():
                try:
                    total += sum(cpu_times([p.pid] + children(p.pid)))
                except OSError:
                    pass
        return total

    def describe(self, scenario, contender, res):
        if "error" in res and "rps" not in res and "mbps" not in res:
            return f"ERROR {res['error']}"
        parts = []
        if scenario in HANDSHAKE_SCENARIOS:
            parts.append(f"{res['rps']:9.0f} handshakes/s, resumed {res['resumed']} of "
                         f"{res['requests']} ({res['resumed_fraction'] * 100:.1f}%)"
                         + (f", {res['renewed']} of them with a new ticket"
                            if scenario == "H" and res.get("renewed") is not None else ""))
            if res.get("p50") is not None:
                parts.append(f"connection p50 {fmt_lat(res['p50'])} p99 {fmt_lat(res['p99'])} "
                             f"(handshake p50 {fmt_lat(res['hs_p50'])} "
                             f"p99 {fmt_lat(res['hs_p99'])})")
            if "cpu_per_req" in res:
                parts.append(f"proxy CPU {res['cpu_per_req'] * 1e6:.2f} us/handshake "
                             f"(user {res['user_per_req'] * 1e6:.2f} + "
                             f"sys {res['sys_per_req'] * 1e6:.2f})")
            if res.get("client_cpu_per_req"):
                parts.append(f"tls_load CPU {res['client_cpu_per_req'] * 1e6:.2f} us/handshake")
            neg = res.get("negotiated")
            if neg:
                parts.append(f"{neg['protocol']} {neg['cipher']} {neg['group']} "
                             f"{neg['signature']}")
            errs = {k: v for k, v in res.get("errors", {}).items() if v}
            if errs:
                parts.append(f"errors {errs}")
        elif scenario == "F":
            parts.append(f"{res['rps']:9.0f} req/s (paced at {res['rate']:.0f})")
            if res.get("p50") is not None:
                parts.append(f"p50 {fmt_lat(res['p50'])} p90 {fmt_lat(res['p90'])} "
                             f"p99 {fmt_lat(res['p99'])} p99.9 {fmt_lat(res['p999'])} "
                             f"max {fmt_lat(res['max'])}; from send p99 "
                             f"{fmt_lat(res['svc_p99'])}; send lag p99 {fmt_lat(res['lag_p99'])}")
            if res.get("max_backlog"):
                parts.append(f"max {res['max_backlog']} request(s) waiting for a connection")
            if "cpu_per_req" in res:
                parts.append(f"proxy CPU {res['cpu_per_req'] * 1e6:.2f} us/req "
                             f"(user {res['user_per_req'] * 1e6:.2f} + "
                             f"sys {res['sys_per_req'] * 1e6:.2f})")
            errs = {k: v for k, v in res.get("errors", {}).items() if v}
            if errs:
                parts.append(f"errors {errs}")
        elif scenario in BULK_SCENARIOS:
            parts.append(f"{res['mbps']:9.1f} MB/s")
            if "cpu_per_gb" in res:
                parts.append(f"proxy CPU {res['cpu_per_gb']:.3f} s/GB "
                             f"(user {res['user_per_gb']:.3f} + sys {res['sys_per_gb']:.3f})")
        else:
            parts.append(f"{res['rps']:9.0f} req/s")
            if res.get("p50") is not None:
                parts.append(f"p50 {fmt_lat(res['p50'])} p99 {fmt_lat(res['p99'])}")
            if "cpu_per_req" in res:
                parts.append(f"proxy CPU {res['cpu_per_req'] * 1e6:.2f} us/req "
                             f"(user {res['user_per_req'] * 1e6:.2f} + "
                             f"sys {res['sys_per_req'] * 1e6:.2f})")
            errs = {k: v for k, v in res.get("errors", {}).items() if v}
            if errs:
                parts.append(f"errors {errs}")
        if res.get("overrun"):
            parts.append(f"OVERRUN: the load generator sent 1% of its requests more than "
                         f"{F_OVERRUN_S * 1000:.0f} ms late")
        if res.get("foreign_load") is not None:
            parts.append(f"other load {res['foreign_load'] * 100:.0f}%")
        if res.get("busy_proxy_cpu") is not None:
            parts.append(f"CPU{self.proxy_cpu}/CPU{self.load_cpu} busy "
                         f"{res['busy_proxy_cpu'] * 100:.0f}%/{res['busy_load_cpu'] * 100:.0f}%")
        if "error" in res:
            parts.append("ERROR " + res["error"])
        return ", ".join(parts)

    def run(self):
        self.started = datetime.datetime.now(datetime.timezone.utc)
        log(f"bench: temp dir {self.dir}; proxy CPU {self.proxy_cpu}, "
            f"load generator + backend CPU {self.load_cpu}; scenarios "
            + ",".join(self.scenarios))
        self.setup()
        self.baseline = self.idle_load("before")
        log("bench: warm-up (1 s per contender, not recorded)")
        if self.tcp:
            for c in CONTENDERS:
                self.measure("A", c, duration=1, record=False)
        if self.http:
            for c in CONTENDERS:
                self.measure("D", c, duration=1, record=False)
        if self.tls:
            for c in self.contenders("I"):
                self.measure("I", c, duration=1, record=False)
        # F's rate comes from D's results, so F gets its own rounds after the others
        main = [sc for sc in self.scenarios if sc != "F"]
        self.run_rounds(main)
        if "F" in self.scenarios:
            self.set_f_rate()
            self.run_rounds(["F"])
        if self.http:
            self.run_parser_bench()
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        try:
            now_id = fulcrum_identity()
        except OSError:
            now_id = None
        if now_id is None or now_id["sha"] != self.fulcrum_id["sha"]:
            msg = ("build/fulcrum was replaced during the run (by something else: "
                   + (f"now built {now_id['built']}, sha256 {now_id['sha']}" if now_id
                      else "now missing")
                   + "). The figures are for the binary as it was when the run started "
                   f"(sha256 {self.fulcrum_id['sha']}), except for any fulcrum restarted "
                   "after a crash (see below).")
            log("!! " + msg)
            self.notes.append(msg)
        self.baseline_after = self.idle_load("after")
        self.collect_logs()

    def run_rounds(self, scenarios):
        if not scenarios:
            return
        for rnd in range(self.rounds):
            k = rnd % len(ALL_CONTENDERS)
            order = ALL_CONTENDERS[k:] + ALL_CONTENDERS[:k]
            for s in scenarios:
                for c in [c for c in order if c in self.contenders(s)]:
                    for attempt in range(1 + (F_REDO if s == "F" else 0)):
                        res = self.measure(s, c)
                        log(f"[round {rnd + 1}/{self.rounds}] {s} {LABEL[c]:8s} "
                            + ("(again) " if attempt else "") + self.describe(s, c, res))
                        time.sleep(self.args.pause)
                        if not res.get("overrun"):
                            break

    def set_f_rate(self):
        """F runs at F_RATE_SHARE of the slowest proxy's keep-alive requests/s
        (median of its D runs; without D in this run, of one unrecorded D run
        per proxy), unless --f-rate gave it."""
        if self.f_rate:
            log(f"bench: scenario F at {self.f_rate:.0f} requests/s (--f-rate)")
            return
        if "D" in self.scenarios:
            rps = {c: med(usable(self.results["D"][c]), "rps") for c in PROXIES}
            how = "median of its D runs"
        else:
            log("bench: calibrating F's rate: one unrecorded D run per proxy")
            rps = {}
            for c in PROXIES:
                r = self.measure("D", c, record=False)
                rps[c] = r.get("rps") if "error" not in r else None
                log(f"  D {LABEL[c]:8s} " + self.describe("D", c, r))
                time.sleep(self.args.pause)
            how = "one unrecorded D run each, as D was not part of this run"
        known = {c: v for c, v in rps.items() if v}
        if not known:
            raise BenchError("scenario F: no proxy completed a D run, so there is no rate")
        slowest = min(known, key=known.get)
        self.f_rate = round(F_RATE_SHARE * known[slowest])
        self.f_rate_how = (f"{F_RATE_SHARE:g} × the keep-alive requests/s of the slowest proxy, "
                           f"{LABEL[slowest]} ({known[slowest]:,.0f}/s, {how}; "
                           + ", ".join(f"{LABEL[c]} {v:,.0f}" for c, v in known.items()) + ")")
        log(f"bench: scenario F at {self.f_rate:,} requests/s: {self.f_rate_how}")

    def build_parser_bench(self):
        """Builds bench/h1_parse_bench.c with the command in its header, at the
        start (so that it is built from the same sources as the fulcrum binary
        under test, as far as the tree did not change since), and keeps a copy
        in the temp dir for run_parser_bench."""
        argv = ["gcc", "-O2", "-Isrc", str(PARSER_BENCH_SRC.relative_to(ROOT)), "src/h1.c",
                "src/common.c", "-o", str(PARSER_BENCH.relative_to(ROOT))]
        self.parser_bench = {"build": shlex.join(argv), "runs": []}
        PARSER_BENCH.parent.mkdir(exist_ok=True)
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            self.parser_bench["error"] = "build failed: " + (r.stdout + r.stderr).strip()[-300:]
            log("!! parser microbenchmark: " + self.parser_bench["error"])
            return
        self.parser_bench["binary"] = self.dir / "h1_parse_bench"
        shutil.copy2(PARSER_BENCH, self.parser_bench["binary"])

    def run_parser_bench(self):
        """Runs the parser microbenchmark (built by build_parser_bench) on the
        proxy CPU, idle by now, a few times; the median is reported."""
        if not self.parser_bench or "binary" not in self.parser_bench:
            return
        run = ["taskset", "-c", self.proxy_cpu, str(self.parser_bench["binary"])]
        self.parser_bench["run"] = shlex.join(run[:3] + [str(PARSER_BENCH.relative_to(ROOT))])
        for _ in range(PARSER_BENCH_RUNS):
            try:
                r = subprocess.run(run, capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                self.parser_bench["error"] = "timed out"
                break
            m = re.search(r"([\d.]+) ns/request", r.stdout)
            if r.returncode != 0 or not m:
                self.parser_bench["error"] = (f"exit {r.returncode}: "
                                              + (r.stdout + r.stderr).strip()[-300:])
                break
            self.parser_bench["runs"].append(float(m.group(1)))
            self.parser_bench["line"] = r.stdout.strip()
        if self.parser_bench["runs"]:
            log(f"bench: parser microbenchmark: {self.parser_bench['line']} "
                f"(median of {len(self.parser_bench['runs'])}: "
                f"{statistics.median(self.parser_bench['runs']):.1f} ns)")

    def idle_load(self, when):
        """Busy share of the two CPUs over 2 s with every server idle: load
        from processes the benchmark did not start."""
        b0 = cpu_busy()
        time.sleep(2)
        b1 = cpu_busy()
        res = {}
        for cpu in (self.proxy_cpu, self.load_cpu):
            tot = b1[cpu][1] - b0[cpu][1]
            res[cpu] = (b1[cpu][0] - b0[cpu][0]) / tot if tot else 0.0
        log(f"bench: idle load {when} the runs: " + ", ".join(
            f"CPU{c} {v * 100:.0f}%" for c, v in res.items()))
        if max(res.values()) > 0.25:
            msg = (f"the machine was not quiet {when} the runs (" + ", ".join(
                f"CPU {c} {v * 100:.0f}% busy" for c, v in res.items())
                + " with every benchmark server idle): other processes compete with the "
                "contenders, so these figures are disturbed")
            log("!! " + msg)
            self.notes.append(msg[0].upper() + msg[1:] + ".")
        return res

    def collect_logs(self):
        """Error-log lines of every process, for the report."""
        self.logs = {}
        files = {
            "fulcrum": [self.dir / "fulcrum.error.log", self.dir / "fulcrum.out.log"],
            "haproxy": [self.dir / "haproxy.out.log"],
            "nginx": [self.dir / "nginx-stream.error.log", self.dir / "nginx-stream.stderr.log",
                      self.dir / "nginx-stream.out.log"],
            "backend": [self.dir / "backend-nginx.error.log", self.dir / "backend-nginx.stderr.log",
                        self.dir / "backend-nginx.out.log"],
        }
        if not self.tcp:
            files = {"backend": files["backend"]}
        if self.http:
            files.update({
                "fulcrum (http)": [self.dir / "fulcrum-http.error.log",
                                   self.dir / "fulcrum-http.out.log"],
                "haproxy (http)": [self.dir / "haproxy-http.out.log"],
                "nginx (http)": [self.dir / "nginx-http.error.log",
                                 self.dir / "nginx-http.stderr.log",
                                 self.dir / "nginx-http.out.log"],
            })
        if self.tls:
            files.update({
                f"{c} (https)": [self.dir / f"{c}-https.error.log",
                                 self.dir / f"{c}-https.stderr.log",
                                 self.dir / f"{c}-https.out.log"]
                for c in PROXIES if c in self.sproxy})
        for name, paths in files.items():
            lines = []
            for p in paths:
                if p.exists():
                    for line in p.read_text(errors="replace").splitlines():
                        if line.strip() and not line.startswith("--- start #"):
                            lines.append(f"{p.name}: {line}")
            self.logs[name] = lines

    def cleanup(self):
        if self.args.keep:
            log(f"bench: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- report

def fmt_lat(s):
    if s is None:
        return "?"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None and "error" not in r]
    return statistics.median(vals) if vals else None


def spread(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None and "error" not in r]
    return (min(vals), max(vals)) if vals else (None, None)


def ratio(a, b):
    return a / b if a is not None and b else None


def fr(x, digits=2):
    return f"{x:.{digits}f}x" if x is not None else "n/a"


def met(x, goal, higher_is_better):
    if x is None:
        return "not measured"
    ok = x >= goal if higher_is_better else x <= goal
    return "**met**" if ok else "**not met**"


def usable(runs):
    """The runs the medians are taken over: those in which processes the
    benchmark did not start used at most NOISY_LOAD of a CPU and (F) the load
    generator kept to its schedule, as long as at least MIN_CLEAN_RUNS such
    (successful) runs remain; otherwise all."""
    clean = [r for r in runs if (r.get("foreign_load") or 0) <= NOISY_LOAD
             and not r.get("overrun")]
    if sum(1 for r in clean if "error" not in r) >= MIN_CLEAN_RUNS:
        return clean
    return runs


def who(b, sc):
    """The rows of scenario sc: the contenders, plus the congestion-control
    variant of fulcrum in C when it ran, and NGINX with half-close in B."""
    return (CONTENDERS + ([CC_VARIANT] if sc == "C" and b.cc_variant else [])
            + ([HC_VARIANT] if sc == "B" else []))


def cpu_peers(s, sc):
    """The peers B's and A's CPU goals are taken against: those that do the
    same job as fulcrum (in B, NGINX with `proxy_half_close on` when it ran;
    see HC_VARIANT)."""
    if sc == "B" and HC_VARIANT in s[sc]:
        return ("haproxy", HC_VARIANT)
    return ("haproxy", "nginx")


# the load side (CPU 1) per request: load generator and backend
LOAD_SIDE_KEYS = ("gen_cpu_per_req", "backend_cpu_per_req", "gen_csw_per_req",
                  "backend_csw_per_req")


def summarize(b):
    s = {}
    for sc in b.scenarios:
        s[sc] = {}
        for c in who(b, sc):
            all_runs = b.results[sc][c]
            runs = usable(all_runs)
            d = {"n": sum(1 for r in all_runs if "error" not in r), "runs": len(all_runs),
                 "left_out": [i for i, r in enumerate(all_runs) if not any(r is x for x in runs)]}
            for k in ("busy_proxy_cpu", "busy_load_cpu", "user_per_req", "sys_per_req",
                      "user_per_gb", "sys_per_gb"):
                d[k] = med(runs, k)
            if sc in BULK_SCENARIOS:
                d["mbps"] = med(runs, "mbps")
                d["mbps_range"] = spread(runs, "mbps")
                d["cpu_per_gb"] = med(runs, "cpu_per_gb")
            else:
                d["rps"] = med(runs, "rps")
                d["rps_range"] = spread(runs, "rps")
                d["p50"] = med(runs, "p50")
                d["p99"] = med(runs, "p99")
                d["cpu_per_req"] = med(runs, "cpu_per_req")
                for k in LOAD_SIDE_KEYS:
                    d[k] = med(runs, k)
                if sc in HANDSHAKE_SCENARIOS:
                    for k in ("hs_p50", "hs_p99", "client_cpu_per_req"):
                        d[k] = med(runs, k)
                    ok = [r for r in all_runs if "error" not in r and r.get("requests")]
                    n_all = sum(r["requests"] for r in ok)
                    d["resumed_fraction"] = (sum(r["resumed"] for r in ok) / n_all
                                             if n_all else None)
                    d["resumed_min"] = (min(r["resumed_fraction"] for r in ok)
                                        if ok else None)
                    n_res = sum(r["resumed"] for r in ok)
                    d["renewed_fraction"] = (sum(r.get("renewed") or 0 for r in ok) / n_res
                                             if n_res else None)
                    d["negotiated"] = sorted({tuple(r["negotiated"].values()) for r in ok
                                              if r.get("negotiated")})
                if sc == "F":
                    for k in ("p90", "p999", "max", "svc_p50", "svc_p99", "lag_p99",
                              "max_backlog"):
                        d[k] = med(runs, k)
                    d["p99_range"] = spread(runs, "p99")
                errs = {}
                # F: an overrun run's unsent and unanswered requests are the
                # load generator's, not the proxy's
                for r in (runs if sc == "F" else all_runs):
                    for k, v in r.get("errors", {}).items():
                        errs[k] = errs.get(k, 0) + v
                d["errors"] = {k: v for k, v in errs.items() if v}
            s[sc][c] = d
    return s


def best_peer(s, sc, key, higher_is_better, among=("haproxy", "nginx")):
    """(value, label) of the better of the peers (HAProxy and NGINX) on key."""
    peers = [(s[sc][c][key], LABEL[c]) for c in among
             if c in s[sc] and s[sc][c][key] is not None]
    if not peers:
        return None, "?"
    return (max if higher_is_better else min)(peers, key=lambda x: x[0])


def goals(s):
    """[(issue, scenario, text, measured ratio, verdict)]"""
    g = []
    for sc in ("A", "B"):
        if sc not in s:
            continue
        f, h = s[sc]["fulcrum"], s[sc]["haproxy"]
        rr = ratio(f["rps"], h["rps"])
        best, best_name = best_peer(s, sc, "cpu_per_req", False, cpu_peers(s, sc))
        cr = ratio(f["cpu_per_req"], best)
        g.append((2, sc, f"requests/s, fulcrum / HAProxy ≥ {GOAL_RPS_VS_HAPROXY:.2f}x", rr,
                  met(rr, GOAL_RPS_VS_HAPROXY, True)))
        same = (", of the peers that propagate half-close as fulcrum does"
                if HC_VARIANT in cpu_peers(s, sc) else "")
        g.append((2, sc, f"proxy CPU per request, fulcrum / better peer ({best_name}{same}) "
                         f"≤ {GOAL_CPU_VS_BEST_PEER:.2f}x", cr,
                  met(cr, GOAL_CPU_VS_BEST_PEER, False)))
        if HC_VARIANT in cpu_peers(s, sc):
            nr = ratio(f["cpu_per_req"], s[sc]["nginx"]["cpu_per_req"])
            g.append((2, sc, "proxy CPU per request, fulcrum / NGINX with its default, which "
                             "ends the whole session at the server's FIN (no half-close)",
                      nr, "(no goal)"))
    if "C" in s:
        br = ratio(s["C"]["fulcrum"]["mbps"], s["C"]["direct"]["mbps"])
        g.append((2, "C", f"bulk MB/s, fulcrum / direct ≥ {GOAL_BULK_VS_DIRECT:.2f}x", br,
                  met(br, GOAL_BULK_VS_DIRECT, True)))
        if CC_VARIANT in s["C"]:
            vr = ratio(s["C"][CC_VARIANT]["mbps"], s["C"]["direct"]["mbps"])
            g.append((2, "C", f"bulk MB/s, fulcrum with `tcp_congestion: {CC_ALGO}` on the "
                              f"pool / direct ≥ {GOAL_BULK_VS_DIRECT:.2f}x", vr,
                      met(vr, GOAL_BULK_VS_DIRECT, True)))
    for sc in ("D", "E"):
        if sc not in s:
            continue
        f = s[sc]["fulcrum"]
        best, name = best_peer(s, sc, "rps", True)
        rr = ratio(f["rps"], best)
        if sc == "D":
            g.append((3, sc, f"keep-alive requests/s, fulcrum / better peer ({name}) "
                             f"≥ {GOAL_H_RPS_VS_BEST_PEER:.2f}x", rr,
                      met(rr, GOAL_H_RPS_VS_BEST_PEER, True)))
        else:
            g.append((3, sc, f"requests/s, fulcrum / better peer ({name}); the issue sets "
                             f"the requests/s goal for keep-alive only", rr, "(no goal)"))
        best, name = best_peer(s, sc, "cpu_per_req", False)
        cr = ratio(f["cpu_per_req"], best)
        g.append((3, sc, f"proxy CPU per request, fulcrum / better peer ({name}) "
                         f"≤ {GOAL_H_CPU_VS_BEST_PEER:.2f}x", cr,
                  met(cr, GOAL_H_CPU_VS_BEST_PEER, False)))
    if "F" in s:
        best, name = best_peer(s, "F", "p99", False)
        pr = ratio(s["F"]["fulcrum"]["p99"], best)
        g.append((3, "F", f"p99 latency at a fixed rate, fulcrum / better peer ({name}) "
                          f"≤ {GOAL_H_P99_VS_BEST_PEER:.2f}x (no worse than either)", pr,
                  met(pr, GOAL_H_P99_VS_BEST_PEER, False)))
    for sc, what, goal in (("G", "full handshakes/s", GOAL_T_FULL_VS_BEST_PEER),
                           ("H", "resumed handshakes/s", GOAL_T_RESUMED_VS_BEST_PEER),
                           ("I", "HTTPS keep-alive requests/s", GOAL_T_RPS_VS_BEST_PEER)):
        if sc not in s:
            continue
        f = s[sc]["fulcrum"]
        best, name = best_peer(s, sc, "rps", True)
        rr = ratio(f["rps"], best)
        text = f"{what}, fulcrum / better peer ({name}) ≥ {goal:.2f}x"
        verdict = met(rr, goal, True)
        if sc == "H":
            low = [f"{LABEL[c]} {s[sc][c]['resumed_fraction'] * 100:.1f}%" for c in PROXIES
                   if s[sc][c]["resumed_fraction"] is not None
                   and s[sc][c]["resumed_fraction"] < 0.99]
            if low:
                text += " — **resumed fraction below 99%: " + ", ".join(low) + "**"
                if verdict == "**met**":
                    verdict = "**met, but not all handshakes resumed**"
        g.append((4, sc, text, rr, verdict))
        best, name = best_peer(s, sc, "cpu_per_req", False)
        cr = ratio(f["cpu_per_req"], best)
        per = "request" if sc == "I" else "handshake"
        g.append((4, sc, f"proxy CPU per {per}, fulcrum / better peer ({name}); no goal set, "
                         f"but what decides {what} when the client side saturates", cr,
                  "(no goal)" if cr is not None else "not measured"))
    return g


def plot_panels(s):
    """[(title, [(contender, value)], format)] for the scenarios that ran."""
    panels = []

    def add(sc, title, key, who, scale=1.0, fmt="{:,.0f}"):
        if sc in s:
            panels.append((title, [(c, (s[sc][c][key] or 0) * scale) for c in who], fmt))

    add("A", "A: requests/s (keep-alive)", "rps", CONTENDERS)
    add("B", "B: requests/s (connection per request)", "rps", CONTENDERS)
    add("A", "A: proxy CPU µs per request", "cpu_per_req", PROXIES, 1e6, "{:.2f}")
    add("B", "B: proxy CPU µs per request", "cpu_per_req",
        PROXIES + ([HC_VARIANT] if "B" in s and HC_VARIANT in s["B"] else []), 1e6, "{:.2f}")
    add("C", "C: bulk MB/s (iperf3)", "mbps", CONTENDERS)
    add("D", "D: HTTP requests/s (keep-alive)", "rps", CONTENDERS)
    add("E", "E: HTTP requests/s (Connection: close)", "rps", CONTENDERS)
    add("D", "D: HTTP proxy CPU µs per request", "cpu_per_req", PROXIES, 1e6, "{:.2f}")
    add("E", "E: HTTP proxy CPU µs per request", "cpu_per_req", PROXIES, 1e6, "{:.2f}")
    if "F" in s:
        add("F", "F: HTTP p99 latency µs at a fixed rate", "p99", CONTENDERS, 1e6, "{:,.0f}")
    add("G", "G: HTTPS full handshakes/s", "rps", PROXIES)
    add("H", "H: HTTPS resumed handshakes/s", "rps", PROXIES)
    add("I", "I: HTTPS requests/s (keep-alive)", "rps", PROXIES)
    add("G", "G: proxy CPU µs per full handshake", "cpu_per_req", PROXIES, 1e6, "{:.1f}")
    add("H", "H: proxy CPU µs per resumed handshake", "cpu_per_req", PROXIES, 1e6, "{:.1f}")
    add("I", "I: HTTPS proxy CPU µs per request", "cpu_per_req", PROXIES, 1e6, "{:.2f}")
    return panels


PLOT_COLORS = {"direct": "#888888", "fulcrum": "#d95f02", "haproxy": "#1b9e77",
               "nginx": "#7570b3", HC_VARIANT: "#b3b0d9"}
PLOT_LABEL = {HC_VARIANT: "NGINX (h-c)"}  # where the table's label is too long


def plot_label(c):
    return PLOT_LABEL.get(c, LABEL[c])


def write_svg(path, s):
    """A small bar chart per figure, stdlib only."""
    colors = PLOT_COLORS
    panels = plot_panels(s)
    W, left, right, bar, gap, head = 720, 90, 110, 18, 4, 26
    out, y = [], 10
    for title, items, fmt in panels:
        out.append(f'<text x="10" y="{y + 16}" font-size="14" font-weight="bold">'
                   f'{title.replace("&", "&amp;")}</text>')
        y += head
        vmax = max([v or 0 for _, v in items] + [1e-9])
        for c, v in items:
            w = (W - left - right) * (v or 0) / vmax
            out.append(f'<text x="{left - 6}" y="{y + bar - 4}" font-size="12" '
                       f'text-anchor="end">{plot_label(c)}</text>')
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" '
                       f'fill="{colors[c]}"/>')
            label = fmt.format(v) if v else "n/a"
            out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar - 4}" font-size="12">'
                       f'{label}</text>')
            y += bar + gap
        y += 14
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
           f'viewBox="0 0 {W} {y}" font-family="sans-serif">\n'
           f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(out) + "\n</svg>\n")
    path.write_text(svg)


def write_png(path, s):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = plot_panels(s)
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 2.6 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (title, items, fmt) in zip(flat, panels):
        names = [plot_label(c) for c, _ in items][::-1]
        vals = [v or 0 for _, v in items][::-1]
        bars = ax.barh(names, vals, color=[PLOT_COLORS[c] for c, _ in items][::-1])
        for rect, v in zip(bars, vals):
            ax.text(rect.get_width(), rect.get_y() + rect.get_height() / 2,
                    " " + (fmt.format(v) if v else "n/a"), va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(vals + [1e-9]) * 1.25)
        ax.tick_params(labelsize=8)
    for ax in flat[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plot(out):
    """PNG with matplotlib if installed, else SVG. Returns the path written."""
    def inner(s):
        try:
            import matplotlib  # noqa: F401
            p = out.with_suffix(".png")
            write_png(p, s)
            return p
        except Exception:
            p = out.with_suffix(".svg")
            write_svg(p, s)
            return p
    return inner


def machine_info(b):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": str(b.ncpu),
        "kernel": platform.release(),
        "CPU": cpu,
        "memory": mem,
        "fulcrum": b.fulcrum_id["version"] + f" (`build/fulcrum` built "
                   f"{b.fulcrum_id['built']}, sha256 {b.fulcrum_id['sha']}; "
                   f"tree `{b.fulcrum_id['tree']}`, all at the start of the run)",
        "HAProxy": first_line(["haproxy", "-v"]),
        "NGINX": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "iperf3": first_line(["iperf3", "-v"]),
        "OpenSSL": first_line(["openssl", "version"]) + " (the system library: HAProxy, "
                   "NGINX, wrk and tls_load all use it)",
        "Python": platform.python_version(),
    }


def fulcrum_identity():
    """What build/fulcrum is, taken when the run starts (another session may
    rebuild it meanwhile)."""
    return {"version": first_line([str(FULCRUM), "version"]),
            "built": f"{datetime.datetime.fromtimestamp(FULCRUM.stat().st_mtime):%Y-%m-%d %H:%M}",
            "sha": hashlib.sha256(FULCRUM.read_bytes()).hexdigest()[:12],
            "tree": git_rev()}


def git_rev():
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def span(scen):
    """'A–F' for consecutive scenarios, else 'A, C'."""
    idx = [SCENARIOS.index(x) for x in scen]
    if len(scen) > 2 and idx == list(range(idx[0], idx[0] + len(idx))):
        return f"{scen[0]}–{scen[-1]}"
    return ", ".join(scen)


def sections(b, s, g):
    """The report's parts for this run: {scenario: lines of its section}
    (plus "parser"), rendered from this run's results."""
    scen = b.scenarios
    out = {}
    L = []
    w = L.append

    def take(key):
        out[key] = list(L)
        L.clear()

    def busy(d):
        if d["busy_proxy_cpu"] is None:
            return "?"
        return f"{d['busy_proxy_cpu'] * 100:.0f}% / {d['busy_load_cpu'] * 100:.0f}%"

    def ratio_cols(sc, c):
        h = s[sc]["haproxy"]
        best = best_peer(s, sc, "cpu_per_req", False,
                         cpu_peers(s, sc) if sc in TCP_SCENARIOS else ("haproxy", "nginx"))[0]
        d = s[sc][c]
        if sc in HTTP_SCENARIOS or sc in TLS_SCENARIOS:
            h = {"rps": best_peer(s, sc, "rps", True)[0]}
        return (fr(ratio(d["rps"], s[sc]["direct"]["rps"])),
                fr(ratio(d["rps"], h["rps"])),
                fr(ratio(d["cpu_per_req"], best)) if c != "direct" else "–")

    def cpu_cell(d, scale=1e6, digits=2):
        return (f"{d['cpu_per_req'] * scale:.{digits}f} µs ({d['user_per_req'] * scale:.{digits}f} + "
                f"{d['sys_per_req'] * scale:.{digits}f})" if d["cpu_per_req"] is not None else "–")

    def load_side(sc, contenders, gen):
        """What each request cost on the load CPU, by contender: shows whether
        a proxy makes the generator or the backend work more."""
        rows = [(c, s[sc][c]) for c in contenders if s[sc][c].get("gen_cpu_per_req") is not None]
        if not rows:
            return
        w("")
        w(f"The load side on CPU {b.load_cpu}, per request (medians): CPU time of {gen} and of "
          f"the backend (user + sys), and their context switches (voluntary + involuntary).")
        w("")
        w(f"| contender | {gen} CPU | backend CPU | {gen} context switches | "
          f"backend context switches |")
        w("|---|---:|---:|---:|---:|")
        for c, d in rows:
            def us(k):
                return f"{d[k] * 1e6:.2f} µs" if d.get(k) is not None else "–"

            def cs(k):
                return f"{d[k]:.3f}" if d.get(k) is not None else "–"
            w(f"| {LABEL[c]} | {us('gen_cpu_per_req')} | {us('backend_cpu_per_req')} "
              f"| {cs('gen_csw_per_req')} | {cs('backend_csw_per_req')} |")

    def errs_cell(d):
        errs = ", ".join(f"{k} {v}" for k, v in d["errors"].items()) or "none"
        if d["n"] < d["runs"]:
            errs += f"; {d['runs'] - d['n']} failed run(s)"
        return errs

    def left_out_note(sc, who):
        lo = [(c, len(s[sc][c]["left_out"]), s[sc][c]["runs"]) for c in who
              if s[sc][c]["left_out"]]
        if lo:
            w("")
            why = (f"as other processes used more than {NOISY_LOAD * 100:.0f}% of a CPU "
                   f"during them")
            if sc == "F":
                why += (f" or the load generator sent 1% of its requests more than "
                        f"{F_OVERRUN_S * 1000:.0f} ms late (its CPU, shared with the backend, "
                        f"stalled or was the limit; "
                        f"such a run was done again up to {F_REDO} times, and its errors are "
                        f"not counted in the table)")
            w("")
            w(f"Left out of the medians, {why} (at least {MIN_CLEAN_RUNS} "
              f"undisturbed runs remain; every run is listed at the end): "
              + ", ".join(f"{LABEL[c]} {k} of {n} runs" for c, k, n in lo) + ".")

    def skipped_rows(sc):
        if b.fulcrum_tls_skip and sc in TLS_SCENARIOS:
            w("")
            w(f"fulcrum did not run: {b.fulcrum_tls_skip}")

    def tls_line(sc):
        """What the contenders negotiated (openssl s_client probe at the start
        of the run; tls_load's own report in G and H)."""
        seen = {}
        for c in b.contenders(sc):
            p = b.tls_params.get(c)
            if p:
                seen.setdefault((p["protocol"], p["cipher"], p["group"], p["signature"]),
                                []).append(LABEL[c])
            if sc in HANDSHAKE_SCENARIOS:
                for t in s[sc][c].get("negotiated") or []:
                    seen.setdefault(tuple(t), [])
                    if LABEL[c] not in seen[tuple(t)]:
                        seen[tuple(t)].append(LABEL[c])
        if len(seen) == 1:
            (proto, cipher, group, sig), = seen.keys()
            w(f"Negotiated with every contender: {proto}, `{cipher}`, key exchange {group}, "
              f"server signature {sig} (ECDSA P-256 certificate).")
        elif seen:
            w("**The contenders did not all negotiate the same TLS parameters:** " + "; ".join(
                f"{', '.join(who)}: {' '.join(k)}" for k, who in seen.items()) + ".")

    def bulk_table(sc, peer_cpu):
        """MB/s and CPU per GB (C, J); peer_cpu adds the CPU against the
        better peer."""
        best = min((x for x in (s[sc][p]["cpu_per_gb"] for p in PROXIES if p in s[sc])
                    if x is not None), default=None)
        w(f"| contender | MB/s | min – max | vs direct | proxy CPU per GB (user + sys, each a median) "
          + ("| CPU vs better peer " if peer_cpu else "")
          + f"| CPU {b.proxy_cpu} / CPU {b.load_cpu} busy |")
        w("|---|---:|---:|---:|---:|" + ("---:|" if peer_cpu else "") + "---:|")
        for c in who(b, sc):
            d = s[sc][c]
            lo, hi = d["mbps_range"]
            rng = f"{lo:,.0f} – {hi:,.0f}" if lo is not None else "n/a"
            cpu = (f"{d['cpu_per_gb']:.3f} s ({d['user_per_gb']:.3f} + {d['sys_per_gb']:.3f})"
                   if d["cpu_per_gb"] is not None else "–")
            mb = f"{d['mbps']:,.0f}" if d["mbps"] is not None else "n/a"
            fail = f" ({d['runs'] - d['n']} failed run(s))" if d["n"] < d["runs"] else ""
            vs = (f"| {fr(ratio(d['cpu_per_gb'], best)) if d['cpu_per_gb'] is not None else '–'} "
                  if peer_cpu else "")
            w(f"| {LABEL[c]} | {mb}{fail} | {rng} | {fr(ratio(d['mbps'], s[sc]['direct']['mbps']))} "
              f"| {cpu} {vs}| {busy(d)} |")
        left_out_note(sc, who(b, sc))
        w("")

    def wrk_table(sc):
        close = " `-H 'Connection: close'`" if sc in CLOSE_SCENARIOS else ""
        dur = b.scenario_duration(sc)
        if sc == "I":
            text = (f"wrk, 1 thread, {WRK_CONNECTIONS} connections, {dur} s, over HTTPS "
                    f"(`https://`, TLS 1.3) to the proxies, which forward plain HTTP to the "
                    f"same NGINX backend as in D–F (6-byte body) over pooled keep-alive "
                    f"connections. Each wrk connection makes one full handshake and then "
                    f"carries requests for the whole run, so this measures TLS record "
                    f"processing and proxying, not handshakes.")
        else:
            text = (f"wrk, 1 thread, {WRK_CONNECTIONS} connections, {dur} s{close}, "
                    f"against an NGINX backend returning a 6-byte body.")
        if sc == "D":
            text += " The proxies keep their backend connections open and reuse them."
        if sc == "E":
            text += (" Each client connection carries one request; the proxies still reuse "
                     "their backend connections (direct: the backend closes after each "
                     "response).")
        w(text)
        if sc == "I":
            w("")
            tls_line(sc)
        skipped_rows(sc)
        w("")
        vs = "vs better peer" if sc in HTTP_SCENARIOS or sc in TLS_SCENARIOS else "vs HAProxy"
        direct_col = "" if sc in TLS_SCENARIOS else " vs direct |"
        w(f"| contender | requests/s | min – max | p50 | p99 | proxy CPU / request (user + sys, each a median) "
          f"| CPU {b.proxy_cpu} / CPU {b.load_cpu} busy "
          f"|{direct_col} {vs} | CPU vs better peer | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|" + ("" if sc in TLS_SCENARIOS else "---:|")
          + "---:|---|")
        for c in b.contenders(sc):
            d = s[sc][c]
            lo, hi = d["rps_range"]
            rng = f"{lo:,.0f} – {hi:,.0f}" if lo is not None else "n/a"
            vd, vh, vc = ratio_cols(sc, c)
            rps = f"{d['rps']:,.0f}" if d["rps"] is not None else "n/a"
            dcell = "" if sc in TLS_SCENARIOS else f" {vd} |"
            w(f"| {LABEL[c]} | {rps} | {rng} | {fmt_lat(d['p50'])} | {fmt_lat(d['p99'])} "
              f"| {cpu_cell(d)} | {busy(d)} |{dcell} {vh} | {vc} | {errs_cell(d)} |")
        left_out_note(sc, b.contenders(sc))
        load_side(sc, b.contenders(sc), "wrk")
        w("")

    def handshake_table(sc):
        dur = b.scenario_duration(sc)
        if sc == "G":
            w(f"`bench/tls_load.c`, {TLS_CONNECTIONS} concurrent connections, {dur} s recorded "
              f"after {TLS_WARMUP:g} s of warm-up: each connection is a new TCP connection, a "
              f"full TLS 1.3 handshake (no session offered: certificate, ECDHE, signature), one "
              f"`GET /` with `Connection: close`, the response (6-byte body, from the NGINX "
              f"backend over the proxy's pooled plain-HTTP connections), a close_notify and "
              f"close; then the next one starts. One connection = one handshake = one "
              f"request.")
        else:
            w(f"As G, but each connection offers the newest session ticket its slot received "
              f"(TLS 1.3 PSK resumption with ECDHE, the mode every server offers by default): "
              f"no certificate and no signature, but still a key exchange. The first "
              f"connection of each slot (in the warm-up) is a full handshake. \"resumed\" is "
              f"the share of the recorded handshakes the server actually resumed "
              f"(`SSL_session_reused`), over all rounds, and its lowest value in one round. "
              f"Like browsers (RFC 8446, C.4), the OpenSSL client uses each TLS 1.3 ticket "
              f"once, so a slot keeps resuming only if the server sends a new ticket on a "
              f"resumed connection (OpenSSL's default, which HAProxy and NGINX keep); "
              f"\"new ticket\" is the share of the resumed connections that got one.")
        w("")
        w(f"The client's TLS work is heavy too (for a full handshake, signature verification "
          f"costs more than signing), and it shares CPU {b.load_cpu} with the backend, so "
          f"handshakes/s can be bounded by the load side (CPU {b.load_cpu} busy close to "
          f"100%); the proxy's CPU time per handshake, read by tls_load at the start and the "
          f"end of the recorded window, is then the figure that separates the proxies. "
          f"\"connection\" latency runs from `connect()` to the last byte of the response, "
          f"\"handshake\" to the end of the handshake.")
        w("")
        tls_line(sc)
        skipped_rows(sc)
        w("")
        w(f"| contender | handshakes/s | min – max | resumed (min)"
          + (" | new ticket" if sc == "H" else "") + " | connection p50 | p99 "
          f"| handshake p50 | p99 | proxy CPU / handshake (user + sys, each a median) "
          f"| tls_load CPU / handshake | CPU {b.proxy_cpu} / CPU {b.load_cpu} busy "
          f"| vs better peer | CPU vs better peer | errors |")
        w("|---|---:|---:|---:|" + ("---:|" if sc == "H" else "")
          + "---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        best_rps = best_peer(s, sc, "rps", True)[0]
        best_cpu = best_peer(s, sc, "cpu_per_req", False)[0]
        for c in b.contenders(sc):
            d = s[sc][c]
            lo, hi = d["rps_range"]
            rng = f"{lo:,.0f} – {hi:,.0f}" if lo is not None else "n/a"
            rps = f"{d['rps']:,.0f}" if d["rps"] is not None else "n/a"
            res = (f"{d['resumed_fraction'] * 100:.1f}% ({d['resumed_min'] * 100:.1f}%)"
                   if d["resumed_fraction"] is not None else "n/a")
            if sc == "H" and d["resumed_fraction"] is not None and d["resumed_fraction"] < 0.99:
                res = f"**{res}**"
            ccpu = (f"{d['client_cpu_per_req'] * 1e6:.1f} µs"
                    if d["client_cpu_per_req"] is not None else "–")
            if sc == "H":
                res += (f" | {d['renewed_fraction'] * 100:.1f}%"
                        if d.get("renewed_fraction") is not None else " | n/a")
            w(f"| {LABEL[c]} | {rps} | {rng} | {res} | {fmt_lat(d['p50'])} "
              f"| {fmt_lat(d['p99'])} | {fmt_lat(d['hs_p50'])} | {fmt_lat(d['hs_p99'])} "
              f"| {cpu_cell(d, digits=1)} | {ccpu} | {busy(d)} "
              f"| {fr(ratio(d['rps'], best_rps))} | {fr(ratio(d['cpu_per_req'], best_cpu))} "
              f"| {errs_cell(d)} |")
        left_out_note(sc, b.contenders(sc))
        w("")

    for sc in ("A", "B"):
        if sc in scen:
            wrk_table(sc)
            take(sc)
    sc = "C"
    if sc in scen:
        w(f"iperf3, one TCP stream client → server for {b.duration} s; MB = 10⁶ bytes, "
          f"received bytes / time at the server."
          + (f" The last row is fulcrum with `tcp_congestion: {CC_ALGO}` on the pool toward "
             f"the iperf3 server (another listener of the same process); every other "
             f"connection uses the system's default congestion control, "
             f"{b.system_cc}." if CC_VARIANT in s[sc] else ""))
        w("")
        bulk_table(sc, peer_cpu=False)
        take(sc)
    for sc in ("D", "E"):
        if sc in scen:
            wrk_table(sc)
            take(sc)
    sc = "F"
    if sc in scen:
        w(f"`bench/paced_load.c`: {b.f_rate:,.0f} requests/s ({b.f_rate_how}), open loop, "
          f"over {F_CONNECTIONS} keep-alive connections, {b.http_duration} s recorded after "
          f"{F_WARMUP:g} s of warm-up at the same rate. Latency runs from the moment a request "
          f"was due to the last byte of its response, so time spent waiting for a free "
          f"connection or for the load generator to wake up counts (no coordinated omission). "
          f"\"from send\" is the p99 from the actual send instead, \"send lag\" the p99 of the "
          f"difference (the generator's own delay; the direct row shows the floor of the "
          f"method).")
        w("")
        w(f"| contender | requests/s | p50 | p90 | p99 | p99 min – max | p99.9 | max "
          f"| p99 from send | send lag p99 | p99 vs better peer "
          f"| proxy CPU / request (user + sys) | CPU {b.proxy_cpu} / CPU {b.load_cpu} busy "
          f"| errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        best_p99 = best_peer(s, sc, "p99", False)[0]
        for c in CONTENDERS:
            d = s[sc][c]
            lo, hi = d["p99_range"]
            rng = f"{fmt_lat(lo)} – {fmt_lat(hi)}" if lo is not None else "n/a"
            rps = f"{d['rps']:,.0f}" if d["rps"] is not None else "n/a"
            w(f"| {LABEL[c]} | {rps} | {fmt_lat(d['p50'])} | {fmt_lat(d['p90'])} "
              f"| {fmt_lat(d['p99'])} | {rng} | {fmt_lat(d['p999'])} | {fmt_lat(d['max'])} "
              f"| {fmt_lat(d['svc_p99'])} | {fmt_lat(d['lag_p99'])} "
              f"| {fr(ratio(d['p99'], best_p99))} | {cpu_cell(d)} | {busy(d)} "
              f"| {errs_cell(d)} |")
        left_out_note(sc, CONTENDERS)
        load_side(sc, CONTENDERS, "paced_load")
        w("")
        take(sc)
    for sc in ("G", "H"):
        if sc in scen:
            handshake_table(sc)
            take(sc)
    sc = "J"
    if sc in scen:
        w(f"curl (one process) downloads a {J_BYTES / 2 ** 30:.0f} GiB body (`/big.bin`, sent by "
          f"the NGINX backend with sendfile()) once per run, through the HTTP-mode proxies of "
          f"D–F and directly; MB = 10⁶ bytes, the bytes over curl's total time. Each proxy "
          f"runs its defaults for bodies: fulcrum `forwarding: auto` (the body moves by "
          f"splice() once a read fills a buffer), HAProxy without `option splice-response`, "
          f"NGINX with `proxy_buffering on`. No issue sets a goal here. The direct row is no "
          f"upper bound: without a proxy, curl and the backend share CPU {b.load_cpu} alone, "
          f"while through a proxy the work is spread over both CPUs.")
        w("")
        bulk_table(sc, peer_cpu=True)
        take(sc)
    if "I" in scen:
        wrk_table("I")
        take("I")
    if b.http:
        pb = b.parser_bench or {}
        if pb.get("runs"):
            runs = pb["runs"]
            m = re.search(r"(\d+)-byte request, (\d+) fields", pb.get("line", ""))
            what = f"{m.group(1)} bytes, {m.group(2)} header fields" if m else "about 400 bytes"
            w(f"`bench/h1_parse_bench.c`: `h1_parse_request` on a typical browser GET "
              f"({what}), the whole head in the buffer, parsed 1,000,000 "
              f"times per run; {len(runs)} runs on the idle CPU {b.proxy_cpu} after the load "
              f"runs.")
            w("")
            w(f"| ns per request (median) | min – max | requests/s on one core |")
            w("|---:|---:|---:|")
            m = statistics.median(runs)
            w(f"| {m:.1f} | {min(runs):.1f} – {max(runs):.1f} | {1e9 / m:,.0f} |")
            w("")
            w(f"Built with `{pb['build']}`; run as `{pb['run']}`. Last output: "
              f"`{pb.get('line', '?')}`.")
        else:
            w(f"Not measured: {pb.get('error', 'not run')}.")
        w("")
        take("parser")
    return out


def observations(b, s):
    """[(scenario or "", text)] for this run: "" when it concerns the whole run."""
    scen = b.scenarios
    obs = [("", n) for n in b.notes]
    if b.fulcrum_tls_skip:
        obs.append((",".join(x for x in TLS_SCENARIOS if x in scen),
                    f"fulcrum sat out scenarios {span([x for x in TLS_SCENARIOS if x in scen])}: "
                    f"{b.fulcrum_tls_skip}"))
    for sc in scen:
        for c in who(b, sc):
            for i, r in enumerate(b.results[sc][c]):
                if "error" in r:
                    obs.append((sc, f"{sc} {LABEL[c]} round {i + 1}: {r['error']}"))
    for name, lines in b.logs.items():
        if lines:
            shown = lines[:15]
            iperf_resets = [x for x in lines if "reset by peer" in x
                            and f"127.0.0.1:{b.bulk_backend}" in x]
            hint = ""
            if iperf_resets:
                hint = (f"\n    ({len(iperf_resets)} of these are resets on connections to the "
                        f"iperf3 server, which resets its data connection at the end of each "
                        f"test: expected.)\n")
            obs.append(("", f"{name} logged {len(lines)} line(s)"
                        + (", first 15:" if len(lines) > 15 else ":") + "\n\n    "
                        + "\n    ".join(x[:300] for x in shown) + "\n" + hint))
        else:
            obs.append(("", f"{name}: nothing in its error log."))
    for sc in ("A", "B", "D", "E", "G", "H", "I"):
        if sc not in scen:
            continue
        loads = [s[sc][c]["busy_load_cpu"] for c in b.contenders(sc) if c != "direct"
                 and s[sc][c]["busy_load_cpu"]]
        if loads and min(loads) >= 0.95:
            load = ("tls_load + backend" if sc in HANDSHAKE_SCENARIOS else "wrk + backend")
            per = "handshake" if sc in HANDSHAKE_SCENARIOS else "request"
            obs.append((sc, f"Scenario {sc}: CPU {b.load_cpu} ({load}) was ≥ 95% busy in the "
                            f"median run of every proxy, so {per}s/s there is bounded by the "
                            f"load side rather than by the proxy; compare proxies by CPU per "
                            f"{per} (and CPU {b.proxy_cpu} busy) as much as by {per}s/s."))
    if "H" in scen:
        for c in b.contenders("H"):
            d = s["H"][c]
            if d["resumed_fraction"] is not None and d["resumed_fraction"] < 0.99:
                why = ""
                if d.get("renewed_fraction") is not None and d["renewed_fraction"] < 0.5:
                    why = (f" It sent a new session ticket on only "
                           f"{d['renewed_fraction'] * 100:.1f}% of the connections it resumed; "
                           f"tls_load, like browsers (RFC 8446, C.4) and every OpenSSL client, "
                           f"uses a TLS 1.3 ticket once, so after a resumed connection without "
                           f"a new ticket the next one is a full handshake (HAProxy and NGINX, "
                           f"through OpenSSL's defaults, send one new ticket per resumption).")
                obs.append(("H", f"Scenario H: {LABEL[c]} resumed only "
                                 f"{d['resumed_fraction'] * 100:.1f}% of the handshakes (lowest "
                                 f"round {d['resumed_min'] * 100:.1f}%), so its figures mix "
                                 f"resumed and full handshakes.{why}"))
    if "F" in scen:
        for c in CONTENDERS:
            d = s["F"][c]
            if d["rps"] is not None and d["rps"] < 0.98 * b.f_rate:
                obs.append(("F", f"Scenario F: {LABEL[c]} did not keep up with the fixed rate "
                                 f"(median {d['rps']:,.0f} of {b.f_rate:,.0f} requests/s)."))
        loads = [s["F"][c]["busy_load_cpu"] for c in PROXIES if s["F"][c]["busy_load_cpu"]]
        if loads and min(loads) >= 0.95:
            def load_us(sc):
                v = [s[sc][c]["busy_load_cpu"] / s[sc][c]["rps"] * 1e6 for c in PROXIES
                     if s[sc][c]["busy_load_cpu"] and s[sc][c]["rps"]]
                return statistics.median(v) if v else None
            fu, du = load_us("F"), (load_us("D") if "D" in scen else None)
            cmp = (f" (CPU {b.load_cpu} time per request, median over the proxies: "
                   f"{fu:.1f} µs in F against {du:.1f} µs in D)" if fu and du else "")
            obs.append(("F", f"Scenario F: CPU {b.load_cpu} (paced_load + backend) was ≥ 95% busy in the "
                        f"median run of every proxy, although the rate is only a fraction of D's. "
                        f"At a fixed moderate rate every request wakes the load generator, the "
                        f"backend and the proxy (no batching, unlike a saturating wrk), so the "
                        f"load side costs more CPU per request than in D{cmp}. F's latencies "
                        f"then include queueing on the load side, the same for every proxy but "
                        f"noisy; read the p99 ratio together with its min – max spread."))
        waits = [(c, s["F"][c]["max_backlog"]) for c in CONTENDERS if s["F"][c]["max_backlog"]]
        if waits:
            obs.append(("F", f"Scenario F: at times all {F_CONNECTIONS} connections were waiting for a "
                        f"response, so due requests queued for a free one (counted in their "
                        f"latency); most due requests queued at once, median over the runs: "
                        + ", ".join(f"{LABEL[c]} {v:.0f}" for c, v in waits)
                        + ". A stall of the proxy, the backend or the load generator (or a "
                        "burst of load from other processes) shows up this way."))
    fl = [(r["foreign_load"], sc, c, i) for sc in scen for c in who(b, sc)
          for i, r in enumerate(b.results[sc][c]) if r.get("foreign_load") is not None]
    if fl:
        worst = max(fl)
        bad = [x for x in fl if x[0] > 0.25]
        obs.append(("", f"CPU used by processes the benchmark did not start, during the runs: median "
                    f"{statistics.median(x[0] for x in fl) * 100:.0f}% of one CPU, worst "
                    f"{worst[0] * 100:.0f}% ({worst[1]} {LABEL[worst[2]]} round {worst[3] + 1})"
                    + (f"; {len(bad)} run(s) above 25% (" + ", ".join(
                        f"{x[1]} {LABEL[x[2]]} r{x[3] + 1}"
                        for x in sorted(bad, key=lambda x: x[1:])[:12])
                       + (", ..." if len(bad) > 12 else "")
                       + "), whose figures are suspect; they are left out of the medians "
                       f"where at least {MIN_CLEAN_RUNS} undisturbed runs remain." if bad
                       else ".")))
    idle = {}
    for sc in scen:
        for c in who(b, sc):
            for r in b.results[sc][c]:
                for n, v in r.get("idle_proxy_cpu", {}).items():
                    if v > 0.02 * r["wall"]:
                        idle.setdefault(n, []).append((sc, c, v, r["wall"]))
    for n, items in idle.items():
        worst = max(items, key=lambda x: x[2] / x[3])
        obs.append(("", f"{PROC_LABEL.get(n, n)} used CPU while idle (another contender under load) in "
                    f"{len(items)} run(s); worst {worst[2]:.2f} s in {worst[3]:.1f} s "
                    f"during {worst[0]} {LABEL[worst[1]]}."))
    if not idle:
        obs.append(("", "No idle proxy used more than 2% of a CPU while another contender was "
                        "under load."))
    for p in b.procs:
        for when, rc in p.exits:
            obs.append(("", f"{p.name} exited unexpectedly with status {rc}."))
    return obs


def setup_bullets(b):
    """[(scenarios the bullet is about, or "", text)] for this run."""
    scen = b.scenarios
    out = []
    if b.tcp:
        out.append((",".join(TCP_SCENARIOS),
                    f"Every proxy runs with one worker (fulcrum `global.workers: 1`, HAProxy "
                    f"`nbthread 1`, NGINX `worker_processes 1`), no access log, pinned with "
                    f"`taskset -c {b.proxy_cpu}`. wrk, iperf3 (client and server) and the NGINX HTTP "
                    f"backend are pinned to CPU {b.load_cpu}."))
    if b.http:
        out.append((",".join(HTTP_MODE),
                    f"HTTP scenarios (D–F, J): separate proxy processes in HTTP mode, one worker each, "
                    f"no access log, pinned with `taskset -c {b.proxy_cpu}`: fulcrum with an `http` "
                    f"listener and an `http` pool (`keepalive: {{max_idle: 64}}`); HAProxy `mode http`, "
                    f"`http-reuse always`, `nbthread 1`; NGINX `proxy_pass` to an upstream with "
                    f"`keepalive 64`, `proxy_http_version 1.1`, `proxy_set_header Connection \"\"`, "
                    f"`worker_processes 1`, and `keepalive_requests` raised on both sides (NGINX "
                    f"otherwise closes every connection after 1,000 requests; the others have no such "
                    f"limit). fulcrum adds `X-Forwarded-For`, `-Proto`, `-Host` and `-Port` to every "
                    f"request, and HAProxy (`option forwardfor`, `http-request set-header` for the "
                    f"other three) and NGINX (`proxy_set_header`) are configured to add the same "
                    f"four, so that the backend gets the same request from each (also in G–I). "
                    f"wrk, the paced load generator and the NGINX backend are pinned to "
                    f"CPU {b.load_cpu}."))
    if b.tls:
        out.append((",".join(TLS_SCENARIOS),
                    f"HTTPS scenarios (G–I): separate proxy processes terminating TLS, one worker "
                    f"each, no access log, pinned with `taskset -c {b.proxy_cpu}`, forwarding plain "
                    f"HTTP to the same NGINX backend as D–F over pooled keep-alive connections "
                    f"(the same backend-side settings as in D–F). One self-signed ECDSA P-256 "
                    f"certificate, made at the start of the run in the temp dir (`{b.cert_cmd}`) "
                    f"and used by all three (HAProxy gets certificate and key in one PEM). "
                    f"fulcrum: an `https` listener with that certificate and fulcrum's TLS "
                    f"defaults (`bench/templates/fulcrum-https.yaml`); HAProxy: `bind ... ssl crt` "
                    f"with `ssl-min-ver TLSv1.3` and `curves X25519:P-256` (HAProxy's default is "
                    f"prime256v1 only), defaults otherwise: TLS tickets on, "
                    f"`tune.ssl.cachesize 20000` (its default); NGINX: `listen ... ssl`, "
                    f"`ssl_protocols TLSv1.3`, `ssl_session_cache shared:SSL:10m`, "
                    f"`ssl_session_tickets on`. Every client (wrk, `bench/tls_load.c`, the "
                    f"`openssl s_client` probe) offers TLS 1.3 only, the single cipher suite "
                    f"`{TLS_SUITE}` and the single group {TLS_GROUP} (tls_load by its options, "
                    f"wrk and s_client through an `OPENSSL_CONF` file), so every contender "
                    f"negotiates the same; one s_client handshake per proxy at the start "
                    f"records what was negotiated. The client does not verify the certificate "
                    f"chain (it does verify the handshake signature). HAProxy 2.6 and NGINX 1.22 "
                    f"use the system OpenSSL ({first_line(['openssl', 'version'])}). For G and H "
                    f"the proxy's CPU time is read by tls_load at the start and the end of its "
                    f"recorded window (warm-up excluded) and divided by the handshakes completed "
                    f"in it; for I as in D. There is no direct path in G–I (the backend speaks "
                    f"plain HTTP)."))
    out.append(("", "All proxies run for the whole benchmark on their own ports; the one under "
                    "test is the only one with traffic. Each round runs every contender once per "
                    "scenario, in an order rotated by one each round; a 1 s unrecorded warm-up "
                    "precedes round 1." + (" Scenario F needs D's results for its rate, so its "
                                           "rounds follow the others'." if "F" in scen else "")))
    out.append(("", "Proxy CPU time is utime + stime from `/proc/PID/stat` (all threads; for NGINX "
                    "the sum of the worker processes) read before and after the load run, divided by "
                    "the requests wrk completed (A, B, D, E, I), by every request answered in the run, "
                    "warm-up included (F), by the handshakes of the recorded window (G, H), or by the "
                    "gigabytes moved (C, J). Softirq work of "
                    "the loopback path is charged to whichever process was running, so these figures "
                    "include part of the kernel's TCP processing; the user + sys split shows how much "
                    "is the proxy's own code."))
    out.append(("", f"CPU busy columns: share of the run's wall time that CPU {b.proxy_cpu} (proxy) and "
                    f"CPU {b.load_cpu} (load generator + backend) were not idle, from `/proc/stat`, all "
                    f"processes and interrupts included. With every server idle (2 s before and after "
                    f"the runs) the machine showed "
                    + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in b.baseline.items()) + " and "
                    + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in b.baseline_after.items())
                    + " busy: load from processes the benchmark did not start."))
    out.append(("", "Configs: `bench/templates/` (ports are filled in per run)."))
    return out


def durations_text(b):
    parts = []
    if b.tcp:
        parts.append(f"{b.duration} s per run (TCP scenarios A–C)")
    if b.http:
        parts.append(f"{b.http_duration} s per run (HTTP scenarios D–F)")
    if b.tls:
        parts.append(f"{b.tls_duration} s per run (HTTPS scenarios G–I; G and H after "
                     f"{TLS_WARMUP:g} s of warm-up)")
    if "J" in b.scenarios:
        parts.append(f"one {J_BYTES / 2 ** 30:.0f} GiB download per run (J)")
    return ", ".join(parts)


def run_record(b, s, g):
    """This run, as stored in the results file: what was run, where and how,
    and the rendered parts of the report that belong to each scenario."""
    scen = b.scenarios
    rid = f"{b.started:%Y-%m-%dT%H:%M:%S}Z"
    fl_all = [r["foreign_load"] for sc in scen for c in who(b, sc)
              for r in b.results[sc][c] if r.get("foreign_load") is not None]
    n_bad = sum(1 for x in fl_all if x > 0.25)
    idle_bad = max(list(b.baseline.values()) + list(b.baseline_after.values())) > 0.25
    warning = None
    if n_bad or idle_bad:
        warning = (f"Processes the benchmark did not start used more than 25% of a CPU during "
                   f"{n_bad} of {len(fl_all)} runs (median "
                   f"{statistics.median(fl_all) * 100 if fl_all else 0:.0f}% of one CPU)"
                   + (", and while every server was idle before or after the runs"
                      if idle_bad else "") + ".")
    run = {
        "id": rid,
        "started": f"{b.started:%Y-%m-%d %H:%M}",
        "minutes": round((b.finished - b.started).total_seconds() / 60, 1),
        "command": "/usr/bin/python3 bench/run.py" + (" " + " ".join(b.args.argv)
                                                      if b.args.argv else ""),
        "rounds": b.rounds,
        "durations": durations_text(b),
        "quick": bool(b.args.quick),
        "scenarios": scen,
        "warning": warning,
        "machine": [[k, v] for k, v in machine_info(b).items()],
        "setup": [list(x) for x in setup_bullets(b)],
        "procs": [f"# {p.name}: " + shlex.join(p.argv) for p in b.procs],
        "observations": [list(x) for x in observations(b, s)],
    }
    parts = sections(b, s, g)
    records = {}
    for sc in scen:
        plot = {}
        for c in CONTENDERS:
            plot[c] = {k: s[sc][c].get(k) for k in ("rps", "cpu_per_req", "mbps", "p99")}
        records[sc] = {
            "run": rid,
            "section": parts.get(sc, []),
            "goals": [[issue, text, fr(x, 3), verdict] for issue, gsc, text, x, verdict in g
                      if gsc == sc],
            "runs": [f"| {i + 1} | {sc} | {LABEL[c]} | {b.describe(sc, c, r)}"
                     + (" (left out of the medians)" if i in s[sc][c]["left_out"] else "") + " |"
                     for c in who(b, sc) for i, r in enumerate(b.results[sc][c])],
            "commands": [f"# {sc} {LABEL[c]}: " + b.commands[(sc, c)]
                         for c in who(b, sc) if (sc, c) in b.commands],
            "plot": plot,
            "summary": json.loads(json.dumps(s[sc], default=str)),
        }
        if sc in TLS_SCENARIOS and b.fulcrum_tls_skip:
            records[sc]["fulcrum_skipped"] = b.fulcrum_tls_skip
    if "parser" in parts:
        records["parser"] = {"run": rid, "section": parts["parser"], "goals": [], "runs": [],
                             "commands": [], "plot": {}}
    return run, records


def load_store(path):
    if path.exists():
        try:
            store = json.loads(path.read_text())
            if store.get("format") == RESULTS_FORMAT:
                return store
            log(f"bench: {path} has another format; starting a new one")
        except ValueError as e:
            log(f"bench: {path} is unreadable ({e}); starting a new one")
    return {"format": RESULTS_FORMAT, "runs": {}, "scenarios": {}}


def merge_store(store, run, records):
    """This run's scenarios replace the stored ones; runs no scenario comes
    from any more are dropped."""
    store["runs"][run["id"]] = run
    store["scenarios"].update(records)
    used = {r["run"] for r in store["scenarios"].values()}
    store["runs"] = {k: v for k, v in store["runs"].items() if k in used}
    return store


LEFT_OUT_TEXT = (f"Runs during which processes the benchmark did not start used more than "
                 f"{NOISY_LOAD * 100:.0f}% of a CPU are left out of the medians when at least "
                 f"{MIN_CLEAN_RUNS} undisturbed runs of that contender remain (the tables say "
                 f"so; every run is listed at the end).")


def compose(store, out, store_path):
    """docs/benchmarks.md (or --out) and its plot, from every stored scenario."""
    recs = store["scenarios"]
    order = sorted(store["runs"].values(), key=lambda r: r["id"])
    num = {r["id"]: i + 1 for i, r in enumerate(order)}
    shown = [sc for sc in SCENARIOS if sc in recs]
    from_run = {rid: [sc for sc in shown if recs[sc]["run"] == rid] for rid in num}
    multi = len(order) > 1

    def rname(rid):
        return f"run {num[rid]}" if multi else "this run"

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    if multi:
        try:
            where = store_path.resolve().relative_to(ROOT)
        except ValueError:
            where = store_path
        w(f"Rendered by `bench/run.py` from the figures stored in `{where}`: each "
          f"scenario comes from the latest run that included it.")
        w("")
    for r in order:
        scs = from_run[r["id"]] + (["parser microbenchmark"]
                                   if recs.get("parser", {}).get("run") == r["id"] else [])
        lead = (f"- **Run {num[r['id']]}** (scenarios {span([x for x in scs if len(x) == 1])}"
                + (", parser microbenchmark" if "parser microbenchmark" in scs else "")
                + "): generated" if multi else "Generated")
        how = ("`make bench` (`" + r["command"] + "`)"
               if r["command"] == "/usr/bin/python3 bench/run.py"
               else "`" + r["command"] + "`")
        w(f"{lead} by {how} on {r['started']} UTC, in "
          f"{r['minutes']:.1f} min. {r['rounds']} interleaved round(s) of {r['durations']}"
          + ("." if multi else "; every number is the **median over the rounds**, ratios are "
             "ratios of medians. " + LEFT_OUT_TEXT + " Re-run with `make bench`; see "
             "`bench/README.md` for the method."))
    if multi:
        w("")
        w("Every number is the **median over the rounds** of its run, ratios are ratios of "
          "medians. " + LEFT_OUT_TEXT + " Re-run with `make bench` (all scenarios) or "
          "`bench/run.py --scenarios LIST` (those only); see `bench/README.md` for the method.")
    for r in order:
        if r.get("quick"):
            w("")
            w(f"> **Quick smoke run** ({rname(r['id'])}, `--quick`): one short round, not a "
              f"measurement.")
        if r.get("warning"):
            w("")
            w(f"> **Warning: the machine was not quiet** ({rname(r['id'])}). {r['warning']} "
              f"Disturbed runs are left out of the medians where enough others remain, but "
              f"the figures of {rname(r['id'])} are less reliable than those of a quiet "
              f"machine; see Observations and every run at the end, and re-run on a quiet "
              f"machine (`--wait-quiet S` waits for one).")
    goal_notes = {
        2: ("The issue states the request goals for small HTTP requests through the TCP "
            "listener; they are checked here both with keep-alive (A) and with a new "
            "connection per request (B). The issue also requires fulcrum to propagate "
            "half-close both ways: each direction stays open until its sender ends it. "
            "HAProxy's `mode tcp` does the same by default; NGINX's stream module ends the "
            "whole session when either side closes, unless `proxy_half_close on` is set. In "
            "B, where every connection closes, that saves NGINX a shutdown, a read and a "
            "wake-up per connection, so B's CPU goal is taken against the peers that do the "
            "same job (HAProxy, and NGINX with `proxy_half_close on`, another server of the "
            "same NGINX process), and the ratio to NGINX's default is shown beside it.",
            ("A", "B")),
        3: ("The proxies in HTTP mode (fulcrum `protocol: http`, HAProxy `mode http`, NGINX "
            "`http` `proxy_pass`), each keeping idle connections to the backend. \"Better "
            "peer\" is the better of HAProxy and NGINX on that figure.", tuple(HTTP_SCENARIOS)),
        4: ("TLS 1.3 terminated at the proxy (fulcrum `protocol: https`, HAProxy `bind ... "
            "ssl`, NGINX `listen ... ssl`), same ECDSA P-256 certificate, the same cipher "
            "suite and key-exchange group for all, plain HTTP to the backend. \"Better peer\" "
            "is the better of HAProxy and NGINX on that figure. The CPU rows have no goal; "
            "they show what the handshake goals depend on when the load generator, not the "
            "proxy, is the limit.", tuple(TLS_SCENARIOS)),
    }
    for issue in (2, 3, 4):
        rows = [(sc, row) for sc in shown for row in recs[sc]["goals"] if row[0] == issue]
        if not rows:
            continue
        w("")
        w(f"## Goals (issue {issue})")
        w("")
        w("| scenario | goal | measured | result |")
        w("|---|---|---|---|")
        for sc, (_, text, x, verdict) in rows:
            w(f"| {sc} | {text} | {x} | {verdict} |")
        note, scs = goal_notes[issue]
        if any(x in shown for x in scs):
            w("")
            w(note)
        skipped = [sc for sc in shown if recs[sc].get("fulcrum_skipped") and issue == 4]
        if skipped:
            w("")
            w(f"**fulcrum did not run in {span(skipped)}**: "
              f"{recs[skipped[0]]['fulcrum_skipped']}")
    # issue 5, measured by bench/health_scale.py: its own section, at the end
    import health_scale
    health = health_scale.stored_block(HEALTH_RESULTS)
    if health:
        w("")
        w("## Goals (issue 5)")
        w("")
        w("The cost of health checking 1,000 servers every second (CPU, and request latency "
          "with checks vs without) is measured by `bench/health_scale.py`; its goals and "
          "figures are in [Health checks at scale](#health-checks-at-scale) at the end.")
    plot_s = {}
    for sc in shown:
        plot_s[sc] = {c: {k: (recs[sc]["plot"].get(c) or {}).get(k)
                          for k in ("rps", "cpu_per_req", "mbps", "p99")} for c in CONTENDERS}
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = write_plot(out)(plot_s)
    w("")
    w(f"![benchmark plot]({plot.name})")
    w("")
    for sc in shown:
        w(f"## {SCENARIO_TITLE[sc]}")
        w("")
        if multi:
            r = store["runs"][recs[sc]["run"]]
            w(f"*From run {num[r['id']]} ({r['started']} UTC).*")
            w("")
        L.extend(recs[sc]["section"])
    if "parser" in recs:
        w("## HTTP/1.1 request parser (microbenchmark)")
        w("")
        if multi:
            r = store["runs"][recs["parser"]["run"]]
            w(f"*From run {num[r['id']]} ({r['started']} UTC).*")
            w("")
        L.extend(recs["parser"]["section"])

    w("## Machine and versions")
    w("")
    if multi:
        w("| | " + " | ".join(f"run {num[r['id']]} ({span(from_run[r['id']]) or 'parser'})"
                              for r in order) + " |")
        w("|---|" + "---|" * len(order))
        keys = []
        for r in order:
            for k, _ in r["machine"]:
                if k not in keys:
                    keys.append(k)
        w("| date | " + " | ".join(r["started"][:10] for r in order) + " |")
        for k in keys:
            vals = [dict(r["machine"]).get(k, "–").replace("|", "/") for r in order]
            w(f"| {k} | " + " | ".join(vals) + " |")
    else:
        r = order[0]
        w("| | |")
        w("|---|---|")
        w(f"| date | {r['started'][:10]} |")
        for k, v in r["machine"]:
            w(f"| {k} | {v.replace('|', '/')} |")
    w("")

    def current(r, tags):
        """A run's item tagged with scenarios applies while one of them is still
        shown from that run."""
        if not tags:
            return True
        return any(t in from_run[r["id"]] for t in tags.split(","))

    w("## Setup")
    w("")
    for r in order:
        if multi:
            w(f"Run {num[r['id']]}:")
            w("")
        for tags, text in r["setup"]:
            if current(r, tags):
                w(f"- {text}")
        w("")
        w("Commands of the last round (ports vary per run):")
        w("")
        w("```")
        for line in r["procs"]:
            w(line)
        for sc in from_run[r["id"]]:
            for line in recs[sc]["commands"]:
                w(line)
        w("```")
        w("")

    w("## Observations")
    w("")
    for r in order:
        if multi:
            w(f"Run {num[r['id']]}:")
            w("")
        for tags, text in r["observations"]:
            if current(r, tags):
                w(f"- {text}")
        w("")

    w("<details><summary>Every run</summary>")
    w("")
    w("| round | scenario | contender | result |")
    w("|---:|---|---|---|")
    for sc in shown:
        for line in recs[sc]["runs"]:
            w(line)
    w("")
    w("</details>")
    w("")
    if health:
        L.extend(health)
        w("")
    out.write_text("\n".join(L))
    return plot


def report(b, out, store_path, fresh=False):
    s = summarize(b)
    g = goals(s)
    run, records = run_record(b, s, g)
    store = ({"format": RESULTS_FORMAT, "runs": {}, "scenarios": {}} if fresh
             else load_store(store_path))
    merge_store(store, run, records)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_text(json.dumps(store, indent=1, ensure_ascii=False) + "\n")
    plot = compose(store, out, store_path)
    return s, g, plot


# ---------------------------------------------------------------- main

def wait_quiet(limit, window=30):
    """Wait (up to limit seconds) until no CPU has been more than 25% busy in
    any 5 s of the last `window` seconds."""
    deadline = time.monotonic() + limit
    quiet = 0
    while True:
        b0 = cpu_busy()
        time.sleep(5)
        b1 = cpu_busy()
        load = {c: (b1[c][0] - b0[c][0]) / max(1, b1[c][1] - b0[c][1]) for c in b1}
        if max(load.values()) <= 0.25:
            quiet += 5
            if quiet >= window:
                return
            continue
        quiet = 0
        if time.monotonic() > deadline:
            log("bench: machine still busy, starting anyway")
            return
        log("bench: waiting for a quiet machine (" + ", ".join(
            f"CPU{c} {v * 100:.0f}%" for c, v in sorted(load.items())) + " busy)")


def main():
    ap = argparse.ArgumentParser(description="fulcrum vs HAProxy vs NGINX vs direct, on loopback")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), metavar="LIST",
                    help="comma-separated scenarios to run (default all: "
                         f"{','.join(SCENARIOS)}): A-C TCP mode, D-F HTTP mode, G-I HTTPS, "
                         f"J a large HTTP download")
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds per wrk / iperf3 run of scenarios A-C (default 8)")
    ap.add_argument("--http-duration", type=int, default=5,
                    help="seconds per run of scenarios D-F (default 5; F adds "
                         f"{F_WARMUP:g} s of warm-up)")
    ap.add_argument("--tls-duration", type=int, default=5,
                    help="seconds per run of scenarios G-I (default 5; G and H add "
                         f"{TLS_WARMUP:g} s of warm-up)")
    ap.add_argument("--f-rate", type=float, default=None, metavar="RPS",
                    help="fixed request rate of scenario F (default: half the slowest "
                         "proxy's requests/s in D)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between runs")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                    help="markdown output (default docs/benchmarks.md); the plot goes next to it")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="first wait up to S seconds for both CPUs to be under 25%% busy "
                         "(other processes) before starting")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument("--results", default=None, metavar="PATH",
                    help="where the figures of every scenario are stored and merged (default "
                         "bench/results.json with the default --out, else --out with .json)")
    ap.add_argument("--fresh", action="store_true",
                    help="do not merge with the stored results: the report shows this run only")
    ap.add_argument("--render", action="store_true",
                    help="do not measure: write --out again from the stored results (and the "
                         "health-check section from bench/health_results.json)")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.quick:
        args.rounds, args.duration, args.http_duration, args.tls_duration = 1, 3, 3, 3
    if (args.rounds < 1 or args.duration < 1 or args.http_duration < 1
            or args.tls_duration < 1):
        ap.error("--rounds, --duration, --http-duration and --tls-duration must be at least 1")
    if args.f_rate is not None and args.f_rate <= 0:
        ap.error("--f-rate must be positive")
    want = [x.strip().upper() for x in args.scenarios.split(",") if x.strip()]
    bad = [x for x in want if x not in SCENARIOS]
    if bad or not want:
        ap.error(f"--scenarios: unknown {', '.join(bad) or 'empty list'}; "
                 f"choose from {','.join(SCENARIOS)}")
    args.scenarios = [x for x in SCENARIOS if x in want]
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    if args.results:
        store_path = Path(args.results)
        if not store_path.is_absolute():
            store_path = Path.cwd() / store_path
    elif out.resolve() == (ROOT / "docs" / "benchmarks.md").resolve():
        store_path = ROOT / "bench" / "results.json"
    else:
        store_path = out.with_suffix(".json")

    if args.render:
        store = load_store(store_path)
        if not store["runs"]:
            log(f"bench: nothing stored in {store_path}")
            return 1
        plot = compose(store, out, store_path)
        log(f"bench: wrote {out} and {plot} from {store_path}")
        return 0
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    b = Bench(args)
    done = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
        done = True
    except KeyboardInterrupt:
        log("bench: interrupted")
    except BenchError as e:
        log(f"bench: error: {e}")
    finally:
        b.stop()
    if not done:
        b.args.keep = True
        b.cleanup()
        return 1
    s, g, plot = report(b, out, store_path, args.fresh)
    b.cleanup()
    log("")
    log(f"bench: wrote {out} and {plot}; figures stored in {store_path}")
    for issue, sc, text, x, verdict in g:
        log(f"  {sc}: {text}: {fr(x, 3)} -> {verdict.strip('*')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Side-by-side benchmark of fulcrum, HAProxy, NGINX and the direct path.

Runs on loopback only, in one go: every contender in every round (rotated
order), medians over the rounds. Writes docs/benchmarks.md and a plot
(PNG with matplotlib when it is installed, otherwise a stdlib SVG).

    /usr/bin/python3 bench/run.py [--rounds N] [--duration S] [--quick]
                                  [--out PATH] [--keep]

See bench/README.md for what is measured and how. Python 3 stdlib only.
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
SCENARIOS = ["A", "B", "C"]
SCENARIO_TITLE = {
    "A": "Scenario A: small HTTP requests, keep-alive",
    "B": "Scenario B: small HTTP requests, new connection per request",
    "C": "Scenario C: bulk transfer (iperf3, one stream)",
}
WRK_CONNECTIONS = 50
GOAL_RPS_VS_HAPROXY = 1.10
GOAL_CPU_VS_BEST_PEER = 0.90
GOAL_BULK_VS_DIRECT = 0.95
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


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited during startup; see {proc.out_path}")
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


class Bench:
    def __init__(self, args):
        self.args = args
        self.rounds = args.rounds
        self.duration = args.duration
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
        self.results = {s: {c: [] for c in CONTENDERS} for s in SCENARIOS}
        self.commands = {}  # (scenario, contender) -> command line
        self.notes = []

    # ------------------------------------------------------------ setup

    def setup(self):
        for tool in ("wrk", "iperf3", "haproxy", "nginx", "taskset"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found: run `make deps` (scripts/deps.sh)")
        if not FULCRUM.exists():
            raise BenchError(f"{FULCRUM} not built: run `make`")
        stream_module = find_stream_module()
        (self.http_backend, self.bulk_backend,
         f_http, f_bulk, h_http, h_bulk, n_http, n_bulk) = free_ports(8)
        self.http_port = {"direct": self.http_backend, "fulcrum": f_http,
                          "haproxy": h_http, "nginx": n_http}
        self.bulk_port = {"direct": self.bulk_backend, "fulcrum": f_bulk,
                          "haproxy": h_bulk, "nginx": n_bulk}
        d = self.dir
        common = dict(dir=d, http_backend=self.http_backend, bulk_backend=self.bulk_backend)
        cfg_backend = render("backend-nginx.conf", d / "backend-nginx.conf",
                             dir=d, http_port=self.http_backend)
        cfg_fulcrum = render("fulcrum.yaml", d / "fulcrum.yaml", http_listen=f_http,
                             bulk_listen=f_bulk, **common)
        cfg_haproxy = render("haproxy.cfg", d / "haproxy.cfg", http_listen=h_http,
                             bulk_listen=h_bulk, **common)
        cfg_nginx = render("nginx-stream.conf", d / "nginx-stream.conf", http_listen=n_http,
                           bulk_listen=n_bulk, stream_module=stream_module, **common)

        r = subprocess.run([str(FULCRUM), "check", "-c", str(cfg_fulcrum)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError("fulcrum check failed:\n" + r.stdout + r.stderr)
        r = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg_haproxy)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError("haproxy -c failed:\n" + r.stdout + r.stderr)

        tp, tl = ["taskset", "-c", self.proxy_cpu], ["taskset", "-c", self.load_cpu]
        self.backend = Proc("backend-nginx", tl + [
            "nginx", "-p", str(d), "-c", str(cfg_backend), "-e", str(d / "backend-nginx.stderr.log")],
            d, cpu_children=True)
        self.iperf_server = Proc("iperf3-server", tl + [
            "iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.bulk_backend)], d)
        self.proxy = {
            "fulcrum": Proc("fulcrum", tp + [str(FULCRUM), "-c", str(cfg_fulcrum)], d),
            "haproxy": Proc("haproxy", tp + ["haproxy", "-db", "-f", str(cfg_haproxy)], d),
            "nginx": Proc("nginx-stream", tp + [
                "nginx", "-p", str(d), "-c", str(cfg_nginx), "-e",
                str(d / "nginx-stream.stderr.log")], d, cpu_children=True),
        }
        self.procs = [self.backend, self.iperf_server] + list(self.proxy.values())
        self.backend.start()
        wait_listening(self.http_backend, self.backend)
        self.iperf_server.start()
        wait_listening(self.bulk_backend, self.iperf_server)
        for name, p in self.proxy.items():
            p.start()
            wait_listening(self.http_port[name], p)
            wait_listening(self.bulk_port[name], p)
        self.configs = {"backend": cfg_backend, "fulcrum": cfg_fulcrum,
                        "haproxy": cfg_haproxy, "nginx": cfg_nginx}

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"warning: stopping {p.name}: {e}")

    def ensure_running(self, contender):
        """Restart anything that died (the exit is recorded as a note)."""
        for p in [self.backend, self.iperf_server] + (
                [self.proxy[contender]] if contender in self.proxy else []):
            if not p.check():
                msg = (f"{p.name} was found dead before a {LABEL[contender]} run "
                       f"and restarted; exit status {p.exits[-1][1] if p.exits else '?'}")
                log("!! " + msg)
                self.notes.append(msg)
                p.start()
                port = {"backend-nginx": self.http_backend,
                        "iperf3-server": self.bulk_backend}.get(p.name)
                if port is None:
                    port = self.http_port[contender]
                wait_listening(port, p)
                if p in self.proxy.values():
                    wait_listening(self.bulk_port[contender], p)

    # ------------------------------------------------------------ runs

    def wrk_cmd(self, contender, close, duration):
        argv = ["taskset", "-c", self.load_cpu, "wrk", "-t1", f"-c{WRK_CONNECTIONS}",
                f"-d{duration}s", "--latency"]
        if close:
            argv += ["-H", "Connection: close"]
        argv.append(f"http://127.0.0.1:{self.http_port[contender]}/")
        return argv

    def iperf_cmd(self, contender, duration):
        return ["taskset", "-c", self.load_cpu, "iperf3", "-c", "127.0.0.1",
                "-p", str(self.bulk_port[contender]), "-t", str(duration), "-J"]

    def measure(self, scenario, contender, duration=None, record=True):
        duration = duration or self.duration
        self.ensure_running(contender)
        if scenario == "C":
            argv = self.iperf_cmd(contender, duration)
        else:
            argv = self.wrk_cmd(contender, scenario == "B", duration)
        if record:
            self.commands[(scenario, contender)] = shlex.join(argv)
        proxy = self.proxy.get(contender)
        pids = proxy.cpu_pids() if proxy else []
        cpu0 = cpu_times(pids) if pids else None
        busy0 = cpu_busy()
        own0 = self.own_cpu()
        others = {n: p.cpu_pids() for n, p in self.proxy.items() if n != contender}
        others0 = {n: sum(cpu_times(ps)) for n, ps in others.items() if ps}
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{shlex.join(argv)} did not finish in {duration + 30}s")
        wall = time.monotonic() - t0
        busy1 = cpu_busy()
        own1 = self.own_cpu()
        res = {"wall": wall, "idle_proxy_cpu": {}}
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
                res["cpu"] = res["cpu_user"] + res["cpu_sys"]
                if scenario != "C" and res.get("requests"):
                    n = res["requests"]
                    res["cpu_per_req"] = res["cpu"] / n
                    res["user_per_req"], res["sys_per_req"] = res["cpu_user"] / n, res["cpu_sys"] / n
                if scenario == "C" and res.get("bytes"):
                    gb = res["bytes"] / 1e9
                    res["cpu_per_gb"] = res["cpu"] / gb
                    res["user_per_gb"], res["sys_per_gb"] = res["cpu_user"] / gb, res["cpu_sys"] / gb
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
        if scenario == "C":
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
            f"load generator + backend CPU {self.load_cpu}")
        self.setup()
        self.baseline = self.idle_load("before")
        log("bench: warm-up (1 s per contender, not recorded)")
        for c in CONTENDERS:
            self.measure("A", c, duration=1, record=False)
        for rnd in range(self.rounds):
            k = rnd % len(CONTENDERS)
            order = CONTENDERS[k:] + CONTENDERS[:k]
            for s in SCENARIOS:
                for c in order:
                    res = self.measure(s, c)
                    log(f"[round {rnd + 1}/{self.rounds}] {s} {LABEL[c]:8s} "
                        + self.describe(s, c, res))
                    time.sleep(self.args.pause)
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        self.baseline_after = self.idle_load("after")
        self.collect_logs()

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


def summarize(b):
    s = {}
    for sc in SCENARIOS:
        s[sc] = {}
        for c in CONTENDERS:
            runs = b.results[sc][c]
            d = {"n": sum(1 for r in runs if "error" not in r), "runs": len(runs)}
            for k in ("busy_proxy_cpu", "busy_load_cpu", "user_per_req", "sys_per_req",
                      "user_per_gb", "sys_per_gb"):
                d[k] = med(runs, k)
            if sc == "C":
                d["mbps"] = med(runs, "mbps")
                d["mbps_range"] = spread(runs, "mbps")
                d["cpu_per_gb"] = med(runs, "cpu_per_gb")
            else:
                d["rps"] = med(runs, "rps")
                d["rps_range"] = spread(runs, "rps")
                d["p50"] = med(runs, "p50")
                d["p99"] = med(runs, "p99")
                d["cpu_per_req"] = med(runs, "cpu_per_req")
                errs = {}
                for r in runs:
                    for k, v in r.get("errors", {}).items():
                        errs[k] = errs.get(k, 0) + v
                d["errors"] = {k: v for k, v in errs.items() if v}
            s[sc][c] = d
    return s


def goals(s):
    g = []
    for sc in ("A", "B"):
        f, h, n = s[sc]["fulcrum"], s[sc]["haproxy"], s[sc]["nginx"]
        rr = ratio(f["rps"], h["rps"])
        peers = [x for x in (h["cpu_per_req"], n["cpu_per_req"]) if x is not None]
        best = min(peers) if peers else None
        cr = ratio(f["cpu_per_req"], best)
        best_name = None
        if best is not None:
            best_name = "HAProxy" if best == h["cpu_per_req"] else "NGINX"
        g.append((sc, f"requests/s, fulcrum / HAProxy ≥ {GOAL_RPS_VS_HAPROXY:.2f}x", rr,
                  met(rr, GOAL_RPS_VS_HAPROXY, True)))
        g.append((sc, f"proxy CPU per request, fulcrum / better peer ({best_name or '?'}) "
                      f"≤ {GOAL_CPU_VS_BEST_PEER:.2f}x", cr, met(cr, GOAL_CPU_VS_BEST_PEER, False)))
    br = ratio(s["C"]["fulcrum"]["mbps"], s["C"]["direct"]["mbps"])
    g.append(("C", f"bulk MB/s, fulcrum / direct ≥ {GOAL_BULK_VS_DIRECT:.2f}x", br,
              met(br, GOAL_BULK_VS_DIRECT, True)))
    return g


def write_svg(path, s):
    """A small grouped bar chart, stdlib only."""
    colors = {"direct": "#888888", "fulcrum": "#d95f02", "haproxy": "#1b9e77", "nginx": "#7570b3"}
    panels = [
        ("A: requests/s (keep-alive)", [(c, s["A"][c]["rps"]) for c in CONTENDERS], "{:,.0f}"),
        ("B: requests/s (connection per request)", [(c, s["B"][c]["rps"]) for c in CONTENDERS],
         "{:,.0f}"),
        ("A: proxy CPU µs per request", [(c, (s["A"][c]["cpu_per_req"] or 0) * 1e6)
                                         for c in PROXIES], "{:.2f}"),
        ("B: proxy CPU µs per request", [(c, (s["B"][c]["cpu_per_req"] or 0) * 1e6)
                                         for c in PROXIES], "{:.2f}"),
        ("C: bulk MB/s (iperf3)", [(c, s["C"][c]["mbps"]) for c in CONTENDERS], "{:,.0f}"),
    ]
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
                       f'text-anchor="end">{LABEL[c]}</text>')
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
    colors = {"direct": "#888888", "fulcrum": "#d95f02", "haproxy": "#1b9e77", "nginx": "#7570b3"}
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [
        (axes[0], "requests/s (A keep-alive, B close)", CONTENDERS,
         lambda c: (s["A"][c]["rps"] or 0, s["B"][c]["rps"] or 0), ("A", "B")),
        (axes[1], "proxy CPU µs/request", PROXIES,
         lambda c: ((s["A"][c]["cpu_per_req"] or 0) * 1e6, (s["B"][c]["cpu_per_req"] or 0) * 1e6),
         ("A", "B")),
        (axes[2], "bulk MB/s (C)", CONTENDERS, lambda c: (s["C"][c]["mbps"] or 0,), ("C",)),
    ]
    for ax, title, cs, get, groups in panels:
        width = 0.8 / len(cs)
        for i, c in enumerate(cs):
            vals = get(c)
            xs = [g + i * width for g in range(len(groups))]
            ax.bar(xs, vals, width, label=LABEL[c], color=colors[c])
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels(groups)
        ax.set_title(title)
        ax.legend(fontsize=8)
    axes[3].axis("off")
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
        "fulcrum": first_line([str(FULCRUM), "version"]) + f" (`build/fulcrum` built "
                   f"{datetime.datetime.fromtimestamp(FULCRUM.stat().st_mtime):%Y-%m-%d %H:%M}, "
                   f"sha256 {hashlib.sha256(FULCRUM.read_bytes()).hexdigest()[:12]}; "
                   f"tree `{git_rev()}`)",
        "HAProxy": first_line(["haproxy", "-v"]),
        "NGINX": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "iperf3": first_line(["iperf3", "-v"]),
        "Python": platform.python_version(),
    }


def git_rev():
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def report(b, out):
    s = summarize(b)
    g = goals(s)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = write_plot(out)(s)
    info = machine_info(b)
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w(f"Generated by `make bench` (`/usr/bin/python3 bench/run.py"
      f"{' ' + ' '.join(b.args.argv) if b.args.argv else ''}`) on "
      f"{b.started:%Y-%m-%d %H:%M} UTC, in {(b.finished - b.started).total_seconds() / 60:.1f} min. "
      f"{b.rounds} interleaved round(s) of {b.duration} s per run; every number is the "
      f"**median over the rounds**, ratios are ratios of medians. "
      f"Re-run with `make bench`; see `bench/README.md` for the method.")
    if b.args.quick:
        w("")
        w("> **Quick smoke run** (`--quick`): one short round, not a measurement.")
    fl_all = [r["foreign_load"] for sc in SCENARIOS for c in CONTENDERS
              for r in b.results[sc][c] if r.get("foreign_load") is not None]
    n_bad = sum(1 for x in fl_all if x > 0.25)
    idle_bad = max(list(b.baseline.values()) + list(b.baseline_after.values())) > 0.25
    if n_bad or idle_bad:
        w("")
        w(f"> **Warning: the machine was not quiet.** Processes the benchmark did not start "
          f"used more than 25% of a CPU during {n_bad} of {len(fl_all)} runs (median "
          f"{statistics.median(fl_all) * 100 if fl_all else 0:.0f}% of one CPU)"
          + (", and while every server was idle before or after the runs" if idle_bad else "")
          + ". The figures below are disturbed; see Observations, and re-run on a quiet "
          "machine (`--wait-quiet S` waits for one).")
    w("")
    w("## Goals (issue 2)")
    w("")
    w("| scenario | goal | measured | result |")
    w("|---|---|---|---|")
    for sc, text, x, verdict in g:
        w(f"| {sc} | {text} | {fr(x, 3)} | {verdict} |")
    w("")
    w("The issue states the request goals for small HTTP requests through the TCP "
      "listener; they are checked here both with keep-alive (A) and with a new "
      "connection per request (B).")
    w("")
    w(f"![benchmark plot]({plot.name})")
    w("")

    def busy(d):
        if d["busy_proxy_cpu"] is None:
            return "?"
        return f"{d['busy_proxy_cpu'] * 100:.0f}% / {d['busy_load_cpu'] * 100:.0f}%"

    def ratio_cols(sc, c):
        h = s[sc]["haproxy"]
        peers = [x for x in (s[sc]["haproxy"]["cpu_per_req"], s[sc]["nginx"]["cpu_per_req"])
                 if x is not None]
        best = min(peers) if peers else None
        d = s[sc][c]
        return (fr(ratio(d["rps"], s[sc]["direct"]["rps"])),
                fr(ratio(d["rps"], h["rps"])),
                fr(ratio(d["cpu_per_req"], best)) if c != "direct" else "–")

    for sc in ("A", "B"):
        w(f"## {SCENARIO_TITLE[sc]}")
        w("")
        close = " `-H 'Connection: close'`" if sc == "B" else ""
        w(f"wrk, 1 thread, {WRK_CONNECTIONS} connections, {b.duration} s{close}, "
          f"against an NGINX backend returning a 6-byte body.")
        w("")
        w(f"| contender | requests/s | min – max | p50 | p99 | proxy CPU / request (user + sys, each a median) "
          f"| CPU {b.proxy_cpu} / CPU {b.load_cpu} busy "
          f"| vs direct | vs HAProxy | CPU vs better peer | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for c in CONTENDERS:
            d = s[sc][c]
            lo, hi = d["rps_range"]
            rng = f"{lo:,.0f} – {hi:,.0f}" if lo is not None else "n/a"
            cpu = (f"{d['cpu_per_req'] * 1e6:.2f} µs ({d['user_per_req'] * 1e6:.2f} + "
                   f"{d['sys_per_req'] * 1e6:.2f})" if d["cpu_per_req"] is not None else "–")
            vd, vh, vc = ratio_cols(sc, c)
            errs = ", ".join(f"{k} {v}" for k, v in d["errors"].items()) or "none"
            if d["n"] < d["runs"]:
                errs += f"; {d['runs'] - d['n']} failed run(s)"
            rps = f"{d['rps']:,.0f}" if d["rps"] is not None else "n/a"
            w(f"| {LABEL[c]} | {rps} | {rng} | {fmt_lat(d['p50'])} | {fmt_lat(d['p99'])} "
              f"| {cpu} | {busy(d)} | {vd} | {vh} | {vc} | {errs} |")
        w("")
    sc = "C"
    w(f"## {SCENARIO_TITLE[sc]}")
    w("")
    w(f"iperf3, one TCP stream client → server for {b.duration} s; MB = 10⁶ bytes, "
      f"received bytes / time at the server.")
    w("")
    w(f"| contender | MB/s | min – max | vs direct | proxy CPU per GB (user + sys, each a median) "
      f"| CPU {b.proxy_cpu} / CPU {b.load_cpu} busy |")
    w("|---|---:|---:|---:|---:|---:|")
    for c in CONTENDERS:
        d = s[sc][c]
        lo, hi = d["mbps_range"]
        rng = f"{lo:,.0f} – {hi:,.0f}" if lo is not None else "n/a"
        cpu = (f"{d['cpu_per_gb']:.3f} s ({d['user_per_gb']:.3f} + {d['sys_per_gb']:.3f})"
               if d["cpu_per_gb"] is not None else "–")
        mb = f"{d['mbps']:,.0f}" if d["mbps"] is not None else "n/a"
        fail = f" ({d['runs'] - d['n']} failed run(s))" if d["n"] < d["runs"] else ""
        w(f"| {LABEL[c]} | {mb}{fail} | {rng} | {fr(ratio(d['mbps'], s[sc]['direct']['mbps']))} "
          f"| {cpu} | {busy(d)} |")
    w("")

    w("## Machine and versions")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| date | {b.started:%Y-%m-%d} |")
    for k, v in info.items():
        w(f"| {k} | {v.replace('|', '/')} |")
    w("")
    w("## Setup")
    w("")
    w(f"- Every proxy runs with one worker (fulcrum `global.workers: 1`, HAProxy "
      f"`nbthread 1`, NGINX `worker_processes 1`), no access log, pinned with "
      f"`taskset -c {b.proxy_cpu}`. wrk, iperf3 (client and server) and the NGINX HTTP "
      f"backend are pinned to CPU {b.load_cpu}.")
    w("- All three proxies run for the whole benchmark on their own ports; the one under "
      "test is the only one with traffic. Each round runs every contender once per "
      "scenario, in an order rotated by one each round; a 1 s unrecorded warm-up "
      "precedes round 1.")
    w("- Proxy CPU time is utime + stime from `/proc/PID/stat` (all threads; for NGINX "
      "the sum of the worker processes) read before and after the load run, divided by "
      "the requests wrk completed (A, B) or by the gigabytes moved (C). Softirq work of "
      "the loopback path is charged to whichever process was running, so these figures "
      "include part of the kernel's TCP processing; the user + sys split shows how much "
      "is the proxy's own code.")
    w(f"- CPU busy columns: share of the run's wall time that CPU {b.proxy_cpu} (proxy) and "
      f"CPU {b.load_cpu} (wrk/iperf3 + backend) were not idle, from `/proc/stat`, all "
      f"processes and interrupts included. With every server idle (2 s before and after "
      f"the runs) the machine showed "
      + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in b.baseline.items()) + " and "
      + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in b.baseline_after.items())
      + " busy: load from processes the benchmark did not start.")
    w("- Configs: `bench/templates/` (ports are filled in per run).")
    w("")
    w("Commands of the last round (ports vary per run):")
    w("")
    w("```")
    for p in [b.backend, b.iperf_server] + [b.proxy[c] for c in PROXIES]:
        w(f"# {p.name}: " + shlex.join(p.argv))
    for sc in SCENARIOS:
        for c in CONTENDERS:
            if (sc, c) in b.commands:
                w(f"# {sc} {LABEL[c]}: " + b.commands[(sc, c)])
    w("```")
    w("")

    w("## Observations")
    w("")
    obs = list(b.notes)
    for c in CONTENDERS:
        for sc in SCENARIOS:
            for i, r in enumerate(b.results[sc][c]):
                if "error" in r:
                    obs.append(f"{sc} {LABEL[c]} round {i + 1}: {r['error']}")
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
            obs.append(f"{name} logged {len(lines)} line(s)"
                       + (", first 15:" if len(lines) > 15 else ":") + "\n\n    "
                       + "\n    ".join(x[:300] for x in shown) + "\n" + hint)
        else:
            obs.append(f"{name}: nothing in its error log.")
    for sc in ("A", "B"):
        loads = [s[sc][c]["busy_load_cpu"] for c in PROXIES if s[sc][c]["busy_load_cpu"]]
        if loads and min(loads) >= 0.95:
            obs.append(f"Scenario {sc}: CPU {b.load_cpu} (wrk + backend) was ≥ 95% busy in the "
                       f"median run of every proxy, so requests/s there is bounded by the "
                       f"load side rather than by the proxy; compare proxies by CPU per "
                       f"request (and CPU {b.proxy_cpu} busy) as much as by requests/s.")
    fl = [(r["foreign_load"], sc, c, i) for sc in SCENARIOS for c in CONTENDERS
          for i, r in enumerate(b.results[sc][c]) if r.get("foreign_load") is not None]
    if fl:
        worst = max(fl)
        bad = [x for x in fl if x[0] > 0.25]
        obs.append(f"CPU used by processes the benchmark did not start, during the runs: median "
                   f"{statistics.median(x[0] for x in fl) * 100:.0f}% of one CPU, worst "
                   f"{worst[0] * 100:.0f}% ({worst[1]} {LABEL[worst[2]]} round {worst[3] + 1})"
                   + (f"; {len(bad)} run(s) above 25% (" + ", ".join(
                       f"{x[1]} {LABEL[x[2]]} r{x[3] + 1}"
                       for x in sorted(bad, key=lambda x: x[1:])[:12])
                      + (", ..." if len(bad) > 12 else "")
                      + "), whose figures are suspect." if bad else "."))
    idle = {}
    for sc in SCENARIOS:
        for c in CONTENDERS:
            for r in b.results[sc][c]:
                for n, v in r.get("idle_proxy_cpu", {}).items():
                    if v > 0.02 * r["wall"]:
                        idle.setdefault(n, []).append((sc, c, v, r["wall"]))
    for n, items in idle.items():
        worst = max(items, key=lambda x: x[2] / x[3])
        obs.append(f"{LABEL[n]} used CPU while idle (another contender under load) in "
                   f"{len(items)} run(s); worst {worst[2]:.2f} s in {worst[3]:.1f} s "
                   f"during {worst[0]} {LABEL[worst[1]]}.")
    if not idle:
        obs.append("No idle proxy used more than 2% of a CPU while another contender was "
                   "under load.")
    for p in b.procs:
        for when, rc in p.exits:
            obs.append(f"{p.name} exited unexpectedly with status {rc}.")
    for o in obs:
        w(f"- {o}")
    w("")

    w("<details><summary>Every run</summary>")
    w("")
    w("| round | scenario | contender | result |")
    w("|---:|---|---|---|")
    for sc in SCENARIOS:
        for c in CONTENDERS:
            for i, r in enumerate(b.results[sc][c]):
                w(f"| {i + 1} | {sc} | {LABEL[c]} | {b.describe(sc, c, r)} |")
    w("")
    w("</details>")
    w("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L))
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
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds per wrk / iperf3 run (default 8)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between runs")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                    help="markdown output (default docs/benchmarks.md); the plot goes next to it")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="first wait up to S seconds for both CPUs to be under 25%% busy "
                         "(other processes) before starting")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds and --duration must be at least 1")
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out

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
    s, g, plot = report(b, out)
    b.cleanup()
    log("")
    log(f"bench: wrote {out} and {plot}")
    for sc, text, x, verdict in g:
        log(f"  {sc}: {text}: {fr(x, 3)} -> {verdict.strip('*')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Cost of active health checks on a large pool: fulcrum beside HAProxy 2.6.

Issue 5 (section Scale): 1,000 servers with HTTP checks every second must cost
fulcrum under 5% of one CPU and change no request latency percentile by more
than 5%. One NGINX backend answers HTTP on 1,000 loopback addresses
(127.1.x.y, one port); each proxy has one http pool of those 1,000 servers,
once with `health_check {type: http, path: /healthz, interval: 1s,
timeout: 500ms}` (HAProxy: `option httpchk GET /healthz`, `check inter 1s`,
`timeout check 500ms`) and once without checks; fulcrum's checks run with
its defaults (the connection is kept between checks) and, as a fifth
variant, with `reuse_connection: false` (connect per check, as HAProxy
does). For each of the five variants, in interleaved rounds (order rotated
each round), the script:

  1. starts the proxy alone (pinned to the proxy CPU), waits --settle seconds;
  2. idle window (--idle seconds, no request traffic): the proxy's CPU time
     (utime + stime of /proc/PID/stat, all threads), and the checks that
     reached the backend (NGINX logs every /healthz request with its time and
     the address it came to): checks per second, distinct servers checked,
     the busiest 100 ms;
  3. load window: bench/paced_load.c at a fixed rate (--rate, 2,000 req/s)
     for 1 s of warm-up plus --duration seconds: latency p50/p90/p99/p99.9/
     max from the time each request was due (every recorded latency is kept
     as a histogram, so that the rounds of a variant can be pooled), and the
     proxy's CPU meanwhile;
  4. stops the proxy (by its pid) and reads its log for servers marked down.

The report is the section "Health checks at scale" of docs/benchmarks.md,
between the marker comments <!-- health-scale:begin --> and
<!-- health-scale:end --> (appended when they are missing); the runs are
stored in bench/health_results.json, from which bench/run.py renders the
same section (with section() below) when it rewrites docs/benchmarks.md.
With --out OTHER.md the section alone goes there and nothing is stored
unless --json is given (smoke tests). The section gives the CPU medians over
the rounds, the latency percentiles of all rounds pooled, the change of each
with checks vs without beside the noise floor (how far apart the rounds
without checks were), the goals and whether they are met, every single run,
the machine and how to reproduce. Python 3 stdlib only, plus gcc (for
paced_load), haproxy, nginx, taskset, and perf for the optional profile
(--perf; it is also taken when fulcrum misses the CPU goal).

    /usr/bin/python3 bench/health_scale.py [--rounds 3] [--idle 20]
        [--duration 20] [--rate 2000] [--settle 5] [--servers 1000]
        [--out docs/benchmarks.md] [--perf] [--keep] [--wait-quiet S]
        [--retries N] [--json PATH]
    /usr/bin/python3 bench/health_scale.py --render bench/health_results.json
        [--out PATH]

Before each run it waits (--wait-quiet) for 5 s in which no CPU is over 20%
busy, and a run during which other processes used over 15% of a CPU is done
again (--retries); the report lists those. --json stores every figure, and
--render writes the section again from such a file without measuring.

Every process it starts is tracked by its pid and stopped by that pid (also
on Ctrl-C / SIGTERM); every run has a time limit.
"""

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "bench" / "templates"
FULCRUM = ROOT / "build" / "fulcrum"
PACED_LOAD_SRC = ROOT / "bench" / "paced_load.c"
CLK_TCK = os.sysconf("SC_CLK_TCK")

GOAL_CPU = 0.05          # of one CPU, fulcrum with checks, no traffic
GOAL_LAT_CHANGE = 0.05   # each latency percentile: on <= (1 + this) x off
PCTS = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]
FOREIGN_LIMIT = 0.15    # other processes' CPU (share of one CPU) above which a run is redone
WIDE_CPU = 1.5          # runs of a variant this far apart (max / min CPU) are discussed
F_CONNECTIONS = 50
F_WARMUP = 1.0
F_DRAIN = 2.0
# What is measured, in this order in the first round (rotated by one each round).
# reuse: fulcrum's reuse_connection (None: fulcrum's default, which is on).
VARIANTS = [
    {"name": "fulcrum-checks", "proxy": "fulcrum", "checks": True, "reuse": None,
     "label": "fulcrum"},
    {"name": "fulcrum-connect", "proxy": "fulcrum", "checks": True, "reuse": False,
     "label": "fulcrum (connect per check)"},
    {"name": "fulcrum-nochecks", "proxy": "fulcrum", "checks": False, "label": "fulcrum"},
    {"name": "haproxy-checks", "proxy": "haproxy", "checks": True, "label": "HAProxy"},
    {"name": "haproxy-nochecks", "proxy": "haproxy", "checks": False, "label": "HAProxy"},
]
VARIANT = {v["name"]: v for v in VARIANTS}
# each variant with checks against the same proxy without
COMPARE = [("fulcrum-checks", "fulcrum-nochecks"), ("fulcrum-connect", "fulcrum-nochecks"),
           ("haproxy-checks", "haproxy-nochecks")]
RESULTS = ROOT / "bench" / "health_results.json"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- health-scale:begin -->", "<!-- health-scale:end -->"


# Process handling, CPU accounting and templates are run.py's.
from run import (MIN_CLEAN_RUNS, BenchError, Proc, children, cpu_busy, cpu_times,  # noqa: E402
                 first_line, log, render, tail, wait_listening)


def listening_count(addrs, port):
    want = {f"{int.from_bytes(socket.inet_aton(a), 'little'):08X}:{port:04X}" for a in addrs}
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and parts[1] in want:
                n += 1
    return n


def server_addr(i):
    """127.1.0.1 ... 127.1.3.250 for 1,000 servers."""
    return f"127.1.{i // 250}.{i % 250 + 1}"


def port_range():
    lo = 20000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = int(f.read().split()[0]) - 1
    except (OSError, ValueError):
        hi = 32000
    return lo, max(lo + 2000, hi)


def free_port_on(addrs, tries=200):
    """A port below the ephemeral range that is free on every address (and on
    the wildcard, so that nobody listening on 0.0.0.0 is in the way)."""
    import random
    lo, hi = port_range()
    for _ in range(tries):
        p = random.randrange(lo, hi)
        socks = []
        ok = True
        try:
            for a in ["0.0.0.0"] + list(addrs):
                s = socket.socket()
                socks.append(s)
                s.bind((a, p))
                if a == "0.0.0.0":  # the wildcard only probes; free it again
                    s.close()
                    socks.pop()
        except OSError:
            ok = False
        finally:
            for s in socks:
                s.close()
        if ok:
            return p
    raise BenchError("no free port found")


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="fulcrum-health-"))
        (self.dir / "nginx-tmp").mkdir()
        avail = sorted(os.sched_getaffinity(0))
        if len(avail) >= 2:
            self.proxy_cpu, self.load_cpu = str(avail[0]), str(avail[1])
        else:
            self.proxy_cpu = self.load_cpu = str(avail[0])
        self.procs = []
        self.proxy = None
        self.runs = []          # one dict per (round, variant)
        self.notes = []
        self.profile = None
        self.discarded = []     # runs spoiled by other processes, done again
        self.started = f"{datetime.datetime.now():%Y-%m-%d %H:%M}"

    # ------------------------------------------------------------ setup

    def setup(self):
        a = self.args
        for tool in ("haproxy", "nginx", "taskset", "gcc"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found: run `make deps` (scripts/deps.sh)")
        src = Path(a.fulcrum)
        if not src.exists():
            raise BenchError(f"{src} not built: run `make`")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.nofile = nofile
        # A private copy: another session may rebuild build/fulcrum meanwhile.
        self.fulcrum = self.dir / "fulcrum"
        shutil.copy2(src, self.fulcrum)
        data = self.fulcrum.read_bytes()
        self.fulcrum_id = {
            "path": str(src), "sha": hashlib.sha256(data).hexdigest()[:12],
            "built": f"{datetime.datetime.fromtimestamp(src.stat().st_mtime):%Y-%m-%d %H:%M}",
            "version": first_line([str(self.fulcrum), "version"]),
            "tree": first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
            "dirty_files": subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--",
                                           "src", "Makefile"], capture_output=True, text=True,
                                          timeout=10).stdout.split("\n"),
        }
        self.fulcrum_id["dirty_files"] = [x.strip() for x in self.fulcrum_id["dirty_files"]
                                          if x.strip()]
        self.machine, self.versions = machine_info(), tool_versions()
        self.addrs = [server_addr(i) for i in range(a.servers)]
        self.backend_port = free_port_on(self.addrs)
        d = self.dir
        # paced_load
        self.paced_load = d / "paced_load"
        r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.paced_load), str(PACED_LOAD_SRC)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError("building bench/paced_load.c failed:\n" + r.stdout + r.stderr)
        # backend
        listens = "\n".join(f"        listen {ad}:{self.backend_port} backlog=4096;"
                            for ad in self.addrs)
        self.checks_log = d / "checks.log"
        cfg = render("health-backend-nginx.cfg", d / "backend-nginx.conf", dir=d,
                     nservers=a.servers, listens=listens)
        tl = ["taskset", "-c", self.load_cpu]
        self.backend = Proc("backend-nginx", tl + ["nginx", "-p", str(d), "-c", str(cfg),
                                                    "-e", str(d / "backend.stderr.log")],
                            d, cpu_children=True)
        self.procs.append(self.backend)
        self.backend.start()
        deadline = time.monotonic() + 20
        while listening_count(self.addrs, self.backend_port) < len(self.addrs):
            if not self.backend.alive():
                raise BenchError("backend NGINX exited:\n" + tail(self.backend.out_path)
                                 + tail(d / "backend.error.log"))
            if time.monotonic() > deadline:
                raise BenchError("backend NGINX does not listen on every address")
            time.sleep(0.1)
        self.probe_backend()
        # proxy configs: one per variant, each with its own listen port
        self.configs, self.listen_port = {}, {}
        lo_ports = set()
        for v in VARIANTS:
            name, proxy, checks = v["name"], v["proxy"], v["checks"]
            while True:
                p = free_port_on(["127.0.0.1"])
                if p not in lo_ports and p != self.backend_port:
                    lo_ports.add(p)
                    break
            self.listen_port[name] = p
            if proxy == "fulcrum":
                servers = "\n".join(f'      - {{ address: "{ad}:{self.backend_port}" }}'
                                    for ad in self.addrs)
                reuse = ("" if v.get("reuse") is None else
                         f", reuse_connection: {'true' if v['reuse'] else 'false'}")
                hc = ("health_check: { type: http, path: /healthz, interval: 1s, "
                      f"timeout: 500ms{reuse} }}" if checks else "# no health_check")
                cfg = render("health-fulcrum.yaml", d / f"{name}.yaml", dir=d, name=name,
                             nservers=a.servers, listen_port=p, servers=servers,
                             health_check_line=hc, max_idle=max(64, 2 * a.servers))
                r = subprocess.run([str(self.fulcrum), "check", "-c", str(cfg)],
                                   capture_output=True, text=True, timeout=30)
                if r.returncode != 0:
                    raise BenchError(f"fulcrum check refuses {cfg}:\n{r.stdout}{r.stderr}")
            else:
                suffix = " check inter 1s" if checks else ""
                servers = "\n".join(f"    server s{i:04d} {ad}:{self.backend_port}{suffix}"
                                    for i, ad in enumerate(self.addrs))
                cfg = render("health-haproxy.cfg", d / f"{name}.cfg", dir=d, name=name,
                             nservers=a.servers, listen_port=p, servers=servers)
                r = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True,
                                   text=True, timeout=30)
                if r.returncode != 0:
                    raise BenchError(f"haproxy -c refuses {cfg}:\n{r.stdout}{r.stderr}")
            self.configs[name] = cfg

    def probe_backend(self):
        """One request to the first and the last address, to see it answer."""
        for ad in (self.addrs[0], self.addrs[-1]):
            s = socket.create_connection((ad, self.backend_port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            if not data.startswith(b"HTTP/1.1 200"):
                raise BenchError(f"backend at {ad}: unexpected answer {data[:80]!r}")

    def proxy_proc(self, name):
        tp = ["taskset", "-c", self.proxy_cpu]
        if VARIANT[name]["proxy"] == "fulcrum":
            argv = tp + [str(self.fulcrum), "-c", str(self.configs[name])]
        else:
            argv = tp + ["haproxy", "-db", "-f", str(self.configs[name])]
        return Proc(name, argv, self.dir)

    # ------------------------------------------------------------ measuring

    def own_cpu(self):
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            total += ru.ru_utime + ru.ru_stime
        for p in self.procs + ([self.proxy] if self.proxy else []):
            if p.alive():
                try:
                    total += sum(cpu_times([p.pid] + children(p.pid)))
                except OSError:
                    pass
        return total

    def snapshot(self, pids):
        return {"mono": time.monotonic(), "wall": time.time(), "cpu": cpu_times(pids),
                "backend": cpu_times(self.backend.cpu_pids()), "busy": cpu_busy(),
                "own": self.own_cpu(), "log_off": self.checks_log.stat().st_size
                if self.checks_log.exists() else 0}

    def window(self, s0, s1):
        """Figures between two snapshots."""
        wall = s1["mono"] - s0["mono"]
        u, sy = s1["cpu"][0] - s0["cpu"][0], s1["cpu"][1] - s0["cpu"][1]
        bu = sum(s1["backend"]) - sum(s0["backend"])
        res = {"wall": wall, "cpu_user": u, "cpu_sys": sy, "cpu": (u + sy) / wall,
               "backend_cpu": bu / wall}
        for cpu, role in ((self.proxy_cpu, "busy_proxy_cpu"), (self.load_cpu, "busy_load_cpu")):
            b = s1["busy"][cpu][0] - s0["busy"][cpu][0]
            t = s1["busy"][cpu][1] - s0["busy"][cpu][1]
            res[role] = b / t if t else None
        all_busy = sum(s1["busy"][c][0] - s0["busy"][c][0] for c in s1["busy"]) / CLK_TCK
        res["foreign_load"] = max(0.0, all_busy - (s1["own"] - s0["own"])) / wall
        res.update(self.count_checks(s0["log_off"], s1["log_off"], s0["wall"], s1["wall"]))
        return res

    def count_checks(self, off0, off1, t0, t1):
        """Checks that reached the backend between two wall-clock times."""
        with open(self.checks_log, "rb") as f:
            f.seek(off0)
            data = f.read(max(0, off1 - off0) + 65536)  # lines written just after off1 too
        times, addrs = [], set()
        for line in data.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            try:
                t = float(parts[0])
            except ValueError:
                continue
            if t0 <= t < t1:
                times.append(t)
                addrs.add(parts[1])
        span = t1 - t0
        res = {"checks": len(times), "checks_per_s": len(times) / span if span else 0,
               "servers_checked": len(addrs)}
        if times and span >= 1:
            nb = int(span * 10)
            buckets = [0] * nb
            for t in times:
                k = int((t - t0) * 10)
                if k < nb:
                    buckets[k] += 1
            mean = sum(buckets) / nb
            res["max_100ms"] = max(buckets)
            res["min_100ms"] = min(buckets)
            res["burst"] = max(buckets) / mean if mean else None
            secs = [0] * int(span)
            for t in times:
                k = int(t - t0)
                if k < len(secs):
                    secs[k] += 1
            res["min_per_s"], res["max_per_s"] = min(secs), max(secs)
        return res

    def paced(self, port):
        a = self.args
        samples = self.dir / "latency.samples"
        argv = ["taskset", "-c", self.load_cpu, str(self.paced_load), "-p", str(port),
                "-r", f"{a.rate:.0f}", "-d", f"{a.duration:g}", "-c", str(F_CONNECTIONS),
                "-w", f"{F_WARMUP:g}", "-t", f"{F_DRAIN:g}", "-s", str(samples)]
        shown = ["paced_load"] + argv[4:]
        shown[shown.index("-p") + 1] = "PORT"
        shown[shown.index("-s") + 1] = "FILE"
        samples.unlink(missing_ok=True)
        self.paced_cmd = shlex.join(shown)
        limit = a.duration + F_WARMUP + F_DRAIN + 30
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise BenchError(f"paced_load did not finish in {limit}s")
        if r.returncode != 0:
            return {"error": f"paced_load exit {r.returncode}: {r.stderr.strip()[-300:]}"}
        try:
            j = json.loads(r.stdout)
        except ValueError:
            return {"error": "cannot parse paced_load output: " + r.stdout[-300:]}
        res = {"requests": j["recorded"], "completed": j["completed"],
               "rps": j["achieved_rate"], "rate": j["rate"]}
        lat = j["latency"]
        if lat["n"] > 0:
            for k in ("p50", "p90", "p99", "p999", "max", "mean"):
                res[k] = lat[k]
            res["svc_p99"], res["lag_p99"] = j["service"]["p99"], j["send_lag"]["p99"]
        errs = {"closed": j["errors_closed"], "status": j["errors_status"],
                "parse": j["errors_parse"], "send": j["errors_send"],
                "unanswered": j["unanswered"], "unsent": j["unsent"]}
        res["errors"] = sum(errs.values())
        res["errors_detail"] = {k: v for k, v in errs.items() if v}
        if samples.exists():
            res["hist"] = hist_text(int(x) for x in samples.read_text().split())
            samples.unlink()
        if res["requests"] == 0:
            res["error"] = "no request answered"
        return res

    def run_variant(self, rnd, name):
        a = self.args
        port = self.listen_port[name]
        p = self.proxy_proc(name)
        self.proxy = p
        v = VARIANT[name]
        res = {"round": rnd, "variant": name, "proxy": v["proxy"], "checks": v["checks"]}
        errlog = self.dir / f"{name}.error.log"
        err_off = errlog.stat().st_size if errlog.exists() else 0
        out_off = p.out_path.stat().st_size if p.out_path.exists() else 0
        try:
            p.start()
            wait_listening(port, p, timeout=15.0)
            time.sleep(a.settle)
            pids = p.cpu_pids()
            s0 = self.snapshot(pids)
            time.sleep(a.idle)
            s1 = self.snapshot(pids)
            res["idle"] = self.window(s0, s1)
            s2 = self.snapshot(pids)
            load = self.paced(port)
            s3 = self.snapshot(pids)
            res["load"] = self.window(s2, s3)
            res["load"].update(load)
            if not p.alive():
                res["error"] = f"{name} died during the run"
        finally:
            p.stop()
            self.proxy = None
        # servers taken down, and anything else the proxy logged
        text = ""
        for path, off in ((errlog, err_off), (p.out_path, out_off)):
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(off)
                    text += f.read().decode(errors="replace")
        down = len(re.findall(r" is down \(|is DOWN", text))
        res["servers_down_events"] = down
        other = [ln for ln in text.splitlines()
                 if ln.strip() and not ln.startswith("--- start")
                 and not re.search(r"is (up|UP)\b|is down \(|is DOWN|Proxy .* started|"
                                   r"Stopping|stopped|Proxy web|Proxy big|exiting|"
                                   r"shutting down|signal|draining|Loading success|"
                                   r"\[NOTICE\]", ln)]
        res["log_other"] = other[:20]
        return res

    def describe(self, r):
        i, l = r["idle"], r["load"]
        lat = " ".join(f"{lab}={fmt_ms(l.get(k))}" for k, lab in PCTS)
        return (f"idle cpu {i['cpu'] * 100:5.2f}% checks {i['checks_per_s']:6.0f}/s "
                f"({i['servers_checked']} servers, busiest 100ms {i.get('max_100ms', 0)}) | "
                f"load {l.get('rps', 0):.0f} req/s {lat} max={fmt_ms(l.get('max'))} "
                f"cpu {l['cpu'] * 100:.1f}% err {l.get('errors', '?')}"
                f"{' down-events ' + str(r['servers_down_events']) if r['servers_down_events'] else ''}"
                f"{' foreign ' + format(max(i['foreign_load'], l['foreign_load']) * 100, '.0f') + '%' if max(i['foreign_load'], l['foreign_load']) > 0.05 else ''}")

    def run(self):
        a = self.args
        self.idle_before = self.quiet_probe()
        order = list(VARIANTS)
        for rnd in range(1, a.rounds + 1):
            for v in order:
                for attempt in range(1 + a.retries):
                    waited = self.wait_quiet(a.wait_quiet)
                    t0 = time.monotonic()
                    r = self.run_variant(rnd, v["name"])
                    r["waited"] = waited
                    fl = foreign(r)
                    log(f"round {rnd} {v['name']:16s} {self.describe(r)} "
                        f"({time.monotonic() - t0:.0f}s)")
                    time.sleep(a.pause)
                    if fl <= FOREIGN_LIMIT or attempt == a.retries:
                        break
                    r["discarded"] = True
                    self.discarded.append(r)
                    log(f"  other processes used {fl * 100:.0f}% of a CPU meanwhile: "
                        f"run again")
                self.runs.append(r)
            order = order[1:] + order[:1]
        self.idle_after = self.quiet_probe()
        med_cpu = median([r["idle"]["cpu"] for r in self.runs
                          if r["variant"] == "fulcrum-checks"])
        if a.perf or (med_cpu is not None and med_cpu >= GOAL_CPU):
            self.take_profile()

    def wait_quiet(self, limit, window=5, threshold=0.20):
        """Wait up to limit seconds for window seconds in which no CPU is more
        than threshold busy (the backend is idle between runs, no proxy runs).
        Returns the seconds waited, or None if the limit was reached."""
        if limit <= 0:
            return 0.0
        t0 = time.monotonic()
        quiet_since = None
        prev = cpu_busy()
        told = False
        while True:
            time.sleep(1.0)
            cur = cpu_busy()
            busiest = max((cur[c][0] - prev[c][0]) / max(1, cur[c][1] - prev[c][1]) for c in cur)
            prev = cur
            now = time.monotonic()
            if busiest <= threshold:
                quiet_since = quiet_since or now - 1.0
                if now - quiet_since >= window:
                    return now - t0 - window
            else:
                quiet_since = None
                if not told and now - t0 > 3:
                    log(f"waiting for a quiet machine (a CPU is {busiest * 100:.0f}% busy), "
                        f"up to {limit:g}s")
                    told = True
            if now - t0 > limit:
                return None

    def quiet_probe(self, secs=2.0):
        b0 = cpu_busy()
        time.sleep(secs)
        b1 = cpu_busy()
        return {c: (b1[c][0] - b0[c][0]) / max(1, b1[c][1] - b0[c][1]) for c in b1}

    def take_profile(self):
        """perf record -g of fulcrum with checks and no traffic."""
        if not shutil.which("perf"):
            self.profile = {"error": "perf not installed"}
            return
        a = self.args
        p = self.proxy_proc("fulcrum-checks")
        self.proxy = p
        data = self.dir / "perf.data"
        secs = a.perf_seconds
        log(f"profiling fulcrum (checks on, no traffic) for {secs:g}s with perf")
        try:
            p.start()
            wait_listening(self.listen_port["fulcrum-checks"], p, timeout=15.0)
            time.sleep(a.settle)
            pids = p.cpu_pids()
            c0 = cpu_times(pids)
            t0 = time.monotonic()
            r = subprocess.run(["perf", "record", "-g", "-F", "999", "-o", str(data), "-p",
                                str(p.pid), "--", "sleep", f"{secs:g}"],
                               capture_output=True, text=True, timeout=secs + 60)
            c1 = cpu_times(pids)
            wall = time.monotonic() - t0
        finally:
            p.stop()
            self.proxy = None
        if r.returncode != 0:
            self.profile = {"error": "perf record failed: " + (r.stderr or r.stdout)[-400:]}
            return
        cpu = (sum(c1) - sum(c0)) / wall
        out = {}
        for key, sort, extra in (("self", "comm,dso,symbol", ["--no-children"]),
                                 ("children", "comm,dso,symbol", ["--children"]),
                                 ("dso", "comm,dso", ["--no-children"])):
            rr = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                                 "--percent-limit", "0.8", "--sort", sort] + extra,
                                capture_output=True, text=True, timeout=120)
            lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip())
                     for ln in rr.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
            out[key] = lines[:40]
        self.profile = {"cpu": cpu, "seconds": secs, **out,
                        "command": f"perf record -g -F 999 -p PID -- sleep {secs:g}; "
                                   f"perf report --stdio -g none --sort comm,dso,symbol "
                                   f"--no-children"}
        log(f"profile: fulcrum used {cpu * 100:.2f}% of one CPU while profiled")

    def cleanup(self):
        if self.proxy:
            self.proxy.stop()
        for p in reversed(self.procs):
            p.stop()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


STATE_KEYS = ["runs", "discarded", "profile", "notes", "proxy_cpu", "load_cpu", "addrs",
              "backend_port", "fulcrum_id", "nofile", "idle_before", "idle_after", "paced_cmd",
              "started", "machine", "versions"]


def save_state(b, path):
    state = {k: getattr(b, k, None) for k in STATE_KEYS}
    # the latency samples of runs done again are not used
    state["discarded"] = [dict(r, load={k: v for k, v in r["load"].items() if k != "hist"})
                          for r in b.discarded]
    state["args"] = vars(b.args)
    Path(path).write_text(json.dumps(state, indent=1, default=str) + "\n")


class Stored:
    """A finished run read back from --json (bench/health_results.json)."""

    def __init__(self, path):
        state = json.loads(Path(path).read_text())
        for k in STATE_KEYS:
            setattr(self, k, state.get(k))
        self.args = argparse.Namespace(**state["args"])
        for r in (self.runs or []) + (self.discarded or []):
            # files written before the connect-per-check variant existed
            r.setdefault("variant", f"{r['proxy']}-{'checks' if r['checks'] else 'nochecks'}")


def fmt_ms(s):
    if s is None:
        return "–"
    ms = s * 1000
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.2f} ms"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- latency samples

def hist_bucket(ns):
    """A latency's bucket, in µs: exact below 1 ms, three significant digits
    above (a bucket is under 1% wide)."""
    u = ns // 1000
    if u < 1000:
        return u
    step = 10 ** (len(str(u)) - 3)
    return u // step * step


def hist_text(samples_ns):
    """Latencies (ns) as a histogram `µs:count µs:count ...` (compact in JSON)."""
    c = collections.Counter(hist_bucket(x) for x in samples_ns)
    return " ".join(f"{u}:{n}" for u, n in sorted(c.items()))


def hist_pcts(texts):
    """The percentiles of PCTS (s, nearest rank as paced_load) of the
    histograms `texts` added together, and their number of samples."""
    c = collections.Counter()
    for t in texts:
        for item in t.split():
            u, n = item.split(":")
            c[int(u)] += int(n)
    pairs = sorted(c.items())
    n = sum(c.values())
    res = {"n": n}
    for k, p in ((k, float(lab[1:])) for k, lab in PCTS):
        rank, acc = max(1, int(p / 100 * n + 0.999999)), 0
        for u, cnt in pairs:
            acc += cnt
            if acc >= rank:
                res[k] = u / 1e6
                break
    return res


def pooled(rs):
    """Latency of every recorded request of these runs together; where a run
    has no histogram (files from before it was kept), the median of the runs'
    own percentiles instead. max: the largest of any run."""
    if rs and all(r["load"].get("hist") for r in rs):
        res = hist_pcts(r["load"]["hist"] for r in rs)
        res["pooled"] = True
    else:
        res = {k: median([r["load"].get(k) for r in rs]) for k, _ in PCTS}
        res["n"] = sum(r["load"].get("requests") or 0 for r in rs)
        res["pooled"] = False
    res["max"] = max((r["load"]["max"] for r in rs if r["load"].get("max") is not None),
                     default=None)
    return res


def rel_spread(rs, key, ref):
    """max - min of the runs' `key` under load, relative to ref (None with < 2 runs)."""
    v = [r["load"][key] for r in rs if r["load"].get(key) is not None]
    if len(v) < 2 or not ref:
        return None
    return (max(v) - min(v)) / ref


def paired_changes(on_rs, off_rs, key):
    """Per round: the run with checks against the same round's run without."""
    off = {r["round"]: r["load"].get(key) for r in off_rs}
    return [r["load"][key] / off[r["round"]] - 1 for r in sorted(on_rs, key=lambda r: r["round"])
            if off.get(r["round"]) and r["load"].get(key) is not None]


# ---------------------------------------------------------------- report

def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            info["mem"] = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return info


def tool_versions():
    return [first_line(["haproxy", "-v"]), first_line(["nginx", "-v"])]


def pc(x, d=2):
    return "–" if x is None else f"{x * 100:.{d}f}%"


def chg(on, off):
    if on is None or not off:
        return None
    return on / off - 1


def sign(x, d=1):
    return "–" if x is None else f"{x * 100:+.{d}f}%"


def checks_cell(v):
    return "off" if not v["checks"] else "on" if v.get("reuse") is not False else "on, no reuse"


def section(b):
    """The section `## Health checks at scale` of docs/benchmarks.md (its
    lines), and the figures the log line gives."""
    a = b.args
    all_runs = [r for r in b.runs if "idle" in r and "load" in r]
    # runs still disturbed after --retries are left out where enough others remain
    runs = []
    for v in VARIANTS:
        rs = [r for r in all_runs if r["variant"] == v["name"]]
        clean = [r for r in rs if foreign(r) <= FOREIGN_LIMIT]
        runs += clean if len(clean) >= MIN_CLEAN_RUNS else rs
    left_out = [r for r in all_runs if not any(r is x for x in runs)]

    def sel(name):
        return [r for r in runs if r["variant"] == name]

    def m(name, part, key):
        return median([r[part].get(key) for r in sel(name)])

    def mm(name, part, key):
        v = [r[part].get(key) for r in sel(name) if r[part].get(key) is not None]
        return (min(v), max(v)) if v else (None, None)

    shown = [v for v in VARIANTS if sel(v["name"])]
    lat = {v["name"]: pooled(sel(v["name"])) for v in shown}
    compare = [(on, off) for on, off in COMPARE if on in lat and off in lat]

    def lat_change(on, off, key):
        return chg(lat[on].get(key), lat[off].get(key))

    def floor(off, key):
        return rel_spread(sel(off), key, lat[off].get(key))

    all_pooled = all(x["pooled"] for x in lat.values())
    how = ("of every recorded request of its rounds together" if all_pooled
           else "medians of the rounds' own percentiles (this file has no latency histogram)")
    w = []
    w.append("## Health checks at scale")
    w.append("")
    w.append("<!-- Written by `bench/health_scale.py` from `bench/health_results.json`; rerun it "
             "(or `bench/health_scale.py --render bench/health_results.json`) rather than "
             "editing this section. -->")
    w.append("")
    w.append(f"Issue 5 (section Scale): {a.servers:,} servers with HTTP checks every second must "
             f"cost fulcrum under {GOAL_CPU * 100:.0f}% of one CPU and change no request latency "
             f"percentile by more than {GOAL_LAT_CHANGE * 100:.0f}%. Measured by "
             f"`bench/health_scale.py` on {b.started}, beside HAProxy 2.6 checking the same "
             f"pool, in {a.rounds} interleaved rounds. fulcrum runs with its defaults (an http "
             f"check keeps its connection for the next check, up to 10 checks a connection: "
             f"[connection reuse]"
             f"(health-checks.md#connection-reuse)) and, to show what that saves, with "
             f"`reuse_connection: false`: *connect per check*, a new connection for every "
             f"check, as HAProxy does. CPU figures are medians over the rounds; latency "
             f"percentiles are those {how}. A run during which other processes used more than "
             f"{FOREIGN_LIMIT * 100:.0f}% of a CPU is done again; one still disturbed after "
             f"that is left out of the figures where {MIN_CLEAN_RUNS} undisturbed runs of its "
             f"variant remain ("
             + (f"{len(left_out)} here, marked at the end" if left_out else "none here") + ").")
    w.append("")

    # ---- goals
    f_cpu = m("fulcrum-checks", "idle", "cpu")
    fc_cpu = m("fulcrum-connect", "idle", "cpu")
    h_cpu = m("haproxy-checks", "idle", "cpu")
    met = f_cpu is not None and f_cpu < GOAL_CPU
    w.append("### Goals (issue 5)")
    w.append("")
    w.append("| goal | fulcrum (defaults) | fulcrum, connect per check | HAProxy 2.6 | "
             "met (fulcrum, defaults) |")
    w.append("|---|---|---|---|---|")
    w.append(f"| CPU of the proxy with checks of {a.servers:,} servers every 1 s, no traffic: "
             f"< {GOAL_CPU * 100:.0f}% of one CPU | {pc(f_cpu)} | {pc(fc_cpu)} | {pc(h_cpu)} | "
             f"{'**met**' if met else '**not met**'} |")
    lat_ok, verdicts = {}, []
    for k, lab in PCTS:
        cells = [sign(lat_change(on, off, k)) if on in lat and off in lat else "–"
                 for on, off in COMPARE]
        fc, nf, rounds = None, None, []
        if ("fulcrum-checks", "fulcrum-nochecks") in compare:
            fc = lat_change("fulcrum-checks", "fulcrum-nochecks", k)
            nf = floor("fulcrum-nochecks", k)
            rounds = paired_changes(sel("fulcrum-checks"), sel("fulcrum-nochecks"), k)
        ok = fc is not None and fc <= GOAL_LAT_CHANGE
        lat_ok[k] = ok
        beyond = None if fc is None or nf is None else abs(fc) > nf
        note = ("" if beyond is None else
                f"; change larger than the noise floor ({nf * 100:.0f}%)" if beyond else
                f"; change within the noise floor ({nf * 100:.0f}%)")
        w.append(f"| latency {lab} at {a.rate:,.0f} req/s with checks vs without: change "
                 f"≤ +{GOAL_LAT_CHANGE * 100:.0f}% | " + " | ".join(cells)
                 + f" | {'**met**' if ok else '**not met**'}{note} |")
        verdicts.append((lab, fc, nf, ok, beyond, rounds))
    w.append("")
    f_runs = [r["idle"]["cpu"] for r in sel("fulcrum-checks")]
    w.append(f"The CPU goal is judged on the median of the runs of fulcrum with its defaults; "
             f"{sum(x >= GOAL_CPU for x in f_runs)} of its {len(f_runs)} runs were at or above "
             f"{GOAL_CPU * 100:.0f}%. The noise floor of a "
             f"percentile is how far apart the rounds *without* checks were (max − min of the "
             f"rounds' own percentiles, relative to the pooled value): identical runs differ by "
             f"that much on this machine, so a change smaller than it cannot be told from noise, "
             f"in either direction. For fulcrum with its defaults:")
    w.append("")
    for lab, fc, nf, ok, beyond, rounds in verdicts:
        if fc is None:
            w.append(f"- {lab}: not measured.")
            continue
        if nf is None:
            text = (f"{sign(fc)}, goal {'met' if ok else 'not met'}; no noise floor (one round "
                    f"only).")
        elif ok and beyond:
            text = (f"{sign(fc)}, lower with checks than without by more than the noise "
                    f"({nf * 100:.0f}%): goal met.")
        elif ok and nf <= GOAL_LAT_CHANGE:
            text = f"{sign(fc)}, within the noise floor ({nf * 100:.0f}%): goal met."
        elif ok:
            text = (f"{sign(fc)}: goal met by the figure, but the noise floor ({nf * 100:.0f}%) "
                    f"is wider than the {GOAL_LAT_CHANGE * 100:.0f}% allowed, so a change of "
                    f"that size would not have shown either.")
        elif beyond:
            text = (f"{sign(fc)}, larger than the noise floor ({nf * 100:.0f}%): "
                    f"**goal not met**.")
        else:
            text = (f"{sign(fc)}: over the {GOAL_LAT_CHANGE * 100:.0f}% allowed, but within the "
                    f"noise floor ({nf * 100:.0f}%): this measurement cannot tell whether checks "
                    f"change it by more than {GOAL_LAT_CHANGE * 100:.0f}%; goal not shown to be "
                    f"met.")
        if len(rounds) > 1:
            text += (f" Higher with checks than without in {sum(x > 0 for x in rounds)} of "
                     f"{len(rounds)} rounds.")
        w.append(f"- {lab}: {text}")
    w.append("")

    # ---- idle CPU
    w.append("### CPU with checks only (no request traffic)")
    w.append("")
    w.append(f"Each proxy alone, pinned to CPU {b.proxy_cpu}, {a.settle:g} s after its start, "
             f"over {a.idle:g} s without requests. CPU is utime + stime of the whole process "
             f"(all threads) from `/proc/PID/stat`, as a share of one CPU: their sum is the "
             f"process's run time, their split (user / sys) comes from the kernel's periodic "
             f"tick samples, which a process that wakes for short bursts on a fixed grid (as "
             f"fulcrum's check thread does, every 10 ms) can miss or hit in step, so for it the "
             f"split is rough. Checks are counted "
             f"where they arrive: the backend logs each `/healthz` request with its time and "
             f"address. CPU per check: the proxy's CPU over the checks per second, without "
             f"traffic; under load: its CPU with checks minus without (medians) over the checks "
             f"per second meanwhile.")
    w.append("")
    w.append("| proxy | checks | proxy CPU (median) | min–max | user / sys | CPU per check "
             "| CPU per check under load | checks/s at the backend | servers checked "
             f"| checks per 100 ms: min / max | backend CPU "
             f"| CPU {b.proxy_cpu} busy (all, tick samples) |")
    w.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = dict(COMPARE)
    for v in shown:
        name, rs = v["name"], sel(v["name"])
        lo, hi = mm(name, "idle", "cpu")
        u = median([r["idle"]["cpu_user"] / r["idle"]["wall"] for r in rs])
        s = median([r["idle"]["cpu_sys"] / r["idle"]["wall"] for r in rs])
        idle_pc = median([r["idle"]["cpu"] / r["idle"]["checks_per_s"] for r in rs
                          if r["idle"].get("checks_per_s")])
        load_pc = None
        if name in base and sel(base[name]) and m(name, "load", "checks_per_s"):
            load_pc = ((m(name, "load", "cpu") - m(base[name], "load", "cpu"))
                       / m(name, "load", "checks_per_s"))
        w.append(f"| {v['label']} | {checks_cell(v)} | "
                 f"**{pc(m(name, 'idle', 'cpu'))}** | {pc(lo)}–{pc(hi)} | "
                 f"{pc(u)} / {pc(s)} | {fmt_us(idle_pc)} | {fmt_us(load_pc)} | "
                 f"{m(name, 'idle', 'checks_per_s'):,.0f} | "
                 f"{m(name, 'idle', 'servers_checked'):,.0f} | "
                 f"{fmt_num(m(name, 'idle', 'min_100ms'))} / "
                 f"{fmt_num(m(name, 'idle', 'max_100ms'))} | "
                 f"{pc(m(name, 'idle', 'backend_cpu'), 1)} | "
                 f"{pc(m(name, 'idle', 'busy_proxy_cpu'), 1)} |")
    w.append("")
    if f_cpu is not None and fc_cpu is not None:
        fb, fcb = m("fulcrum-checks", "idle", "backend_cpu"), m("fulcrum-connect", "idle",
                                                                 "backend_cpu")
        w.append(f"Keeping the connection between checks takes fulcrum from {pc(fc_cpu)} "
                 f"(connect per check) to {pc(f_cpu)} of one CPU for the same checks, and the "
                 f"backend from {pc(fcb, 1)} to {pc(fb, 1)}.")
        w.append("")
    for v in shown:
        rs = [r for r in sel(v["name"]) if r["idle"].get("checks_per_s")]
        cpus = [r["idle"]["cpu"] for r in rs]
        if len(rs) < 3 or not min(cpus) or max(cpus) < WIDE_CPU * min(cpus):
            continue
        bes = [r["idle"]["backend_cpu"] / r["idle"]["checks_per_s"] for r in rs]
        rho = statistics.correlation(cpus, bes) if len(set(bes)) > 1 else 0.0
        w.append(f"{v['label']}, checks {checks_cell(v)}: its CPU varied from run to run "
                 f"between {pc(min(cpus))} and {pc(max(cpus))}, and the backend's CPU per "
                 f"check, for the same checks, between {fmt_us(min(bes))} and "
                 f"{fmt_us(max(bes))} (correlation over the runs {rho:.2f})"
                 + (": in some runs the checks cost more at both ends, not only in the proxy."
                    if rho > 0.8 else "."))
        w.append("")
    w.append(f"At {a.servers:,} checks per second an even spread is "
             f"{a.servers / 10:,.0f} per 100 ms; the min / max columns show how evenly each "
             f"proxy spreads them.")
    w.append("")

    # ---- latency
    w.append(f"### Request latency at {a.rate:,.0f} requests/s, checks on vs off")
    w.append("")
    w.append(f"`bench/paced_load.c` (the open-loop generator of [scenario F]"
             f"(#scenario-f-http-latency-at-a-fixed-request-rate)): {a.rate:,.0f} requests/s on "
             f"{F_CONNECTIONS} keep-alive connections, {F_WARMUP:g} s of warm-up then "
             f"{a.duration:g} s recorded (about {a.rate * a.duration:,.0f} requests per run), "
             f"latency from the moment each request was due to the last byte of its response. "
             f"The proxy spreads the requests round robin over the {a.servers:,} servers, the "
             f"same pool it checks. Measured right after the idle window of the same proxy "
             f"process. paced_load writes every recorded latency (`-s FILE`); the script keeps "
             f"them as a histogram (1 µs buckets below 1 ms, three significant digits above: "
             f"under 1% wide), and the percentiles here are those {how} (nearest rank; max: "
             f"the largest of any run). Every run's own percentiles are listed at the end.")
    w.append("")
    w.append("| proxy | checks | p50 | p90 | p99 | p99.9 | max | requests | proxy CPU (median) | "
             "errors | checks/s meanwhile |")
    w.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for v in shown:
        name, rs = v["name"], sel(v["name"])
        errs = sum(r["load"].get("errors", 0) or 0 for r in rs)
        w.append(f"| {v['label']} | {checks_cell(v)} | "
                 + " | ".join(fmt_ms(lat[name].get(k)) for k, _ in PCTS)
                 + f" | {fmt_ms(lat[name]['max'])} | {lat[name]['n']:,} | "
                 f"{pc(m(name, 'load', 'cpu'), 1)} | {errs} | "
                 f"{m(name, 'load', 'checks_per_s'):,.0f} |")
    for on, off in compare:
        cells = [sign(lat_change(on, off, k)) for k, _ in PCTS + [("max", "max")]]
        cpu = chg(m(on, "load", "cpu"), m(off, "load", "cpu"))
        w.append(f"| **{VARIANT[on]['label']}: change** | {checks_cell(VARIANT[on])} vs off | "
                 + " | ".join(cells) + f" | | {sign(cpu)} | | |")
    w.append("")
    w.append("Whether a change is larger than the noise: the noise floor is the spread between "
             "the rounds without checks of the same proxy (max − min of the rounds' own "
             "percentiles, relative to the pooled value); *per round* compares each round's run "
             "with checks with the same round's run without (minutes apart).")
    w.append("")
    w.append("| comparison | | " + " | ".join(lab for _, lab in PCTS) + " |")
    w.append("|---|---|" + "---|" * len(PCTS))
    for on, off in compare:
        who = f"{VARIANT[on]['label']}, checks {checks_cell(VARIANT[on])} vs off"
        chs = {k: lat_change(on, off, k) for k, _ in PCTS}
        fls = {k: floor(off, k) for k, _ in PCTS}
        w.append(f"| {who} | change | " + " | ".join(sign(chs[k]) for k, _ in PCTS) + " |")
        w.append("| | per round | " + " | ".join(
            ", ".join(sign(x, 0) for x in paired_changes(sel(on), sel(off), k)) or "–"
            for k, _ in PCTS) + " |")
        w.append("| | noise floor | " + " | ".join(
            "–" if fls[k] is None else f"{fls[k] * 100:.0f}%" for k, _ in PCTS) + " |")
        w.append("| | larger than the noise? | " + " | ".join(
            "–" if fls[k] is None or chs[k] is None else
            "**yes**" if abs(chs[k]) > fls[k] else "no" for k, _ in PCTS) + " |")
    w.append("")

    # ---- profile
    if b.profile:
        w.append("### Profile of fulcrum with checks, no traffic")
        w.append("")
        if "error" in b.profile:
            w.append(f"The profile could not be taken: {b.profile['error']}")
        else:
            why = ("asked for with `--perf`" if a.perf else
                   f"taken because fulcrum's CPU was not under {GOAL_CPU * 100:.0f}%")
            w.append(f"fulcrum with its defaults, {why}: `{b.profile['command']}` over "
                     f"{b.profile['seconds']:g} s, during which fulcrum used "
                     f"{b.profile['cpu'] * 100:.2f}% of one CPU. Self time by command (thread), "
                     f"object and symbol, entries ≥ 0.8%:")
            for title, key, n in (
                    (None, "self", 40),
                    ("Self time by thread and object (user space vs kernel):", "dso", 40),
                    ("Including callees (`--children`):", "children", 30)):
                if title:
                    w.append("")
                    w.append(title)
                w.append("")
                w.append("```")
                w += b.profile[key][:n]
                w.append("```")
            w.append("")
            w.append("Reading it: on loopback the kernel delivers a packet to its receiver in "
                     "the sender's context (the softirq run when the send returns), so the "
                     "check thread's system time holds, besides its own work, the backend "
                     "side's TCP work for every packet it sends (the request; with a new "
                     "connection per check also the SYN and the FIN): `net_rx_action` and "
                     "below. With a real network that part runs on the backend's host. Where "
                     "the samples land on an `irq_enable` symbol, the time was spent with "
                     "interrupts disabled (softirq work) and is charged where they were enabled "
                     "again, which is how the sampling clock of this VM works; the callers in "
                     "the `--children` view show what it was.")
        w.append("")

    # ---- observations
    w.append("### Observations (health checks)")
    w.append("")
    obs = []
    for r in all_runs:
        v = VARIANT[r["variant"]]
        tag = f"round {r['round']}, {v['label']} checks {checks_cell(v)}"
        if r.get("error"):
            obs.append(f"{tag}: {r['error']}")
        if r["load"].get("error"):
            obs.append(f"{tag}: {r['load']['error']}")
        if r["load"].get("errors"):
            obs.append(f"{tag}: {r['load']['errors']} failed requests "
                       f"{r['load'].get('errors_detail')}")
        if r["servers_down_events"]:
            obs.append(f"{tag}: {r['servers_down_events']} servers marked down")
        if r["checks"] and r["idle"]["servers_checked"] < a.servers:
            obs.append(f"{tag}: only {r['idle']['servers_checked']} of {a.servers} servers "
                       f"were checked in the idle window")
        if not r["checks"] and r["idle"]["checks"]:
            obs.append(f"{tag}: {r['idle']['checks']} checks arrived without checks configured")
        if "waited" in r and r["waited"] is None:
            obs.append(f"{tag}: the machine did not get quiet within --wait-quiet; run anyway")
        fl = foreign(r)
        if fl > 0.10:
            obs.append(f"{tag}: processes the benchmark did not start used {fl * 100:.0f}% of "
                       f"a CPU meanwhile"
                       + (" (left out of the figures)" if any(r is x for x in left_out) else ""))
        busy = r["load"].get("busy_load_cpu")
        if busy is not None and busy > 0.9:
            obs.append(f"{tag}: CPU {b.load_cpu} (load + backend) was {busy * 100:.0f}% busy "
                       f"under load")
        for ln in r.get("log_other", [])[:3]:
            obs.append(f"{tag}: proxy log: `{ln.strip()[:200]}`")
    if b.discarded:
        obs.append(f"{len(b.discarded)} run(s) were done again because other processes used more "
                   f"than {FOREIGN_LIMIT * 100:.0f}% of a CPU during them (not in the figures): "
                   + "; ".join(f"round {r['round']} {VARIANT[r['variant']]['label']} checks "
                               f"{checks_cell(VARIANT[r['variant']])} "
                               f"({foreign(r) * 100:.0f}%)" for r in b.discarded))
    if not obs:
        obs.append("No failed requests, no server marked down, no crash, no unexpected log "
                   "line; no noticeable load from other processes.")
    w.append(f"- Idle load of the CPUs before the runs: "
             + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in sorted(b.idle_before.items()))
             + "; after: "
             + ", ".join(f"CPU {c} {v * 100:.0f}%" for c, v in sorted(b.idle_after.items())) + ".")
    w += [f"- {o}" for o in obs]
    w.append("")

    # ---- setup
    mi = b.machine or machine_info()
    fid = b.fulcrum_id
    w.append("### Setup (health checks)")
    w.append("")
    w.append(f"- **Backend**: one NGINX (`worker_processes 1`, pinned to CPU {b.load_cpu}) "
             f"listening on {a.servers:,} loopback addresses "
             f"{b.addrs[0]} … {b.addrs[-1]}, port {b.backend_port} (chosen free at the start): "
             f"`/healthz` answers `200 ok` and is logged (`$msec $server_addr`), `/` answers "
             f"`200 hello` unlogged; keep-alive without a request limit, 120 s idle timeout. "
             f"Template `bench/templates/health-backend-nginx.cfg`.")
    w.append(f"- **fulcrum**: `workers: 1`, access log off, an `http` listener → one `http` pool "
             f"of the {a.servers:,} servers (round robin), `keepalive: {{max_idle: "
             f"{max(64, 2 * a.servers)}}}` so that each server can keep an idle connection; "
             f"with checks `health_check: {{ type: http, path: /healthz, interval: 1s, "
             f"timeout: 500ms }}` (rise 2, fall 3, jitter 10% = 100 ms, `reuse_connection: "
             f"true`, `reuse_limit: 10`: the defaults), for *connect per check* the same with `reuse_connection: "
             f"false` (a new connection and `Connection: close` for every check). "
             f"Template `bench/templates/health-fulcrum.yaml`.")
    w.append(f"- **HAProxy**: `nbthread 1`, `mode http`, `http-reuse always`, no logging, "
             f"`balance roundrobin`, `option httpchk GET /healthz`, `timeout check 500ms`, "
             f"each server line with `check inter 1s` (rise 2, fall 3: defaults; a new "
             f"connection for every check) or without `check`. Template "
             f"`bench/templates/health-haproxy.cfg`.")
    w.append(f"- Each proxy is started alone for its run (so no other proxy's checks run "
             f"meanwhile) with `taskset -c {b.proxy_cpu}`; paced_load and the backend run on "
             f"CPU {b.load_cpu}. Order of the {len(VARIANTS)} variants rotated by one each "
             f"round. Settle {a.settle:g} s after start, idle window {a.idle:g} s, then the load "
             f"run.")
    w.append(f"- paced_load: `{getattr(b, 'paced_cmd', None) or '?'}` (PORT: the proxy's "
             f"listener; FILE: where it writes the latencies).")
    w.append(f"- Machine: {mi.get('nproc')} CPUs ({mi.get('cpu', '?')}), kernel "
             f"{mi.get('kernel')}, {mi.get('mem', '?')} RAM, open-files limit "
             f"{b.nofile[0]:,}.")
    w.append(f"- fulcrum: `{fid['version']}`, binary sha256 {fid['sha']}… built "
             f"{fid['built']} (a private copy of `{os.path.relpath(fid['path'], ROOT)}` taken at "
             f"the start), tree `{fid['tree']}`"
             + (f" (uncommitted: {', '.join('`' + x + '`' for x in fid['dirty_files'])})"
                if fid["dirty_files"] else "") + ".")
    w.append(f"- {'; '.join(b.versions or tool_versions())}.")
    w.append("")
    w.append("### Reproduce (health checks)")
    w.append("")
    w.append("```sh")
    w.append("make                                   # build/fulcrum")
    w.append("/usr/bin/python3 bench/health_scale.py # ~"
             f"{a.rounds * len(VARIANTS) * (a.settle + a.idle + a.duration + F_WARMUP + 10) / 60:.0f}"
             " min: this section of docs/benchmarks.md and bench/health_results.json")
    w.append("/usr/bin/python3 bench/health_scale.py --render bench/health_results.json  "
             "# this section again, without measuring")
    w.append("/usr/bin/python3 bench/health_scale.py --rounds 1 --idle 5 --duration 5 "
             "--out /tmp/h.md   # smoke test: the section alone in /tmp/h.md")
    w.append("```")
    w.append("")
    w.append("Options: `--rounds N` (3), `--idle S` (20), `--duration S` (20), `--rate RPS` "
             "(2000), `--settle S` (5), `--servers N` (1000), `--wait-quiet S` (600: before "
             "each run, wait up to S s for 5 s in which no CPU is over 20% busy), `--retries N` "
             f"(2: redo a run during which other processes used over {FOREIGN_LIMIT * 100:.0f}% "
             "of a CPU), `--perf` (profile fulcrum with checks and no traffic; done anyway "
             "when it misses the CPU goal), `--keep` (keep the temp dir with every config and "
             "log), `--json PATH` (default `bench/health_results.json` when writing "
             "docs/benchmarks.md), `--out PATH` (default docs/benchmarks.md, where this section "
             "replaces the one between the `health-scale` marker comments; another file gets "
             "the section alone). `bench/run.py` keeps this section when it writes "
             "docs/benchmarks.md: it renders it from `bench/health_results.json` with the same "
             "code.")
    w.append("")

    # ---- every run
    w.append("<details><summary>Every run (health checks)</summary>")
    w.append("")
    w.append("| round | proxy | checks | idle CPU | checks/s | servers | per 100 ms min/max | "
             "p50 | p90 | p99 | p99.9 | max | req/s | load CPU | errors | CPU "
             f"{b.load_cpu} busy | other load |")
    w.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in all_runs:
        i, l = r["idle"], r["load"]
        v = VARIANT[r["variant"]]
        out = " (left out)" if any(r is x for x in left_out) else ""
        w.append(f"| {r['round']}{out} | {v['label']} | {checks_cell(v)} | "
                 f"{pc(i['cpu'])} | {i['checks_per_s']:,.0f} | {i['servers_checked']} | "
                 f"{fmt_num(i.get('min_100ms'))}/{fmt_num(i.get('max_100ms'))} | "
                 + " | ".join(fmt_ms(l.get(k)) for k, _ in PCTS)
                 + f" | {fmt_ms(l.get('max'))} | {l.get('rps', 0):,.0f} | {pc(l['cpu'], 1)} | "
                 f"{l.get('errors', '–')} | {pc(l.get('busy_load_cpu'), 0)} | "
                 f"{pc(foreign(r), 0)} |")
    w.append("")
    w.append("</details>")
    return w, {"fulcrum_cpu": f_cpu, "connect_cpu": fc_cpu, "haproxy_cpu": h_cpu,
               "cpu_met": met, "lat_ok": lat_ok}


def block(b):
    """The section between its marker comments, as docs/benchmarks.md holds it."""
    return [BEGIN] + section(b)[0] + [END]


def stored_block(path=RESULTS):
    """The section rendered from a stored run (bench/run.py uses this when it
    writes docs/benchmarks.md); None if there is none."""
    return block(Stored(path)) if Path(path).exists() else None


def write_section(b, out):
    """Replace the section between the markers in out; docs/benchmarks.md
    without them gets it at the end; any other file gets the section alone."""
    lines, res = section(b)
    text = "\n".join([BEGIN] + lines + [END])
    old = out.read_text() if out.exists() else None
    if old is not None and BEGIN in old and END in old[old.index(BEGIN):]:
        i = old.index(BEGIN)
        j = old.index(END, i) + len(END)
        new = old[:i] + text + old[j:]
    elif old is not None and out.resolve() == BENCHMARKS_MD.resolve():
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    else:
        new = text + "\n"
    out.write_text(new)
    return res


def foreign(r):
    """The CPU other processes used during a run (share of one CPU), the
    larger of its two windows."""
    return max(r["idle"]["foreign_load"], r["load"]["foreign_load"])


def fmt_us(x):
    return "–" if x is None else f"{x * 1e6:.0f} µs"


def fmt_num(x):
    return "–" if x is None else f"{x:,.0f}"



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of the idle window")
    ap.add_argument("--duration", type=float, default=20.0, help="recorded seconds of load")
    ap.add_argument("--rate", type=float, default=2000.0, help="requests/s of paced_load")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after a proxy's start")
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--wait-quiet", type=float, default=600.0,
                    help="before each run wait up to S seconds for 5 s in which no CPU is "
                         "over 20%% busy (0: do not wait)")
    ap.add_argument("--retries", type=int, default=2,
                    help="redo a run up to N times when other processes used more than "
                         f"{FOREIGN_LIMIT * 100:.0f}%% of a CPU during it")
    ap.add_argument("--perf", action="store_true", help="profile fulcrum (checks, no traffic)")
    ap.add_argument("--perf-seconds", type=float, default=10.0)
    ap.add_argument("--fulcrum", default=str(FULCRUM))
    ap.add_argument("--out", default=str(BENCHMARKS_MD),
                    help="where the section goes (default docs/benchmarks.md: between its "
                         "health-scale marker comments); another file gets the section alone")
    ap.add_argument("--json", help="store every run as JSON here (default "
                                   "bench/health_results.json when --out is docs/benchmarks.md)")
    ap.add_argument("--render", metavar="JSON",
                    help="do not measure: write the section from a run stored with --json")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not 1 <= args.servers <= 1000:
        ap.error("--servers: 1 to 1000 (addresses 127.1.0.1 to 127.1.3.250)")
    out = Path(args.out)
    if args.json is None and not args.render and out.resolve() == BENCHMARKS_MD.resolve():
        args.json = str(RESULTS)

    if args.render:
        write_section(Stored(args.render), out)
        log(f"wrote {out} from {args.render}")
        return 0

    b = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.setup()
        log(f"temp dir {b.dir}; backend on {b.addrs[0]}…{b.addrs[-1]}:{b.backend_port}; "
            f"fulcrum {b.fulcrum_id['sha']} ({b.fulcrum_id['tree']})")
        b.run()
        if args.json:
            save_state(b, args.json)
        res = write_section(b, out)
        log(f"wrote {out}" + (f" and {args.json}" if args.json else "")
            + f": fulcrum CPU {pc(res['fulcrum_cpu'])} (connect per check "
            f"{pc(res['connect_cpu'])}, HAProxy {pc(res['haproxy_cpu'])}), CPU goal "
            f"{'met' if res['cpu_met'] else 'NOT met'}, latency goals "
            + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in res["lat_ok"].items()))
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        b.cleanup()
        if args.keep:
            log(f"kept {b.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Cost of active health checks on a large pool: fulcrum beside HAProxy 2.6.

Issue 5 (section Scale): 1,000 servers with HTTP checks every second must cost
fulcrum under 5% of one CPU and change no request latency percentile by more
than 5%. One NGINX backend answers HTTP on 1,000 loopback addresses
(127.1.x.y, one port); each proxy has one http pool of those 1,000 servers,
once with `health_check {type: http, path: /healthz, interval: 1s,
timeout: 500ms}` (HAProxy: `option httpchk GET /healthz`, `check inter 1s`,
`timeout check 500ms`) and once without checks. For each of the four
variants, in interleaved rounds (order rotated each round), the script:

  1. starts the proxy alone (pinned to the proxy CPU), waits --settle seconds;
  2. idle window (--idle seconds, no request traffic): the proxy's CPU time
     (utime + stime of /proc/PID/stat, all threads), and the checks that
     reached the backend (NGINX logs every /healthz request with its time and
     the address it came to): checks per second, distinct servers checked,
     the busiest 100 ms;
  3. load window: bench/paced_load.c at a fixed rate (--rate, 2,000 req/s)
     for 1 s of warm-up plus --duration seconds: latency p50/p90/p99/p99.9/
     max from the time each request was due, and the proxy's CPU meanwhile;
  4. stops the proxy (by its pid) and reads its log for servers marked down.

The report (docs/benchmarks-health.md, or --out) gives the medians over the
rounds, the change of each latency percentile with checks vs without, the
goals and whether they are met, every single run, the machine and how to
reproduce. Python 3 stdlib only, plus gcc (for paced_load), haproxy, nginx,
taskset, and perf for the optional profile (--perf; it is also taken when
fulcrum misses the CPU goal).

    /usr/bin/python3 bench/health_scale.py [--rounds 3] [--idle 20]
        [--duration 20] [--rate 2000] [--settle 5] [--servers 1000]
        [--out docs/benchmarks-health.md] [--perf] [--keep] [--wait-quiet S]
        [--retries N] [--json PATH]
    /usr/bin/python3 bench/health_scale.py --render PATH.json [--out PATH]

Before each run it waits (--wait-quiet) for 5 s in which no CPU is over 20%
busy, and a run during which other processes used over 15% of a CPU is done
again (--retries); the report lists those. --json stores every figure, and
--render writes the report again from such a file without measuring.

Every process it starts is tracked by its pid and stopped by that pid (also
on Ctrl-C / SIGTERM); every run has a time limit.
"""

import argparse
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
import string
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
F_CONNECTIONS = 50
F_WARMUP = 1.0
F_DRAIN = 2.0
VARIANTS = [("fulcrum", True), ("fulcrum", False), ("haproxy", True), ("haproxy", False)]
LABEL = {"fulcrum": "fulcrum", "haproxy": "HAProxy"}


# Process handling, CPU accounting and templates are run.py's.
from run import (BenchError, Proc, children, cpu_busy, cpu_times, first_line, log,  # noqa: E402
                 render)


def is_listening(addr, port):
    a = socket.inet_aton(addr)
    want = f"{int.from_bytes(a, 'little'):08X}:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[1] == want and parts[3] == "0A":
                return True
    return False


def listening_count(addrs, port):
    want = {f"{int.from_bytes(socket.inet_aton(a), 'little'):08X}:{port:04X}" for a in addrs}
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and parts[1] in want:
                n += 1
    return n


def wait_listening(addr, port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited during startup; see {proc.out_path}:\n"
                             + tail(proc.out_path))
        if is_listening(addr, port):
            return
        time.sleep(0.05)
    raise BenchError(f"{proc.name}: nothing listening on {addr}:{port} after {timeout}s")


def tail(path, n=2000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


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
        for proxy, checks in VARIANTS:
            name = variant_name(proxy, checks)
            while True:
                p = free_port_on(["127.0.0.1"])
                if p not in lo_ports and p != self.backend_port:
                    lo_ports.add(p)
                    break
            self.listen_port[name] = p
            if proxy == "fulcrum":
                servers = "\n".join(f'      - {{ address: "{ad}:{self.backend_port}" }}'
                                    for ad in self.addrs)
                hc = ("health_check: { type: http, path: /healthz, interval: 1s, timeout: 500ms }"
                      if checks else "# no health_check")
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

    def proxy_proc(self, proxy, checks):
        name = variant_name(proxy, checks)
        tp = ["taskset", "-c", self.proxy_cpu]
        if proxy == "fulcrum":
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
        argv = ["taskset", "-c", self.load_cpu, str(self.paced_load), "-p", str(port),
                "-r", f"{a.rate:.0f}", "-d", f"{a.duration:g}", "-c", str(F_CONNECTIONS),
                "-w", f"{F_WARMUP:g}", "-t", f"{F_DRAIN:g}"]
        shown = ["paced_load"] + argv[4:]
        shown[shown.index("-p") + 1] = "PORT"
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
        if res["requests"] == 0:
            res["error"] = "no request answered"
        return res

    def run_variant(self, rnd, proxy, checks):
        a = self.args
        name = variant_name(proxy, checks)
        port = self.listen_port[name]
        p = self.proxy_proc(proxy, checks)
        self.proxy = p
        res = {"round": rnd, "proxy": proxy, "checks": checks}
        errlog = self.dir / f"{name}.error.log"
        err_off = errlog.stat().st_size if errlog.exists() else 0
        out_off = p.out_path.stat().st_size if p.out_path.exists() else 0
        try:
            p.start()
            wait_listening("127.0.0.1", port, p)
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
            for proxy, checks in order:
                for attempt in range(1 + a.retries):
                    waited = self.wait_quiet(a.wait_quiet)
                    t0 = time.monotonic()
                    r = self.run_variant(rnd, proxy, checks)
                    r["waited"] = waited
                    fl = max(r["idle"]["foreign_load"], r["load"]["foreign_load"])
                    log(f"round {rnd} {variant_name(proxy, checks):16s} {self.describe(r)} "
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
                          if r["proxy"] == "fulcrum" and r["checks"]])
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
        p = self.proxy_proc("fulcrum", True)
        self.proxy = p
        data = self.dir / "perf.data"
        secs = a.perf_seconds
        log(f"profiling fulcrum (checks on, no traffic) for {secs:g}s with perf")
        try:
            p.start()
            wait_listening("127.0.0.1", self.listen_port[variant_name("fulcrum", True)], p)
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
              "started"]


def save_state(b, path):
    state = {k: getattr(b, k, None) for k in STATE_KEYS}
    state["args"] = vars(b.args)
    Path(path).write_text(json.dumps(state, indent=1, default=str))


class Stored:
    """A finished run read back from --json, for --render."""

    def __init__(self, path, args):
        state = json.loads(Path(path).read_text())
        for k in STATE_KEYS:
            setattr(self, k, state.get(k))
        stored = dict(state["args"])
        stored["out"] = args.out
        self.args = argparse.Namespace(**stored)


def variant_name(proxy, checks):
    return f"{proxy}-{'checks' if checks else 'nochecks'}"


def fmt_ms(s):
    if s is None:
        return "–"
    ms = s * 1000
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.2f} ms"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


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


def report(b, out):
    a = b.args
    runs = [r for r in b.runs if "idle" in r and "load" in r]

    def sel(proxy, checks):
        return [r for r in runs if r["proxy"] == proxy and r["checks"] == checks]

    def m(proxy, checks, part, key):
        return median([r[part].get(key) for r in sel(proxy, checks)])

    def mm(proxy, checks, part, key):
        v = [r[part].get(key) for r in sel(proxy, checks) if r[part].get(key) is not None]
        return (min(v), max(v)) if v else (None, None)

    def pc(x, d=2):
        return "–" if x is None else f"{x * 100:.{d}f}%"

    def chg(on, off):
        if on is None or not off:
            return None
        return on / off - 1

    def sign(x):
        return "–" if x is None else f"{x * 100:+.1f}%"

    w = []
    w.append("# Health checks at scale: 1,000 servers checked every second")
    w.append("")
    w.append("<!-- Written by `bench/health_scale.py`; rerun it rather than editing this page. -->")
    w.append("")
    w.append(f"Issue 5 (section Scale): {a.servers:,} servers with HTTP checks every second must "
             f"cost fulcrum under {GOAL_CPU * 100:.0f}% of one CPU and change no request latency "
             f"percentile by more than {GOAL_LAT_CHANGE * 100:.0f}%. Measured by "
             f"`bench/health_scale.py` on {b.started}, beside HAProxy 2.6 checking the "
             f"same pool. Every figure is the median of {a.rounds} interleaved rounds.")
    w.append("")

    # ---- goals
    f_cpu = m("fulcrum", True, "idle", "cpu")
    w.append("## Goals")
    w.append("")
    w.append("| goal | fulcrum | HAProxy 2.6 (for comparison) | met |")
    w.append("|---|---|---|---|")
    h_cpu = m("haproxy", True, "idle", "cpu")
    met = (f_cpu is not None and f_cpu < GOAL_CPU)
    w.append(f"| CPU of the proxy with checks of {a.servers:,} servers every 1 s, no traffic: "
             f"< {GOAL_CPU * 100:.0f}% of one CPU | {pc(f_cpu)} | {pc(h_cpu)} | "
             f"{'**met**' if met else '**not met**'} |")
    lat_ok = {}
    for k, lab in PCTS:
        fc = chg(m("fulcrum", True, "load", k), m("fulcrum", False, "load", k))
        hc = chg(m("haproxy", True, "load", k), m("haproxy", False, "load", k))
        ok = fc is not None and fc <= GOAL_LAT_CHANGE
        lat_ok[k] = ok
        w.append(f"| latency {lab} at {a.rate:,.0f} req/s with checks vs without: change "
                 f"≤ +{GOAL_LAT_CHANGE * 100:.0f}% | {sign(fc)} | {sign(hc)} | "
                 f"{'**met**' if ok else '**not met**'} |")
    w.append("")
    # noise floor: how much the runs without checks vary between rounds
    noise = []
    for k, lab in PCTS:
        lo, hi = mm("fulcrum", False, "load", k)
        md = m("fulcrum", False, "load", k)
        if md:
            noise.append(f"{lab} {(lo / md - 1) * 100:+.0f}…{(hi / md - 1) * 100:+.0f}%")
    if noise:
        w.append(f"For scale, the runs of fulcrum *without* checks varied from round to round "
                 f"around their median by {', '.join(noise)} (min…max); a change smaller than "
                 f"that is within the noise of the method on this machine.")
        w.append("")

    # ---- idle CPU
    w.append("## CPU with checks only (no request traffic)")
    w.append("")
    w.append(f"Each proxy alone, pinned to CPU {b.proxy_cpu}, {a.settle:g} s after its start, "
             f"over {a.idle:g} s without requests. CPU is utime + stime of the whole process "
             f"(all threads) from `/proc/PID/stat`, as a share of one CPU. Checks are counted "
             f"where they arrive: the backend logs each `/healthz` request with its time and "
             f"address.")
    w.append("")
    w.append("| proxy | checks | proxy CPU (median) | min–max | user / sys | CPU per check "
             "| checks/s at the backend | servers checked | checks per 100 ms: min / max "
             f"| backend CPU | CPU {b.proxy_cpu} busy (all) |")
    w.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for proxy, checks in VARIANTS:
        rs = sel(proxy, checks)
        if not rs:
            continue
        lo, hi = mm(proxy, checks, "idle", "cpu")
        u = median([r["idle"]["cpu_user"] / r["idle"]["wall"] for r in rs])
        s = median([r["idle"]["cpu_sys"] / r["idle"]["wall"] for r in rs])
        w.append(f"| {LABEL[proxy]} | {'on' if checks else 'off'} | "
                 f"**{pc(m(proxy, checks, 'idle', 'cpu'))}** | {pc(lo)}–{pc(hi)} | "
                 f"{pc(u)} / {pc(s)} | {us_per_check(rs)} | "
                 f"{m(proxy, checks, 'idle', 'checks_per_s'):,.0f} | "
                 f"{m(proxy, checks, 'idle', 'servers_checked'):,.0f} | "
                 f"{fmt_num(m(proxy, checks, 'idle', 'min_100ms'))} / "
                 f"{fmt_num(m(proxy, checks, 'idle', 'max_100ms'))} | "
                 f"{pc(m(proxy, checks, 'idle', 'backend_cpu'), 1)} | "
                 f"{pc(m(proxy, checks, 'idle', 'busy_proxy_cpu'), 1)} |")
    w.append("")
    w.append(f"At {a.servers:,} checks per second an even spread is "
             f"{a.servers / 10:,.0f} per 100 ms; the min / max columns show how evenly each "
             f"proxy spreads them.")
    w.append("")

    # ---- latency
    w.append(f"## Request latency at {a.rate:,.0f} requests/s, checks on vs off")
    w.append("")
    w.append(f"`bench/paced_load.c` (the open-loop generator of scenario F of "
             f"[benchmarks.md](benchmarks.md)): {a.rate:,.0f} requests/s on {F_CONNECTIONS} "
             f"keep-alive connections, {F_WARMUP:g} s of warm-up then {a.duration:g} s recorded "
             f"(about {a.rate * a.duration:,.0f} requests per run), latency from the moment "
             f"each request was due to the last byte of its response. The proxy spreads the "
             f"requests round robin over the {a.servers:,} servers, the same pool it checks. "
             f"Measured right after the idle window of the same proxy process.")
    w.append("")
    w.append("| proxy | checks | p50 | p90 | p99 | p99.9 | max | proxy CPU | errors | "
             "checks/s meanwhile |")
    w.append("|---|---|---|---|---|---|---|---|---|---|")
    for proxy, checks in VARIANTS:
        rs = sel(proxy, checks)
        if not rs:
            continue
        errs = sum(r["load"].get("errors", 0) or 0 for r in rs)
        w.append(f"| {LABEL[proxy]} | {'on' if checks else 'off'} | "
                 + " | ".join(fmt_ms(m(proxy, checks, "load", k)) for k, _ in PCTS)
                 + f" | {fmt_ms(m(proxy, checks, 'load', 'max'))} | "
                 f"{pc(m(proxy, checks, 'load', 'cpu'), 1)} | {errs} | "
                 f"{m(proxy, checks, 'load', 'checks_per_s'):,.0f} |")
    for proxy in ("fulcrum", "haproxy"):
        cells = [sign(chg(m(proxy, True, "load", k), m(proxy, False, "load", k)))
                 for k, _ in PCTS + [("max", "max")]]
        cpu = chg(m(proxy, True, "load", "cpu"), m(proxy, False, "load", "cpu"))
        w.append(f"| **{LABEL[proxy]}: change** | on vs off | " + " | ".join(cells)
                 + f" | {sign(cpu)} | | |")
    w.append("")

    # ---- profile
    if b.profile:
        w.append("## Profile of fulcrum with checks, no traffic")
        w.append("")
        if "error" in b.profile:
            w.append(f"The profile could not be taken: {b.profile['error']}")
        else:
            why = ("asked for with `--perf`" if a.perf else
                   f"taken because fulcrum's CPU was not under {GOAL_CPU * 100:.0f}%")
            w.append(f"{why}: `{b.profile['command']}` over {b.profile['seconds']:g} s, during "
                     f"which fulcrum used {b.profile['cpu'] * 100:.2f}% of one CPU. "
                     f"Self time by command (thread), object and symbol, entries ≥ 0.8%:")
            w.append("")
            w.append("```")
            w += b.profile["self"]
            w.append("```")
            w.append("")
            w.append("Self time by thread and object (user space vs kernel):")
            w.append("")
            w.append("```")
            w += b.profile["dso"]
            w.append("```")
            w.append("")
            w.append("Including callees (`--children`):")
            w.append("")
            w.append("```")
            w += b.profile["children"][:30]
            w.append("```")
            w.append("")
            w.append("Reading it: on loopback the kernel delivers a packet to its receiver in "
                     "the sender's context (the softirq run when the send returns), so the "
                     "check thread's system time holds, besides its own connect / send / "
                     "receive / close, the backend side's TCP work for every packet it sends "
                     "(the SYN, the request, the FIN): `net_rx_action` and below. With a real "
                     "network that part runs on the backend's host. Where the samples land on "
                     "an `irq_enable` symbol, the time was spent with interrupts disabled "
                     "(softirq work) and is charged where they were enabled again, which is "
                     "how the sampling clock of this VM works; the callers in the `--children` "
                     "view show what it was.")
        w.append("")

    # ---- observations
    w.append("## Observations")
    w.append("")
    obs = []
    for r in runs:
        tag = f"round {r['round']}, {LABEL[r['proxy']]} checks {'on' if r['checks'] else 'off'}"
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
        fl = max(r["idle"]["foreign_load"], r["load"]["foreign_load"])
        if fl > 0.10:
            obs.append(f"{tag}: processes the benchmark did not start used {fl * 100:.0f}% of "
                       f"a CPU meanwhile")
        busy = r["load"].get("busy_load_cpu")
        if busy is not None and busy > 0.9:
            obs.append(f"{tag}: CPU {b.load_cpu} (load + backend) was {busy * 100:.0f}% busy "
                       f"under load")
        for ln in r.get("log_other", [])[:3]:
            obs.append(f"{tag}: proxy log: `{ln.strip()[:200]}`")
    if b.discarded:
        obs.append(f"{len(b.discarded)} run(s) were done again because other processes used more "
                   f"than {FOREIGN_LIMIT * 100:.0f}% of a CPU during them (not in the figures): "
                   + "; ".join(f"round {r['round']} {LABEL[r['proxy']]} checks "
                               f"{'on' if r['checks'] else 'off'} "
                               f"({max(r['idle']['foreign_load'], r['load']['foreign_load']) * 100:.0f}%)"
                               for r in b.discarded))
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
    mi = machine_info()
    fid = b.fulcrum_id
    w.append("## Setup")
    w.append("")
    w.append(f"- **Backend**: one NGINX (`worker_processes 1`, pinned to CPU {b.load_cpu}) "
             f"listening on {a.servers:,} loopback addresses "
             f"{b.addrs[0]} … {b.addrs[-1]}, port {b.backend_port} (chosen free at the start): "
             f"`/healthz` answers `200 ok` and is logged (`$msec $server_addr`), `/` answers "
             f"`200 hello` unlogged; keep-alive without a request limit. "
             f"Template `bench/templates/health-backend-nginx.cfg`.")
    w.append(f"- **fulcrum**: `workers: 1`, access log off, an `http` listener → one `http` pool "
             f"of the {a.servers:,} servers (round robin), `keepalive: {{max_idle: "
             f"{max(64, 2 * a.servers)}}}` so that each server can keep an idle connection; "
             f"with checks `health_check: {{ type: http, path: /healthz, interval: 1s, "
             f"timeout: 500ms }}` (rise 2, fall 3, jitter 10% = 100 ms: the defaults). "
             f"Template `bench/templates/health-fulcrum.yaml`.")
    w.append(f"- **HAProxy**: `nbthread 1`, `mode http`, `http-reuse always`, no logging, "
             f"`balance roundrobin`, `option httpchk GET /healthz`, `timeout check 500ms`, "
             f"each server line with `check inter 1s` (rise 2, fall 3: defaults) or without "
             f"`check`. Template `bench/templates/health-haproxy.cfg`.")
    w.append(f"- Each proxy is started alone for its run (so no other proxy's checks run "
             f"meanwhile) with `taskset -c {b.proxy_cpu}`; paced_load and the backend run on "
             f"CPU {b.load_cpu}. Order of the four variants rotated by one each round. "
             f"Settle {a.settle:g} s after start, idle window {a.idle:g} s, then the load run.")
    w.append(f"- paced_load: `{getattr(b, 'paced_cmd', '?')}` (PORT: the proxy's listener).")
    w.append(f"- Machine: {mi.get('nproc')} CPUs ({mi.get('cpu', '?')}), kernel "
             f"{mi.get('kernel')}, {mi.get('mem', '?')} RAM, open-files limit "
             f"{b.nofile[0]:,}.")
    w.append(f"- fulcrum: `{fid['version']}`, binary sha256 {fid['sha']}… built "
             f"{fid['built']} (a private copy of `{os.path.relpath(fid['path'], ROOT)}` taken at "
             f"the start), tree `{fid['tree']}`"
             + (f" (uncommitted: {', '.join('`' + x + '`' for x in fid['dirty_files'])})"
                if fid["dirty_files"] else "") + ".")
    w.append(f"- {first_line(['haproxy', '-v'])}; {first_line(['nginx', '-v'])}.")
    w.append("")
    w.append("## Reproduce")
    w.append("")
    w.append("```sh")
    w.append("make                                   # build/fulcrum")
    w.append("/usr/bin/python3 bench/health_scale.py # ~"
             f"{a.rounds * 4 * (a.settle + a.idle + a.duration + F_WARMUP + 3) / 60:.0f} min, "
             "writes docs/benchmarks-health.md")
    w.append("/usr/bin/python3 bench/health_scale.py --rounds 1 --idle 5 --duration 5 "
             "--out /tmp/h.md   # smoke test")
    w.append("```")
    w.append("")
    w.append("Options: `--rounds N` (3), `--idle S` (20), `--duration S` (20), `--rate RPS` "
             "(2000), `--settle S` (5), `--servers N` (1000), `--wait-quiet S` (600: before "
             "each run, wait up to S s for 5 s in which no CPU is over 20% busy), `--retries N` "
             f"(2: redo a run during which other processes used over {FOREIGN_LIMIT * 100:.0f}% "
             "of a CPU), `--perf` (profile fulcrum with checks and no traffic; done anyway "
             "when it misses the CPU goal), `--keep` (keep the temp dir with every config and "
             "log), `--json PATH`, `--out PATH`.")
    w.append("")

    # ---- every run
    w.append("<details><summary>Every run</summary>")
    w.append("")
    w.append("| round | proxy | checks | idle CPU | checks/s | servers | per 100 ms min/max | "
             "p50 | p90 | p99 | p99.9 | max | req/s | load CPU | errors | CPU "
             f"{b.load_cpu} busy | other load |")
    w.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        i, l = r["idle"], r["load"]
        w.append(f"| {r['round']} | {LABEL[r['proxy']]} | {'on' if r['checks'] else 'off'} | "
                 f"{pc(i['cpu'])} | {i['checks_per_s']:,.0f} | {i['servers_checked']} | "
                 f"{fmt_num(i.get('min_100ms'))}/{fmt_num(i.get('max_100ms'))} | "
                 + " | ".join(fmt_ms(l.get(k)) for k, _ in PCTS)
                 + f" | {fmt_ms(l.get('max'))} | {l.get('rps', 0):,.0f} | {pc(l['cpu'], 1)} | "
                 f"{l.get('errors', '–')} | {pc(l.get('busy_load_cpu'), 0)} | "
                 f"{pc(max(i['foreign_load'], l['foreign_load']), 0)} |")
    w.append("")
    w.append("</details>")
    w.append("")
    out.write_text("\n".join(w))
    return {"fulcrum_cpu": f_cpu, "haproxy_cpu": h_cpu, "cpu_met": met, "lat_ok": lat_ok}


def us_per_check(rs):
    v = median([r["idle"]["cpu"] / r["idle"]["checks_per_s"] for r in rs
                if r["idle"].get("checks_per_s")])
    return "–" if v is None else f"{v * 1e6:.0f} µs"


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
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-health.md"))
    ap.add_argument("--json", help="also write every run as JSON here")
    ap.add_argument("--render", metavar="JSON",
                    help="do not measure: write the report from a run stored with --json")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not 1 <= args.servers <= 1000:
        ap.error("--servers: 1 to 1000 (addresses 127.1.0.1 to 127.1.3.250)")

    if args.render:
        b = Stored(args.render, args)
        res = report(b, Path(args.out))
        log(f"wrote {args.out} from {args.render}")
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
        res = report(b, Path(args.out))
        log(f"wrote {args.out}: fulcrum CPU {res['fulcrum_cpu'] * 100:.2f}% "
            f"(HAProxy {res['haproxy_cpu'] * 100:.2f}%), CPU goal "
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

"""Process life cycle: graceful shutdown and drain_timeout, start-up errors,
the JSON access log and log file reopening on SIGUSR1."""

import datetime
import hashlib
import json
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import (Payload, closed_by_peer, fmt_addr, free_port, fulcrum_bin, listener,
                      make_config, pool, recv_exact, recv_line, simple_config, to_yaml,
                      wait_until)


def slow_sender(chunks, size, interval):
    """Handler: send `chunks` chunks of `size` bytes, one every `interval`
    seconds, then close. Records what it sent."""
    def handler(b, conn):
        h = hashlib.sha256()
        n = 0
        for c in Payload(chunks * size, chunk=size, seed=3).chunks():
            conn.sock.sendall(c)
            h.update(c)
            n += len(c)
            time.sleep(interval)
        conn.info["sent"] = (n, h.hexdigest())
    return handler


def trickle(b, conn):
    """Handler: one byte every 100 ms for up to 20 s (until the peer goes)."""
    for _ in range(200):
        conn.sock.sendall(b".")
        time.sleep(0.1)


def assert_refused(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            s.connect((host, port))


def test_sigterm_lets_an_open_transfer_finish(fulcrum, backend, connect, port):
    chunk, chunks = 64 * 1024, 16            # 1 MiB over about 1.6 s
    b = backend("SLOW", handler=slow_sender(chunks, chunk, 0.1))
    f = fulcrum(simple_config([b], port, workers=2, drain_timeout="10s"))

    s = connect(port)
    h = hashlib.sha256()
    first = recv_exact(s, chunk)
    h.update(first)
    got = len(first)

    f.send_signal(signal.SIGTERM)
    f.wait_error_log(r"no longer accepting; draining 1 connection")
    time.sleep(0.1)
    assert_refused(port)                     # new connections are refused ...
    assert f.running()

    for _ in range(chunks * chunk):          # ... while the open one goes on
        data = s.recv(65536)
        if not data or got > chunks * chunk:
            break
        h.update(data)
        got += len(data)
        assert got == chunks * chunk or f.running(), "fulcrum exited mid-transfer"
    s.close()

    assert b.conns[0].done.wait(5)
    assert (got, h.hexdigest()) == b.conns[0].info["sent"]
    assert f.wait(5) == 0
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "closed" and int(rec["bytes_out"]) == chunks * chunk
    assert re.search(r"\] stopped$", f.error_log(), re.M)
    assert f.counters("listener", "front")["accepted"] == 1


def test_drain_timeout_closes_what_is_left(fulcrum, backend, connect, port):
    b = backend("ENDLESS", handler=trickle)
    f = fulcrum(simple_config([b], port, workers=2, drain_timeout="1s"))

    s = connect(port)
    assert recv_exact(s, 1) == b"."
    t0 = time.monotonic()
    f.send_signal(signal.SIGTERM)
    rc = f.wait(6)
    took = time.monotonic() - t0
    assert rc == 0
    assert 0.8 <= took < 3.0, f"exited {took:.2f}s after SIGTERM with drain_timeout: 1s"
    # The client saw its connection end (after the dots that were in flight).
    s.settimeout(2)
    try:
        for _ in range(1000):            # the dots in flight, then the end
            if not s.recv(65536):
                break
    except ConnectionResetError:
        pass
    s.close()
    rec = f.wait_access(1)[0]
    assert rec["cause"] == "shutdown" and int(rec["bytes_out"]) >= 1
    assert re.search(r"\[warn\] drain timeout: closing 1 open connection", f.error_log())


def test_second_signal_closes_at_once(fulcrum, backend, connect, port):
    b = backend("ENDLESS", handler=trickle)
    f = fulcrum(simple_config([b], port, workers=2, drain_timeout="60s"))

    s = connect(port)
    assert recv_exact(s, 1) == b"."
    f.send_signal(signal.SIGINT)
    f.wait_error_log(r"no longer accepting; draining 1 connection")
    assert f.wait(0.5) is None              # still draining
    t0 = time.monotonic()
    f.send_signal(signal.SIGTERM)
    assert f.wait(5) == 0
    assert time.monotonic() - t0 < 2.0
    assert f.wait_access(1)[0]["cause"] == "shutdown"
    assert "closing every connection now" in f.error_log()
    s.close()


def test_port_in_use_is_a_startup_error(fulcrum, backend):
    b = backend("B")
    occupant = backend("OCCUPANT")             # someone else's server on this port
    free = free_port()
    cfg = make_config([listener("fine", fmt_addr("127.0.0.1", free), "backs"),
                       listener("clash", occupant.address, "backs")],
                      [pool("backs", [b.address])])
    f = fulcrum(cfg, wait_ready=False)
    assert f.wait(10) == 1
    err = f.error_log()
    line = next((ln for ln in err.splitlines() if "clash" in ln), "")
    assert occupant.address in line and "Address already in use" in line, err
    assert not re.search(r"\] ready$", err, re.M)
    # Nothing was left listening, and the occupant still has its port.
    assert_refused(free)
    with socket.create_connection(("127.0.0.1", occupant.port), timeout=5) as s:
        s.settimeout(5)
        assert recv_line(s) == b"OCCUPANT\n"
    assert b.accepted == 0


@pytest.mark.parametrize("bind", ["0.0.0.0:{p}", "[::]:{p}", ":{p}"])
def test_wildcard_bind_needs_public(tmp_path, backend, bind):
    b = backend("B")
    p = free_port()
    addr = bind.format(p=p)
    cfg = make_config([listener("open", addr, "backs")], [pool("backs", [b.address])])
    path = tmp_path / "wild.yaml"
    path.write_text(to_yaml(cfg) + "\n")

    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    err = r.stdout + r.stderr
    # FILE:LINE:COL: key path: message, pointing at the bind value.
    m = re.search(rf"^{re.escape(str(path))}:(\d+):(\d+): (listeners\[0\][^:]*): (.*)$",
                  err, re.M)
    assert m, err
    line_no = int(m.group(1))
    assert "bind" in path.read_text().splitlines()[line_no - 1]
    msg = m.group(3) + ": " + m.group(4)
    assert "bind" in msg and addr in msg, err
    assert "wildcard" in msg and "every network interface" in msg and "public: true" in msg

    # Running it fails the same way, before listening anywhere.
    r = subprocess.run([fulcrum_bin(), "-c", str(path)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "public: true" in r.stderr
    assert_refused(p)

    # With public: true the same file is valid (not run: it would listen on
    # every interface).
    cfg["listeners"][0]["public"] = True
    path.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([fulcrum_bin(), "check", "-c", str(path)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


ACCESS_FIELDS = {"time", "client", "listener", "server", "bytes_in", "bytes_out",
                 "duration_ms", "retries", "cause"}


def test_json_access_log_and_sigusr1_reopen(fulcrum, backend, connect, port, tmp_path):
    b = backend("JSON")
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    f = fulcrum(simple_config([b], port, workers=2,
                              listener_kw={"deny": ["127.0.0.2/32"]},
                              log={"format": "json", "access": str(access),
                                   "error": str(error)}))

    s = connect(port, source="127.0.0.1")
    me = fmt_addr(*s.getsockname()[:2])
    assert recv_line(s) == b"JSON\n"
    s.sendall(b"hello\n")
    assert recv_line(s) == b"hello\n"
    s.close()
    d = connect(port, source="127.0.0.2")
    denied = fmt_addr(*d.getsockname()[:2])
    assert closed_by_peer(d)
    d.close()

    recs = f.wait_access(2)
    for raw in f.access_lines():
        obj = json.loads(raw)
        assert set(obj) == ACCESS_FIELDS, raw
        datetime.datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        for k in ("bytes_in", "bytes_out", "duration_ms", "retries"):
            assert isinstance(obj[k], int), raw
    ok = next(r for r in recs if r["client"] == me)
    assert ok == {**ok, "listener": "front", "server": b.address, "bytes_in": 6,
                  "bytes_out": 5 + 6, "retries": 0, "cause": "closed"}
    no = next(r for r in recs if r["client"] == denied)
    assert no["server"] is None and no["cause"] == "denied"
    assert f.stdout_text() == ""               # the access log went to the file

    # Rotate: rename both files, SIGUSR1, and fulcrum writes to new ones.
    access.rename(tmp_path / "access.log.1")
    error.rename(tmp_path / "error.log.1")
    f.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: error.exists() and "log files reopened" in error.read_text(), 5), \
        "no new error log after SIGUSR1"
    s = connect(port)
    assert recv_line(s) == b"JSON\n"
    s.close()
    new = f.wait_access(1)
    assert new[0]["cause"] == "closed" and new[0]["client"] != me
    assert len(f.access_lines(tmp_path / "access.log.1")) == 2
    assert re.search(r"\] ready$", (tmp_path / "error.log.1").read_text(), re.M)
    assert not re.search(r"\] ready$", error.read_text(), re.M)
    assert f.stop() == 0
    assert "counters listener=front" in error.read_text()


def test_sighup_is_ignored_with_a_warning(fulcrum, backend, connect, port):
    b = backend("B")
    f = fulcrum(simple_config([b], port))
    f.send_signal(signal.SIGHUP)
    f.wait_error_log(r"\[warn\] SIGHUP")
    s = connect(port)
    assert recv_line(s) == b"B\n"
    s.close()
    assert f.running()


def test_port_held_by_another_fulcrum_is_a_startup_error(fulcrum, backend, connect, port):
    """A second fulcrum started on the port of one that is still running
    must fail like any other 'port in use', not share the port with it."""
    old, new = backend("OLD"), backend("NEW")
    first = fulcrum(simple_config([old], port), name="first")
    second = fulcrum(make_config([listener("again", fmt_addr("127.0.0.1", port), "backs")],
                                 [pool("backs", [new.address])]),
                     wait_ready=False, name="second")
    rc = second.wait(2)
    names = []
    for _ in range(12):
        s = connect(port)
        names.append(recv_line(s).decode().strip())
        s.close()
    assert rc == 1, (f"the second fulcrum started on 127.0.0.1:{port} although another one "
                     f"listens there (exit code {rc}); clients were split between them: "
                     f"{names}")
    line = next((ln for ln in second.error_log().splitlines() if "again" in ln), "")
    assert f"127.0.0.1:{port}" in line and "Address already in use" in line
    assert names == ["OLD"] * 12 and new.accepted == 0
    assert first.running()


@pytest.mark.parametrize("target", ["stderr", "off"])
def test_access_log_targets(fulcrum, backend, connect, port, target):
    b = backend("B")
    f = fulcrum(simple_config([b], port, log={"access": target}))
    s = connect(port)
    assert recv_line(s) == b"B\n"
    s.close()
    assert b.wait_accepted(1) and b.conns[0].done.wait(5)
    assert f.stop() == 0
    assert f.stdout_text() == ""
    lines = [ln for ln in f.error_log().splitlines() if " listener=front server=" in ln]
    if target == "stderr":
        assert len(lines) == 1 and "cause=closed" in lines[0]
        assert re.search(r"\] stopped$", f.error_log(), re.M)
    else:
        assert lines == []
        # Connections are still counted, just not logged.
        assert f.counters("listener", "front")["accepted"] == 1


def test_log_level_warn_hides_info(fulcrum, backend, connect, port, dead_address):
    b = backend("B")
    dead = dead_address()
    f = fulcrum(simple_config([dead, b], port, workers=1, log={"level": "warn"}))
    # (ready is detected by connecting: the "ready" line is info)
    s = connect(port)
    assert recv_line(s) == b"B\n"
    s.close()
    f.wait_error_log(rf"\[warn\] .*{re.escape(dead)}.*Connection refused")
    assert f.stop() == 0
    assert "[info]" not in f.error_log()

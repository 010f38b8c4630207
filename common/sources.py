"""Opening a data set split from the hub or from a local path, with one-line errors.

A local path mirrors the hub data set: with configs (code-to-text: `python`, `java`) `PATH/{config}/{split}.{ext}`,
without configs `PATH/{split}.{ext}` (ext: jsonl, json, parquet, csv), or a `datasets.save_to_disk` directory
(`PATH/{config}` or `PATH`). A path to one file is read as the split itself; which config (language) it holds is
the caller's business (`common.data.file_language`).
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from common.errors import UserError, first_line

EXTENSIONS = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}
OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to fail fast when offline"


def is_local(source: str) -> bool:
    return os.path.exists(os.path.expanduser(source)) or source.startswith((".", "/", "~")) or source.count("/") > 1


def load_split(source: str, config: str | None, split: str, flag: str) -> datasets.Dataset:
    """One split of a data set, by hub id or local path; `flag` names the option in error messages."""
    if is_local(source):
        dataset = _load_local(Path(os.path.expanduser(source)), config, split, flag)
    else:
        dataset = _load_hub(source, config, split, flag)
    if len(dataset) == 0:
        raise UserError(f"{flag}: the {split} split{_of(config)} of {source} is empty")
    return dataset


def require_columns(dataset: datasets.Dataset, columns: tuple[str, ...], source: str, flag: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise UserError(
            f"{flag}: {source} lacks the column(s) {', '.join(missing)} (has: {', '.join(dataset.column_names)}); "
            f"use the hub data set's column names"
        )


def _of(config: str | None) -> str:
    return f" of {config}" if config else ""


def _load_hub(source: str, config: str | None, split: str, flag: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(source, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable line
        reason = first_line(exc)
        raise UserError(
            f"{flag}: could not load data set '{source}'{_of(config)} ({split}) from the Hugging Face Hub: {reason}. "
            f"Without network access pass a local path instead ({flag} PATH, laid out as the hub data set); "
            f"{OFFLINE_HINT}"
        ) from None


def _split_files(folder: Path, split: str, ext: str) -> list[Path]:
    """`{split}.ext`, or the shards of a hub snapshot: `{split}-00000-of-00002.ext`, `data/...`, `{split}/*.ext`."""
    for pattern in (f"{split}.{ext}", f"{split}-*.{ext}", f"data/{split}-*.{ext}", f"{split}/*.{ext}"):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    return []


def _read_files(files: list[Path], builder: str, flag: str) -> datasets.Dataset:
    empty = [f for f in files if f.stat().st_size == 0]
    if empty:
        raise UserError(f"{flag}: {empty[0]} is empty")
    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as exc:  # noqa: BLE001 - a malformed file becomes one line naming it
        first = first_line(exc)
        raise UserError(f"{flag}: cannot read {files[0].parent}/{files[0].name}: {first}") from None


def _load_local(root: Path, config: str | None, split: str, flag: str) -> datasets.Dataset:
    if not root.exists():
        raise UserError(f"{flag}: no such file or directory: {root}")
    if root.is_file():  # one file is the split itself (an evaluation set such as the study's *_v2.jsonl)
        builder = EXTENSIONS.get(root.suffix.lstrip(".").lower())
        if builder is None:
            raise UserError(f"{flag}: {root}: expected a .jsonl, .json, .parquet or .csv file, or a directory")
        return _read_files([root], builder, flag)
    candidates = ([root / config] if config else []) + [root]
    for folder in candidates:
        if not folder.is_dir():
            continue
        if (folder / "dataset_dict.json").exists():
            saved = datasets.load_from_disk(str(folder))
            if split in saved:
                return saved[split]
            continue
        if (folder / "dataset_info.json").exists() and (folder / "state.json").exists() and folder.name == split:
            return datasets.load_from_disk(str(folder))
        if (folder / split / "state.json").exists():
            return datasets.load_from_disk(str(folder / split))
        for ext, builder in EXTENSIONS.items():
            files = _split_files(folder, split, ext)
            if files:
                return _read_files(files, builder, flag)
    where = root / config if config else root
    raise UserError(
        f"{flag}: no {split} split{_of(config)} under {root}: expected {where}/{split}.jsonl "
        f"(or .json/.parquet/.csv) or a datasets.save_to_disk directory"
    )

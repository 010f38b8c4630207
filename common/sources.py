"""Opening a data set split from the hub or from a local path, with one-line errors.

A local path mirrors the hub data set: with configs (code-to-text: `python`, `java`) `PATH/{config}/{split}.{ext}`,
without configs `PATH/{split}.{ext}` (ext: jsonl, json, parquet, csv), or a `datasets.save_to_disk` directory
(`PATH/{config}` or `PATH`). A path to one file is read as the split itself; which config (language) it holds is
the caller's business (`common.data.file_language`). A local JSON Lines, JSON or CSV file that is not UTF-8, or a
JSON line that does not parse, is reported with its file and line number; an empty split saved with `save_to_disk`
(no data files) is reported as empty.
"""

from __future__ import annotations

import json
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
    if builder in ("json", "csv"):  # text: `datasets` reads bad UTF-8 into the table and fails only on that row
        for file in files:
            check_utf8(file, flag)
    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as exc:  # noqa: BLE001 - a malformed file becomes one line naming it
        if builder == "json":
            for file in files:
                check_json(file, flag)
        reason = first_line(exc.__cause__ or exc)  # datasets' DatasetGenerationError says only that it failed
        raise UserError(f"{flag}: cannot read {files[0].parent}/{files[0].name}: {reason}") from None


def check_utf8(file: Path, flag: str, chunk_size: int = 1 << 24) -> None:
    """Raises UserError naming the file and line of the first byte that is not UTF-8 (read once, in chunks)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(file, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is this chunk behind the few bytes of a character the last one cut (never a newline)
                line += exc.object.count(b"\n", 0, exc.start)
                raise UserError(f"{flag}: cannot read {file}: line {line} is not UTF-8 text (byte "
                                f"{exc.object[exc.start]:#04x}); save it as UTF-8") from None
            if not chunk:
                return
            line += chunk.count(b"\n")


def check_json(file: Path, flag: str) -> None:
    """Raises UserError naming the file and line of the first JSON error: of the whole document for a .json file
    holding one, else of the first line that is not a JSON value (JSON Lines)."""
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            json.loads(text)
            return
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": more than one value, i.e. JSON Lines; checked below
                raise UserError(f"{flag}: cannot read {file}: line {exc.lineno} is not valid JSON ({exc.msg}, "
                                f"column {exc.colno})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{flag}: cannot read {file}: line {n} is not valid JSON ({exc.msg}, column "
                                f"{exc.colno})") from None


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
            if split in _saved_splits(folder, flag):  # only this split is opened: another may be unreadable
                return _load_saved(folder / split, split, config, flag)
            continue
        if (folder / "dataset_info.json").exists() and (folder / "state.json").exists() and folder.name == split:
            return _load_saved(folder, split, config, flag)
        if (folder / split / "state.json").exists():
            return _load_saved(folder / split, split, config, flag)
        for ext, builder in EXTENSIONS.items():
            files = _split_files(folder, split, ext)
            if files:
                return _read_files(files, builder, flag)
    where = root / config if config else root
    raise UserError(
        f"{flag}: no {split} split{_of(config)} under {root}: expected {where}/{split}.jsonl "
        f"(or .json/.parquet/.csv) or a datasets.save_to_disk directory"
    )


def _saved_splits(folder: Path, flag: str) -> list[str]:
    try:
        splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{flag}: {folder}/dataset_dict.json is not a datasets.save_to_disk record (no `splits`); "
                        f"save the data again with save_to_disk") from None
    return [str(name) for name in splits]


def _load_saved(folder: Path, split: str, config: str | None, flag: str) -> datasets.Dataset:
    """A split saved with `datasets.save_to_disk`; one with no data files (an empty dataset saved with the default
    shards) is an empty split, which `datasets` would fail on with an IndexError."""
    try:
        files = json.loads((folder / "state.json").read_text(encoding="utf-8"))["_data_files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{flag}: {folder}/state.json is not a datasets.save_to_disk record; save the data again "
                        f"with save_to_disk") from None
    if not files:
        raise UserError(f"{flag}: the {split} split{_of(config)} of {folder} is empty (saved without data "
                        f"files)")
    try:
        return datasets.load_from_disk(str(folder))
    except Exception as exc:  # noqa: BLE001 - a damaged save becomes one line naming it
        raise UserError(f"{flag}: cannot read the saved dataset {folder}: {first_line(exc)}") from None

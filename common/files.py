"""Writing output files whole or not at all: to a temporary file next to the target, then renamed over it."""

from __future__ import annotations

import json
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, payload) -> None:
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_lines(path: Path, rows: list[dict]) -> None:
    """JSONL: one JSON object per line."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))

"""Per-item scores of the runs a comparison reads: evaluation folders (predictions.jsonl: every per-item score and
code-quality value) or per-item CSV files (an id column, one column per metric: the layout of the study's published
per-item values), each item keyed by (task, language/direction, id)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import UserError

if TYPE_CHECKING:
    from common.compare import CompareArguments

_PREFIX = re.compile(r"^([\w.+-]+)/([\w.+#-]+):(.+)$")  # TASK/LANGUAGE:path

Key = tuple[str, str, str]  # (task, language/direction, id)


@dataclass
class Run:
    name: str
    sources: list[str]
    items: dict[Key, dict[str, float | None]]  # per item: metric -> value (None: not measured for this item)
    quality: set[str]  # the metrics that are code-quality measures (the charts draw them apart)


def read_runs(args: CompareArguments) -> list[Run]:
    """The runs of --runs, each the merged items of its sources; one-line errors for what cannot be read."""
    runs, names = [], set()
    for spec in args.runs:
        name, sep, sources = spec.partition("=")
        if not sep or not name.strip() or not sources.strip():
            raise UserError(f"--runs {spec}: write NAME=SOURCE[,SOURCE...], e.g. MT-QLoRA=runs/mt/eval-multitask-test")
        if name in names:
            raise UserError(f"--runs: the name {name} is given twice; give each run its own name")
        if ":" in name or "," in name:
            raise UserError(f"--runs {spec}: a run name may not contain ':' or ','")
        names.add(name)
        run = Run(name, [s for s in sources.split(",") if s], {}, set())
        for source in run.sources:
            _read_source(run, source, args)
        if not run.items:
            raise UserError(f"--runs {name}: {sources} holds no item")
        runs.append(run)
    return runs


def _read_source(run: Run, source: str, args: CompareArguments) -> None:
    prefix = _PREFIX.match(source)
    task, language, path_text = (prefix.group(1), prefix.group(2), prefix.group(3)) if prefix else \
        (args.task, args.language, source)
    path = Path(path_text).expanduser()
    if path.is_dir():
        path = path / "predictions.jsonl"
        if not path.is_file():
            raise UserError(f"--runs {run.name}: {path_text} has no predictions.jsonl; give an evaluation folder "
                            f"(python {{task}}/evaluate.py writes one), a predictions.jsonl or a per-item CSV")
    if not path.is_file():
        raise UserError(f"--runs {run.name}: {path_text} does not exist")
    if path.suffix.lower() == ".csv":
        if not task or not language:
            raise UserError(f"--runs {run.name}: say what {path_text} holds: prefix it with TASK/LANGUAGE: "
                            f"(e.g. generation/python:{path_text}) or give --task and --language")
        rows = _read_csv(path, args.id_column)
    else:
        if prefix:
            raise UserError(f"--runs {run.name}: TASK/LANGUAGE: applies to CSV sources only; {path_text} says "
                            f"what each item is")
        rows = _read_predictions(path, run)
    seen = set()
    for key, values in rows:
        key = (task, language, key) if isinstance(key, str) else key
        if key in seen:
            raise UserError(f"--runs {run.name}: item {'/'.join(key)} appears twice in {path_text}; each item may "
                            f"be scored once per run")
        seen.add(key)
        # other sources may hold other metrics of the same items (the study's lizard, PMD and SonarCloud files)
        earlier = run.items.setdefault(key, {})
        if twice := sorted(earlier.keys() & values.keys()):
            raise UserError(f"--runs {run.name}: item {'/'.join(key)} has {twice[0]} in two of "
                            f"{', '.join(run.sources)}; each metric of an item may be given once per run")
        earlier.update(values)


def _read_predictions(path: Path, run: Run):
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (row["task"], row.get("language", row.get("direction")), str(row["id"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"--runs {run.name}: {path} line {number} is not a prediction row with id, task and "
                                f"language/direction; give the predictions.jsonl an evaluation wrote") from None
            if key[1] is None:
                raise UserError(f"--runs {run.name}: {path} line {number} has no language or direction")
            values = {}
            for group, is_quality in (("scores", False), ("quality", True)):
                for metric, value in (row.get(group) or {}).items():
                    if value is None or isinstance(value, (bool, int, float)):
                        values[metric] = None if value is None else float(value)
                        if is_quality:
                            run.quality.add(metric)
            yield key, values


def _read_csv(path: Path, id_column: str | None):
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise UserError(f"{path} is empty: a per-item CSV has a header row (an id column, one column per metric)")
    id_name = id_column or header[0]
    if id_name not in header:
        raise UserError(f"--id_column {id_name}: {path} has no such column; its columns are {', '.join(header)}")
    rows = list(reader)
    metrics = [c for c in header if c != id_name and all(_number(r.get(c)) is not _NOT_A_NUMBER for r in rows)]
    if not metrics:
        raise UserError(f"{path} has no numeric column besides its id column {id_name}")
    for row in rows:
        yield str(row[id_name]).strip(), {m: _number(row[m]) for m in metrics}


_NOT_A_NUMBER = object()


def _number(text):
    """A CSV cell as a float; None for an empty or NA cell; _NOT_A_NUMBER for text."""
    if text is None or text.strip() in ("", "NA", "NaN", "nan"):
        return None
    if text.strip().lower() in ("true", "false"):
        return float(text.strip().lower() == "true")
    try:
        return float(text)
    except ValueError:
        return _NOT_A_NUMBER

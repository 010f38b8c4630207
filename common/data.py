"""Rows for each task: hub or local data -> one flat schema shared by every task.

Every row has the string columns of `ROW_FEATURES`: `task`, `language` (a language, or a direction like "java-cs"),
`id` (`{language}:{source id}`), `source` (code shown in the prompt), `summary` and `signature` (code written from a description) and
`reference` (the answer). Each task's `rows` (common.tasks) builds them from its data; this module holds what they
share: loading a task's split, sampling, the one-file evaluation sets, mixing tasks, the validation subset.
`--sample_size N` keeps N examples per data source, as the study did: per language of a code-to-text task, and N
pairs of a task over directions (each pair then used both ways).
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from pathlib import Path

import datasets

from common import tasks as registry
from common.errors import UserError
from common.languages import ALIASES
from common.sources import load_split, require_columns

logger = logging.getLogger(__name__)

ROW_FEATURES = datasets.Features(
    {name: datasets.Value("string") for name in ("task", "language", "id", "source", "summary", "signature", "reference")}
)


def make_row(task, language, rid, source="", summary="", signature="", reference="") -> dict:
    return {"task": task, "language": language, "id": f"{language}:{rid}", "source": source, "summary": summary,
            "signature": signature, "reference": reference}


def sample(dataset: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """n rows drawn with the seed (a shuffle, then the first n), or all with n = -1; ids added where missing."""
    if "id" not in dataset.column_names:  # positions in the source file, taken before shuffling
        dataset = dataset.add_column("id", list(range(len(dataset))))
    if n == -1 or n >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(n))


def usable(dataset: datasets.Dataset, columns: tuple[str, ...], what: str) -> datasets.Dataset:
    """Rows whose needed columns hold non-empty text; the others are skipped with a warning."""
    keep = [i for i, values in enumerate(zip(*(dataset[c] for c in columns)))
            if all(isinstance(v, str) and v.strip() for v in values)]
    if len(keep) < len(dataset):
        logger.warning("%s: skipped %d of %d rows with an empty or missing %s", what, len(dataset) - len(keep),
                       len(dataset), "/".join(columns))
        dataset = dataset.select(keep)
    return dataset


def load_task_split(spec, data, group: str, split: str) -> datasets.Dataset:
    """One split of a task's data: a task over languages reads the language's config; data over directions has none."""
    flag, source = spec.source(data)
    return load_split(source, group if spec.groups == "languages" else None, split, flag)


def task_rows(task: str, data, split: str, n: int, seed: int, language: str | None = None) -> list[dict]:
    """Rows of one task: per language or direction, or of one file's language.

    A per-language task's data given as one file holds one language: its `language` column, else its name (e.g.
    `..._java_v2.jsonl`, `CEPythonHumanLabel.jsonl`), else `language` (--language).
    """
    spec = registry.get(task)
    flag, source = spec.source(data)
    if spec.groups == "languages" and is_single_file(source):
        # an evaluation file: its items are paired with predictions (and with other runs) by `id`
        raw = load_split(source, None, split, flag)
        require_columns(raw, ("id",), source, flag)
        return spec.rows(data, file_language(source, flag, language, raw), split, n, seed, raw)
    return [row for group in spec.group_list(data) for row in spec.rows(data, group, split, n, seed, None)]


def is_single_file(source: str | None) -> bool:
    return bool(source) and Path(source).expanduser().is_file()


def file_language(path: str, flag: str, given: str | None = None, raw: datasets.Dataset | None = None) -> str:
    """The one language an evaluation file holds: its rows' `language` column, else its name, else `given`
    (--language). A `given` language the file contradicts is an error, not a relabelling."""
    name = Path(path).name
    found, by = set(), "its name"
    if raw is not None and "language" in raw.column_names:
        found, by = {ALIASES.get(str(v).strip().lower(), str(v)) for v in raw.unique("language")}, \
            "its `language` column"
    if len(found) != 1:
        found, by = {lang for lang, pattern in _LANGUAGE_IN_NAME.items() if pattern.search(name.lower())}, "its name"
    if len(found) == 1:
        (found_language,) = found
        if given and given != found_language:
            raise UserError(f"{flag}: {name} holds {found_language} (by {by}), not {given}: drop --language {given} "
                            f"or pass a {given} file")
        return found_language
    if given:
        return given
    raise UserError(f"{flag}: cannot tell which language {name} holds (no `language` column, and its name says "
                    f"{' and '.join(sorted(found)) or 'neither java nor python'}): pass --language java or "
                    f"--language python")


_LANGUAGE_IN_NAME = {"java": re.compile(r"java(?!script)"), "python": re.compile(r"python|(?<![a-z])py(?![a-z])")}


def build_split(tasks: list[str], data, split: str, seed: int, mix: bool) -> datasets.Dataset:
    """All rows of a split for some tasks; a mixture (`mix`) is concatenated and shuffled with the seed."""
    n = data.sample_size if split == "train" else data.val_sample_size
    rows = [r for task in tasks for r in task_rows(task, data, split, n, seed)]
    if not rows:
        raise UserError(f"no usable {split} examples for {', '.join(tasks)}: check the data paths and "
                        f"--languages/--directions")
    dataset = datasets.Dataset.from_list(rows, features=ROW_FEATURES)
    return dataset.shuffle(seed=seed) if mix else dataset


def count_rows(dataset: datasets.Dataset) -> dict[str, int]:
    """Examples per task/language, e.g. {"<task>/java": 40, ...}."""
    return dict(sorted(Counter(f"{t}/{l}" for t, l in zip(dataset["task"], dataset["language"])).items()))


def even_subset(dataset: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """Up to n rows split evenly over tasks, and within a task evenly over its languages or directions (a group
    with too few rows gives all it has, the others fill in); which rows, drawn with the seed; dataset order kept."""
    if n == -1 or n >= len(dataset):
        return dataset
    rng = random.Random(seed)
    groups: dict[str, dict[str, list[int]]] = {}
    for i, (task, group) in enumerate(zip(dataset["task"], dataset["language"])):
        groups.setdefault(task, {}).setdefault(group, []).append(i)
    chosen = []
    task_quota = _even_split(n, {task: sum(map(len, g.values())) for task, g in groups.items()})
    for task, quota in task_quota.items():
        for group, count in _even_split(quota, {g: len(idx) for g, idx in groups[task].items()}).items():
            idx = list(groups[task][group])
            rng.shuffle(idx)
            chosen += idx[:count]
    return dataset.select(sorted(chosen))


def _even_split(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """n shared out one at a time over the names in sorted order, skipping those that are full."""
    quota = dict.fromkeys(sorted(sizes), 0)
    while n > 0 and any(quota[k] < sizes[k] for k in quota):
        for key in quota:
            if n > 0 and quota[key] < sizes[key]:
                quota[key] += 1
                n -= 1
    return quota

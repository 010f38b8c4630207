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
    directions: str = field(default="java-cs,cs-java", metadata={"help": "Comma-separated: java-cs, cs-java."})
    num_samples: int = field(default=-1, metadata={"help": "Items per data source, shuffled with --seed (-1: all)."})
    benchmark: str = field(default="codexglue", metadata={"help": "Generation: codexglue, humaneval or codereval."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Default: 128 for summaries, 512 for code."})
    max_prompt_length: int = field(default=1024, metadata={"help": "Prompt tokens; longer code in the prompt is cut."})
    batch_size: int = field(default=8, metadata={"help": "Generation batch size."})
    timeout: float = field(default=10.0, metadata={"help": "Seconds per program when executing tests."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Default: {model_path}/eval-{task}-{benchmark or split}, or beside the predictions file."})
    seed: int = field(default=42, metadata={"help": "Sampling seed for --num_samples."})
    quality: bool = field(default=True, metadata={"help": "Measure code quality (pylint, radon, lizard)."})


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


# ---------------------------------------------------------------- items

def build_items(task: str, args: EvalArguments) -> list[dict]:
    """Rows (common.data schema) to evaluate, each with an `extra` dict for benchmark specifics (tests)."""
    data = DataArguments(summarization_dataset=args.summarization_dataset,
                         translation_dataset=args.translation_dataset, generation_dataset=args.generation_dataset,
                         languages=args.languages, directions=args.directions)
    tasks = ("summarization", "generation", "translation") if task == "multitask" else (task,)
    items = []
    for t in tasks:
        if t == "generation" and args.benchmark == "humaneval":
            items += _humaneval_items(args.num_samples)
        elif t == "generation" and args.benchmark == "codereval":
            from common.benchmarks import load_codereval

            items += load_codereval(args.generation_dataset, data.language_list)
        else:
            items += [dict(r, extra={}) for r in rows_module.task_rows(t, data, args.split, args.num_samples,
                                                                       args.seed)]
    if not items:
        raise UserError(f"nothing to evaluate for {task}: check the data paths, --split and --languages")
    return items


def _humaneval_items(n: int) -> list[dict]:
    from common.benchmarks import humaneval_signature, humaneval_summary, load_humaneval
    from common.data import remove_python_docstring

    problems = load_humaneval()
    problems = problems if n == -1 else problems[:n]
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


def read_predictions(path: str, items: list[dict]) -> tuple[list[dict], list[str], list[str], list[str]]:
    """Items restricted to those in the file, with their prompts (if given), raw outputs and answers.

    Rows are matched on `id`, and on `task` where the row has one (summarization and generation items share ids such
    as `python:7`). A row's raw `output` is re-extracted when present (as in this toolkit's own predictions.jsonl),
    otherwise its `prediction`: either way the same extraction every system gets.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--predictions_file: no such file: {file}")
    tasks_of: dict[str, set[str]] = {}
    for it in items:
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
    if not by_key:
        raise UserError(f"--predictions_file: {file} is empty")
    kept = [it for it in items if (it["id"], it["task"]) in by_key]
    if len(kept) < len(items):
        logger.warning("scoring the %d of %d items present in %s", len(kept), len(items), file)
    rows = [by_key[(it["id"], it["task"])] for it in kept]
    prompts = [r.get("prompt") or build_messages(it)[1]["content"] for r, it in zip(rows, kept)]
    raw = [r.get("output", r["prediction"]) for r in rows]
    answers = [extract_answer(it["task"], out, it["language"]) for out, it in zip(raw, kept)]
    return kept, prompts, raw, answers


# ---------------------------------------------------------------- scoring

def score(items: list[dict], answers: list[str], timeout: float, quality: bool) -> tuple[dict, list[dict], dict, list]:
    """(metrics, per-item scores, quality summary, per-item quality) grouped by task and language/direction."""
    from common import metrics as m

    per_item: list[dict] = [{} for _ in items]
    per_quality: list[dict | None] = [None for _ in items]
    results: dict = {}
    quality_summary: dict = {}
    notes = []
    for task in sorted({it["task"] for it in items}):
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            if it["task"] == task:
                groups.setdefault(it["language"], []).append(i)
        task_results = {}
        for group, idx in sorted(groups.items()):
            preds = [answers[i] for i in idx]
            refs = [items[i]["reference"] for i in idx]
            lang = answer_language(task, group)
            if task == "summarization":
                corpus, each = m.summarization_scores(preds, refs)
            else:
                corpus, each = m.code_scores(preds, refs, lang)
                tests = [i for i in idx if _program(items[i], answers[i]) is not None]
                if tests:  # pass@1 over the items that have tests; `executed` says how many
                    corpus["pass@1"], passed = _pass_at_1(items, answers, tests, timeout)
                    corpus["executed"] = len(tests)
                    for i in tests:
                        each[idx.index(i)]["pass@1"] = passed[i]
                if quality:
                    from common.quality import measure_quality, summarize_quality

                    q = measure_quality(preds, lang)
                    quality_summary.setdefault(task, {})[group] = summarize_quality(q, lang)
                    for i, qi in zip(idx, q):
                        per_quality[i] = qi
            task_results[group] = dict(corpus, n=len(idx))
            for i, e in zip(idx, each):
                per_item[i] = e
        task_results["overall"] = _overall(task_results)
        results[task] = task_results
    if any(it["task"] == "summarization" for it in items):
        ok, reason = m.meteor_status()
        if not ok:
            notes.append(f"meteor is absent: {reason}")
    return {"tasks": results, "notes": notes}, per_item, quality_summary, per_quality


def _overall(groups: dict) -> dict:
    """One group: its values. Several: item-weighted means of the groups' corpus values (e.g. Java and Python);
    pass@1 weighted by the executed items, over the groups that have it."""
    if len(groups) == 1:
        return dict(next(iter(groups.values())))
    out = {"n": sum(g["n"] for g in groups.values())}
    if any("executed" in g for g in groups.values()):
        out["executed"] = sum(g.get("executed", 0) for g in groups.values())
    for key in sorted({k for g in groups.values() for k in g} - {"n", "executed"}):
        weight = "executed" if key == "pass@1" else "n"
        having = [g for g in groups.values() if key in g]
        out[key] = sum(g[key] * g[weight] for g in having) / sum(g[weight] for g in having)
    return out


def _program(item: dict, answer: str) -> str | None:
    extra = item.get("extra") or {}
    if "humaneval" in extra:
        from common.benchmarks import humaneval_program

        return humaneval_program(extra["humaneval"], answer)
    if extra.get("test") and item["language"] == "python":
        return f"{answer}\n\n{extra['test']}\n"
    return None


def _pass_at_1(items, answers, idx, timeout) -> tuple[float, dict]:
    from common.execution import execute_programs

    results = execute_programs([_program(items[i], answers[i]) for i in idx], timeout=timeout)
    passed = {i: int(r.passed) for i, r in zip(idx, results)}
    return sum(passed.values()) / len(idx), passed


# ---------------------------------------------------------------- the recipe

def evaluate(task: str, argv: list[str] | None = None) -> dict:
    args = parse_eval_args(task, argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    items = build_items(task, args)
    out = Path(args.output_dir or _default_output_dir(task, args))
    if args.predictions_file:
        items, prompts, raw, answers = read_predictions(args.predictions_file, items)
        system = f"predictions from {args.predictions_file}"
    else:
        prompts, raw, answers, system = predict(items, args)
    logger.info("scoring %d items", len(items))
    metrics, per_item, quality, per_quality = score(items, answers, args.timeout, args.quality)
    report = {"task": task, "system": system, "model_path": args.model_path, "benchmark": args.benchmark,
              "split": args.split, "num_items": len(items), "metrics": metrics["tasks"], "quality": quality,
              "notes": metrics["notes"], "arguments": asdict(args)}
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
    return report


def _default_output_dir(task: str, args: EvalArguments) -> Path:
    what = args.benchmark if args.benchmark != "codexglue" else args.split
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
             f"- items: {report['num_items']}", ""]
    for task, groups in report["metrics"].items():
        keys = list(dict.fromkeys(k for g in groups.values() for k in g if k != "n"))
        lines += [f"## {task}", "", "| group | n | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for group, values in groups.items():
            cells = [_fmt(k, values.get(k)) for k in keys]
            lines.append(f"| {group} | {values['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    for task, groups in report["quality"].items():
        keys = sorted({k for g in groups.values() for k in g})
        lines += [f"## Code quality: {task}", "", "| group | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for group, values in groups.items():
            lines.append(f"| {group} | " + " | ".join(_fmt(k, values.get(k)) for k in keys) + " |")
        lines.append("")
    lines += ["## Metric definitions", "",
              "BLEU-family scores (bleu, sentence_bleu, chrf, rouge*, meteor, codebleu and its components) are on a "
              "0-100 scale; exact_match and pass@1 are fractions. bleu: corpus sacreBLEU; sentence_bleu: mean "
              "sentence-level sacreBLEU (as the study reports); rouge: rouge-score F1 with stemming; codebleu: the "
              "codebleu package (java / c_sharp / python); pass@1: greedy output, executed with the benchmark's "
              "tests in a separate process. `overall` over several languages or directions is the item-weighted "
              "mean of their corpus values.", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


FRACTIONS = ("exact_match", "pass@1", "parse_rate")  # the rest are 0-100 scores or counts


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

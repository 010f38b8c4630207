"""The evaluation recipe: items -> predictions (a model, or a predictions file) -> scores -> three output files.

    evaluate("multitask", argv)

Inference uses the training formatting (`common.prompts`, `common.encoding`): the same chat template, the same
prompt, greedy decoding, stopping at the end-of-turn token. `extract_answer` is applied identically to every system.
Outputs in --output_dir: predictions.jsonl (one row per item, with its own scores), metrics.json, report.md.
The steps live in their own modules: eval_args (flags), eval_items (test data, predictions files), scoring, report.

At scale: `--shard I/N` generates one N-th of the batches and stops; the same command without --shard scores the
shards' answers (common.eval_resume). Under torchrun / accelerate launch each process generates its shard on its
own device, and the first one then scores them all: the same files as one process writes.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

from common import cli, eval_resume
from common import tasks as registry
from common.args import MULTITASK, REPO_ROOT
from common.data import is_single_file
from common.errors import UserError
from common.eval_resume import EvaluationFolder, shard_file
from common.eval_args import OWN_DATA, EvalArguments, file_list, parse_eval_args, shard_of
from common.eval_items import build_items, read_predictions
from common.extraction import extract_answer
from common.files import write_json, write_lines, write_text
from common.report import render_report
from common.run_dir import LOCK_NAME, check_output_dir, locked, refuse_held_locks
from common.scoring import attach_verdicts, score

logger = logging.getLogger("common")


def evaluate(task: str, argv: list[str] | None = None, where: dict | None = None) -> dict:
    """Evaluate and write the three outputs; `where["out"]` is set to the output folder once it is known."""
    args = parse_eval_args(task, argv)
    cli.setup_logging()
    world = _distributed()
    if world is not None:
        if args.shard is not None:
            raise UserError(f"--shard {args.shard} under torchrun/accelerate launch: the {world[1]} processes split "
                            f"the batches themselves; drop --shard (or run one process per shard without a launcher)")
        if args.predictions_file:  # nothing to generate: one process scores
            return _evaluate_args(task, args, where) if world[0] == 0 else {}
        return _evaluate_distributed(task, args, where, *world)
    return _evaluate_args(task, args, where)


def _distributed() -> tuple[int, int] | None:
    """(rank, world size) when launched as one of several processes (torchrun, accelerate launch)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), size) if size > 1 else None


def _evaluate_distributed(task: str, args: EvalArguments, where: dict | None, rank: int, size: int) -> dict:
    """Each process generates its shard (on its own device: LOCAL_RANK), then process 0 scores them all."""
    import torch
    import torch.distributed as dist

    _evaluate_args(task, args, where, check_only=True)  # every process: a bad set-up fails now, not after generating
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():  # gloo: a CPU barrier whatever the device; a shard may generate for hours
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    if args.overwrite_output_dir and rank == 0:  # before any shard writes into the folder
        out = _output_dir(task, args)
        _check_output_dir(out, task, args)
        if out.is_dir():
            with locked(out, f"an evaluation ({task}/evaluate.py)"):
                folder = EvaluationFolder(out, args)
                folder.check(overwrite=True)
                folder.start_afresh()
    dist.barrier()
    keep = {"overwrite_output_dir": False}
    _evaluate_args(task, replace(args, shard=f"{rank}/{size}", export_codereval=None, **keep), where)
    dist.barrier()
    report = {}
    if rank == 0:
        out = _output_dir(task, args)
        missing = [r for r in range(size) if not (out / shard_file((r, size), finished=True)).exists()
                   and not (out / "metrics.json").exists()]
        if missing:  # another machine wrote them elsewhere: scoring here would generate them all again
            raise UserError(f"--output_dir {out}: the answers of process(es) {', '.join(map(str, missing))} are not "
                            f"there; on several machines the output folder must be one folder they all share")
        report = _evaluate_args(task, replace(args, **keep), where)
    dist.barrier()
    dist.destroy_process_group()
    return report


def _evaluate_args(task: str, args: EvalArguments, where: dict | None, check_only: bool = False) -> dict:
    """One evaluation, or one shard of it; `check_only`: every check that needs no model, then nothing."""
    shard = shard_of(args)
    dropped: list[dict] = []
    notes: list[str] = []
    try:
        items = build_items(task, args, dropped, notes)
    except UserError as exc:  # name the flag the user typed
        if args.test_dataset and task != MULTITASK:
            raise UserError(str(exc).replace(f"--{registry.get(task).data_flag}", "--test_dataset")) from None
        raise
    out = _output_dir(task, args)
    if args.predictions_file and (out / "predictions.jsonl").resolve() == Path(args.predictions_file).resolve():
        raise UserError(f"--output_dir {out} would overwrite the --predictions_file being scored; write elsewhere")
    _check_output_dir(out, task, args)
    if where is not None:
        where["out"] = out
    if args.export_codereval:
        _check_export_targets(args, items, out)
    if shard is not None:
        lock, others = f"{LOCK_NAME}-shard-{shard[0]}-of-{shard[1]}", LOCK_NAME
        what = "the shards' answers are being scored"
    else:
        lock, others, what = LOCK_NAME, f"{LOCK_NAME}-shard-*", "a shard is generating answers"
    execution = _sandbox(items, args)  # before the model loads (and before a shard generates): no sandbox, no scores
    if check_only:
        return {}
    with locked(out, f"an evaluation ({task}/evaluate.py{' --shard ' + args.shard if shard else ''})", name=lock):
        refuse_held_locks(out, others, what)
        folder = EvaluationFolder(out, args, shard)
        folder.check(args.overwrite_output_dir)
        if shard is not None:
            return _generate_shard(args, items, out, folder)
        report, answers = _evaluate(task, args, items, dropped, notes, out, folder, execution)
    if args.export_codereval:
        _export_codereval(task, args, items, answers, out)
    return report


def _evaluate(task: str, args: EvalArguments, items: list[dict], dropped: list[dict], notes: list[str], out: Path,
              folder: EvaluationFolder, execution: dict | None) -> tuple[dict, list[str]]:
    """Predictions (generated, or read from --predictions_file), their scores, and the three output files."""
    fingerprint = None
    if args.predictions_file:
        items, prompts, raw, answers = read_predictions(args.predictions_file, items, dropped, notes)
        system = f"predictions from {args.predictions_file}"
    else:
        prompts, raw, answers, system, fingerprint = predict(items, args, folder, notes)
    if args.codereval_results:
        attach_verdicts(items, answers, file_list(args.codereval_results), notes)
    logger.info("scoring %d items", len(items))
    metrics, per_item, quality, per_quality = score(items, answers, args, notes)
    test_files = {}
    for name in args.tasks:
        source = getattr(args, registry.get(name).data_flag)
        if is_single_file(source) and any(it["task"] == name for it in items):
            test_files[name] = str(Path(source).expanduser().resolve())
    executed = execution is not None and any("executed" in group for groups in metrics["tasks"].values()
                                             for group in groups.values())
    report = {"task": task, "system": system, "model_path": args.model_path, "benchmark": args.benchmark,
              "split": args.split, "test_files": test_files, "num_items": len(items), "metrics": metrics["tasks"],
              "quality": quality, "notes": metrics["notes"], "arguments": asdict(args),
              **({"execution": execution} if executed else {}),
              "evaluation_record": eval_resume.record(args, fingerprint)}
    out.mkdir(parents=True, exist_ok=True)
    write_lines(out / "predictions.jsonl", [
        {"id": it["id"], "task": it["task"],
         ("direction" if registry.get(it["task"]).groups == "directions" else "language"): it["language"],
         "prompt": p, "output": r, "prediction": a, "reference": it["reference"], "scores": s,
         **({"quality": q} if q is not None else {})}
        for it, p, r, a, s, q in zip(items, prompts, raw, answers, per_item, per_quality)])
    write_json(out / "metrics.json", report)
    write_text(out / "report.md", render_report(report))
    folder.finish()
    logger.info("wrote %s/{predictions.jsonl,metrics.json,report.md}", out)
    return report, answers


def _generate_shard(args: EvalArguments, items: list[dict], out: Path, folder: EvaluationFolder) -> dict:
    """One shard: its batches' raw outputs, recorded in its shard file; no scores (the run without --shard)."""
    if folder.finished:
        logger.info("%s holds the finished evaluation: shard %s has nothing to generate", out, args.shard)
        return {}
    predict(items, args, folder, [])
    folder.finish()
    logger.info("shard %s done: %d answers generated now, into %s; once every shard is done, the same command "
                "without --shard scores them all", args.shard, folder.generated, out)
    return {"shard": args.shard, "generated": folder.generated}


def _check_output_dir(out: Path, task: str, args: EvalArguments) -> None:
    """The output folder may not be, contain or lie inside a data set or another input; inside the evaluated run's
    folder it may lie (that is the default: {model_path}/eval-...), but not be or contain the model itself."""
    inputs = {f"--{registry.get(name).data_flag}": getattr(args, registry.get(name).data_flag) for name in args.tasks}
    if task != MULTITASK and args.test_dataset:
        inputs = {"--test_dataset": args.test_dataset}
    inputs.update({"--predictions_file": args.predictions_file, "--exclude_ids": args.exclude_ids,
                   "--pmd": args.pmd, "--bertscore_model": args.bertscore_model, "--side_model": args.side_model})
    check_output_dir(out, inputs)
    if args.model_path and Path(args.model_path).expanduser().exists():
        model = Path(args.model_path).expanduser().resolve()
        target = out.resolve()
        if target == model or model.is_relative_to(target):
            raise UserError(f"--output_dir {out} is or contains --model_path {args.model_path}: the evaluation "
                            f"would write among the model's files; pick another --output_dir")


def _sandbox(items: list[dict], args: EvalArguments) -> dict | None:
    """The isolation layers that will run the items' tests (None when nothing is executed here); refuses when this
    machine has no sandbox and --unsafe_execution was not given."""
    from common.scoring import executes_tests

    if args.codereval_results or not any(executes_tests(it) for it in items):
        return None
    from common.execution import sandbox_layers

    return sandbox_layers(args.unsafe_execution)


def _export_codereval(task: str, args: EvalArguments, items: list[dict], answers: list[str], out: Path) -> None:
    from common.codereval import export_codereval

    files = export_codereval(args.export_codereval, items, answers)
    spec = _codereval_task(items)
    data_flag = f"--{spec.data_flag}" if task == MULTITASK else "--test_dataset"
    rerun = (f"python {task}/evaluate.py --predictions_file {out / 'predictions.jsonl'} {data_flag} "
             f"{getattr(args, spec.data_flag)}" + (f" --exclude_ids {args.exclude_ids}" if args.exclude_ids else "")
             + (f" --language {args.language}" if args.language else "") + " --codereval_results "
             + ",".join(f"{f.name}_out.jsonl" for f in files))
    logger.info("wrote the CoderEval harness input %s; run CoderEval's Docker harness on it, then: %s",
                ", ".join(map(str, files)), rerun)


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
    inputs = [args.predictions_file, args.exclude_ids, *file_list(args.codereval_results)]
    source = Path(getattr(args, _codereval_task(items).data_flag)).expanduser()
    files = [*inputs, *(source.rglob("*") if source.is_dir() else [source])]
    taken = {Path(f).expanduser().resolve() for f in files if f} | {f.resolve() for f in outputs}
    for target in targets:
        if target.resolve() in taken:
            raise UserError(f"--export_codereval: {target} is one of this run's inputs or outputs; write the "
                            f"harness input elsewhere")


def _codereval_task(items: list[dict]):
    return registry.get(next(it["task"] for it in items if (it.get("extra") or {}).get("codereval_id") is not None))


def predict(items: list[dict], args: EvalArguments, folder: EvaluationFolder,
            notes: list[str]) -> tuple[list[str], list[str], list[str], str, str]:
    """(prompts, raw outputs, extracted answers, model description, generation fingerprint) from running the model;
    each batch's outputs are recorded in `folder` as they come, and those an earlier run recorded are reused."""
    from common.encoding import ChatFormat, fingerprint, fit_prompt, render_prompt
    from common.inference import generate
    from common.modeling import load_for_inference

    model, tokenizer, how = load_for_inference(args.model_path, args.merge_adapter)
    chat = ChatFormat.for_tokenizer(tokenizer)
    if chat.system_role_merged:
        notes.append("the model's chat template refuses a system message: the system prompt opens the first user "
                     "turn instead (as in training)")
    stop = sorted(set(chat.end_of_turn_ids) | ({tokenizer.eos_token_id} - {None}))
    prompts_text, ids = [], []
    for item in items:
        messages, prompt, _ = fit_prompt(item, tokenizer, args.max_prompt_length)
        prompts_text.append(render_prompt(tokenizer, messages))
        ids.append(prompt)
    budgets: dict[int, list[int]] = {}  # each task its own budget (summaries 128 tokens, code 512)
    for i, it in enumerate(items):
        budget = args.max_new_tokens if args.max_new_tokens is not None else registry.get(it["task"]).max_new_tokens
        budgets.setdefault(_within_context(budget, model, args, notes), []).append(i)
    keys = [eval_resume.item_key(it) for it in items]
    from common.training import library_versions

    # what loaded (4-bit or not, dtype, device) and the libraries that ran it decide the generations as much as the
    # model's files do: an evaluation resumed elsewhere must not mix in answers generated otherwise
    weights = next(model.parameters())
    # the device's type, not its index: shards on cuda:0 and cuda:1 compute the same answers
    runtime = {"4bit": bool(getattr(model, "is_loaded_in_4bit", False)), "dtype": str(weights.dtype),
               "device": weights.device.type, "versions": library_versions()}
    key = fingerprint({"model": eval_resume.model_stamp(args.model_path), "runtime": runtime, "items": keys,
                       "prompts": ids,
                       "budgets": sorted((b, chosen) for b, chosen in budgets.items())})
    folder.start(key)
    raw = [""] * len(items)
    for budget, chosen in sorted(budgets.items()):
        done = {n: folder.done[keys[i]] for n, i in enumerate(chosen) if keys[i] in folder.done}
        outs = generate(model, tokenizer, [ids[i] for i in chosen], stop, budget, args.batch_size,
                        desc=f"generate (up to {budget} tokens)", done=done,
                        on_batch=lambda batch, chosen=chosen: folder.record(
                            {keys[chosen[n]]: out for n, out in batch.items()}), shard=shard_of(args))
        for i, out in zip(chosen, outs):
            raw[i] = out
    answers = [extract_answer(it["task"], out, it["language"]) for it, out in zip(items, raw)]
    return prompts_text, raw, answers, how, key


def _within_context(budget: int, model, args: EvalArguments, notes: list[str]) -> int:
    """New tokens fit in the model's context after the longest prompt (--max_prompt_length): a larger budget is
    capped, with a warning and a note in metrics.json, rather than generating past what the model can attend to."""
    context = getattr(model.config, "max_position_embeddings", None)
    if not context or args.max_prompt_length + budget <= context:
        return budget
    room = context - args.max_prompt_length
    if room < 1:
        raise UserError(f"--max_prompt_length {args.max_prompt_length} fills the model's whole context of {context} "
                        f"tokens; use a smaller --max_prompt_length")
    message = (f"max_new_tokens {budget} capped to {room}: the model's context is {context} tokens and prompts take "
               f"up to --max_prompt_length {args.max_prompt_length}")
    if message not in notes:
        logger.warning("%s", message)
        notes.append(message)
    return room


def _output_dir(task: str, args: EvalArguments) -> Path:
    return Path(args.output_dir or _default_output_dir(task, args)).expanduser()


def _default_output_dir(task: str, args: EvalArguments) -> Path:
    what = args.benchmark if args.benchmark != OWN_DATA else args.split
    if task == MULTITASK and args.tasks != registry.default_mixture():  # two subsets must not share a folder
        what = f"{'+'.join(args.tasks)}-{what}"
    if task != MULTITASK:  # a test set given as one file: its name, so that two such files do not share a folder
        spec = registry.get(task)
        source = getattr(args, spec.data_flag)
        reads = args.benchmark == OWN_DATA or spec.benchmarks[args.benchmark].reads_data
        if source and reads and is_single_file(source):
            what = Path(source).stem
    if args.predictions_file:
        return Path(args.predictions_file).resolve().parent / f"eval-{task}-{what}-rescored"
    path = Path(args.model_path)
    if path.is_dir():
        return path / f"eval-{task}-{what}"
    return REPO_ROOT / "runs" / "eval" / f"{task}-{path.name.removesuffix('.gguf')}-{what}"


def run_cli(task: str, argv: list[str] | None = None) -> int:
    """Entry point of the evaluate.py scripts: 0 on success, 2 with one line on stderr for a user error."""
    where: dict = {}

    def hint() -> str:
        folder = f" in {where['out']}" if "out" in where else ""
        return f"rerun the same command to continue the evaluation{folder} from the answers already generated"

    return cli.run(lambda: evaluate(task, argv, where), hint)

"""The fine-tuning recipe every task script runs: parse -> data -> model (FFT or QLoRA) -> Trainer -> save.

    finetune("multitask", "qlora", argv)

Features: the study's flags and defaults; completion-only loss; evaluation and checkpoints every epoch's worth of
steps; best model (by eval_loss) loaded at the end; early stopping; per-task eval loss; processed-data cache;
run_config.json with every resolved argument.

The output folder (common.run_dir): checked before anything loads (never an input, inside one or containing one),
locked for the run, and reused only by the same run: a rerun whose result-changing arguments differ is refused, a
rerun of a finished run (run_complete.json, written last) returns its metrics without training, and an unfinished
one resumes from the last complete checkpoint (each marked by `checkpoint_complete`; interrupted saves are deleted).
Raises `UserError` (one line, exit code 2) for anything the user can fix.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from pathlib import Path

from common import checkpoints, cli, encoding, run_dir
from common import data as rows
from common.args import DEMO_MODEL_DIR, MULTITASK, RunArgs
from common.errors import UserError
from common.run_args import parse_args

logger = logging.getLogger("common")


def finetune(task: str, strategy: str, argv: list[str] | None = None, progress: dict | None = None) -> dict:
    """Train one model; returns the final train (and eval) metrics. `progress` (optional) receives "output_dir" as
    soon as it is known, for the hint printed on Ctrl-C."""
    run = parse_args(task, strategy, argv)
    training = run.training
    cli.setup_logging(logging.INFO if training.should_log else logging.WARNING)
    out = run_dir.check_output_dir(training.output_dir, _inputs(run))
    if run.model.demo and Path(run.model.base_model_name) == DEMO_MODEL_DIR and not DEMO_MODEL_DIR.exists():
        how = run_dir.overlap(out, DEMO_MODEL_DIR.resolve())  # built below: check_output_dir cannot see it yet
        if how:
            raise UserError(f"--output_dir {training.output_dir} {how} the --demo model folder {DEMO_MODEL_DIR}; "
                            f"pick another --output_dir")
    if progress is not None:
        progress["output_dir"] = str(out)
    overwrite = run.model.overwrite_output_dir
    if training.resume_from_checkpoint:
        resume = checkpoints.check_checkpoint(training.resume_from_checkpoint)
        if overwrite and Path(resume).expanduser().resolve().is_relative_to(out):
            raise UserError(f"--resume_from_checkpoint {resume} lies inside --output_dir {training.output_dir}, "
                            f"which --overwrite_output_dir would empty; resume from a copy or drop one of the flags")
    # One run per folder: every process of a distributed run checks, the first one holds the lock.
    lock = run_dir.locked(out, f"a training run ({task}/{strategy}_train.py)") if training.process_index == 0 \
        else contextlib.nullcontext(out)
    with lock:
        try:
            return _finetune(run, strategy, out, overwrite)
        finally:
            _end_distributed()


def _end_distributed() -> None:
    """Leave the process group explicitly: left to the interpreter's exit, gloo's teardown can abort a process
    ("terminate called without an active exception") after a run that succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _finetune(run: RunArgs, strategy: str, out: Path, overwrite: bool) -> dict:
    training = run.training
    fresh = "--overwrite_output_dir True starts fresh, or pick another --output_dir"
    if overwrite:
        run_dir.check_run_dir(out)  # never empties a folder that is not a run of this toolkit
    else:  # the steps follow from the data: compared once it is read, below
        run_dir.check_compatible(out, run.to_dict(), run_dir.RESULT_NEUTRAL | DERIVED, start_fresh=fresh)
        done = run_dir.read_complete(out)
        if done is not None:
            logger.info("already complete: %s holds a finished run with these arguments (--overwrite_output_dir "
                        "True to train again)", out)
            return dict(done.get("metrics") or {})
    if run.model.demo and Path(run.model.base_model_name) == DEMO_MODEL_DIR:
        from common.tiny_model import ensure_tiny_model

        with training.main_process_first(desc="build the tiny demo model"):
            ensure_tiny_model(DEMO_MODEL_DIR)

    from transformers import set_seed

    from common.modeling import build_model, load_tokenizer
    from common.training import build_trainer, set_eval_and_save_steps

    set_seed(training.seed)  # before the model: peft draws the LoRA init from the global RNG
    tokenizer = load_tokenizer(run.model, max_seq_length=run.data.max_seq_length)  # checks the model's files too
    with training.main_process_first(desc="prepare data"):
        train_set, val_set, stats, save_cache, handoff = prepare_data(run, tokenizer)
    stats["system_role_merged"] = encoding.system_role_merged(tokenizer)
    eval_set = None
    if val_set is not None:  # --eval_strategy no reads no validation split
        eval_set = rows.even_subset(val_set, run.data.eval_samples, training.seed)  # even over tasks and languages
        stats["counts"]["eval"] = rows.count_rows(eval_set)
    stats["steps_per_epoch"] = set_eval_and_save_steps(run, len(train_set))
    stats["world_size"] = training.world_size
    stats["global_batch_size"] = (training.per_device_train_batch_size * training.gradient_accumulation_steps
                                  * training.world_size)
    recorded = run_dir.recorded_world_size(out)
    if not overwrite and recorded not in (None, training.world_size):  # another global batch and data order
        raise UserError(f"--output_dir {out} holds a run trained by {recorded} processes, this one has "
                        f"{training.world_size}; rerun it with {recorded}, or: {fresh}")
    if not overwrite:
        run_dir.check_compatible(out, run.to_dict(), run_dir.RESULT_NEUTRAL, start_fresh=fresh)
    if training.resume_from_checkpoint:
        resume = training.resume_from_checkpoint
    elif overwrite:
        resume = None  # the previous run's checkpoints are removed below
    else:
        resume = checkpoints.last_complete_checkpoint(out)
    _log_plan(run, stats)

    model = build_model(strategy, run.model, run.strategy_args, training, tokenizer)  # FFT or QLoRA: ready to train
    trainer = build_trainer(run, model, tokenizer, _model_columns(train_set),
                            None if eval_set is None else _model_columns(eval_set),
                            eval_tasks=[] if eval_set is None else eval_set["task"])
    trainer.add_callback(checkpoints.checkpoint_marker_callback())
    if trainer.is_world_process_zero():  # everything checked: only now does the run write anything
        if overwrite:
            removed = run_dir.clear_run(out)
            if removed:
                logger.info("--overwrite_output_dir: removed the previous run in %s (%s)", out, ", ".join(removed))
        else:
            checkpoints.remove_incomplete_checkpoints(out)  # never loaded, never rotated by the Trainer
        save_cache()
        _write_run_config(run, stats)

    if resume:
        logger.info("resuming from %s (--overwrite_output_dir True to start over)", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    result.metrics.update(trainer.throughput(result.metrics.get("train_runtime", 0.0)))
    model.config.use_cache = True  # gradient checkpointing turned it off; inference wants it
    if trainer.is_fsdp_enabled:  # checkpoints stay sharded (resumable); the final model or adapter is saved whole
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model()  # QLoRA: the adapter; FFT: the full model; both with the tokenizer
    if strategy == "qlora" and trainer.is_world_process_zero():
        _check_adapter(out)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = dict(result.metrics)
    if training.eval_strategy != "no":
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if handoff is not None and training.local_process_index == 0:  # every process has read it long ago
        shutil.rmtree(handoff, ignore_errors=True)
    if trainer.is_world_process_zero():
        # any exception, on purpose: the model is saved, and no failure of a chart (a missing package, a font, a
        # full disk) may cost a finished run its completion marker
        try:
            from common.plots import write_loss_plot

            write_loss_plot(out)
        except Exception as exc:  # noqa: BLE001
            logger.warning("loss.png not written (%s: %s); the trained run is complete without it",
                           type(exc).__name__, exc)
        run_dir.write_complete(out, metrics)  # last: a folder with it holds a whole run
    logger.info("done: outputs in %s", training.output_dir)
    return metrics


def _check_adapter(out: Path) -> None:
    """A saved adapter without weights loads with a mere warning, as the untrained base: refuse to call it done."""
    from safetensors import safe_open

    path = out / "adapter_model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        if not any("lora_" in key for key in f.keys()):
            raise UserError(f"the adapter saved in {path} holds no LoRA weights (FSDP version 1 hides them from peft: "
                            f"train with configs/accelerate/fsdp_qlora.yaml, FSDP version 2, or with DDP)")


# Arguments fixed by the data (set_eval_and_save_steps): compared only once the data is read.
DERIVED = frozenset({"training.eval_steps", "training.save_steps"})


def _inputs(run: RunArgs) -> dict[str, str | None]:
    """The local paths a run reads, by flag: the output folder must stay apart from all of them."""
    from common.tasks import TASKS

    inputs = {"--base_model_name": run.model.base_model_name, "--config": run.model.config}
    for spec in TASKS.values():
        inputs[f"--{spec.data_flag}"] = getattr(run.data, spec.data_flag, None)
    return inputs




def prepare_data(run: RunArgs, tokenizer):
    """Tokenized train/validation sets (validation None under --eval_strategy no), their counts, a function that
    saves them to processed_data, and the folder they were handed to the other processes through (or None).

    Reused from processed_data when the data arguments match; saving is left to the caller, so that a run which
    fails before training leaves nothing behind.
    """
    evaluating = run.training.eval_strategy != "no"
    payload = {"task": run.task, "tasks": run.tasks, "seed": run.training.seed, "data": _data_fingerprint_args(run),
               "tokenizer": [run.model.base_model_name, len(tokenizer), tokenizer.chat_template]}
    if not evaluating:  # a cache without a validation split must never serve a run that evaluates
        payload["splits"] = ["train"]
    key = encoding.fingerprint(payload)
    folder = Path(run.training.output_dir) / "processed_data"
    names = ("train", "validation") if evaluating else ("train",)
    if run.data.save_processed_data:
        cached = encoding.load_processed(folder, key, names)
        if cached is not None:
            logger.info("reusing processed data from %s", folder)
            processed, stats = cached
            return (processed["train"], processed.get("validation"), dict(stats, reused_processed_data=True),
                    _nothing, None)
    # Several processes: the first one of each machine prepares the data (they run it first, main_process_first),
    # the others read what it saved. A cache like datasets' own, named by the same fingerprint as processed_data.
    handoff = handoff_folder(key, run.training.output_dir) if run.training.world_size > 1 else None
    if handoff is not None:
        shared = encoding.load_processed(handoff, key, names)
        if shared is not None:
            logger.info("processed data prepared by this machine's first process, read from %s", handoff)
            processed, stats = shared
            return processed["train"], processed.get("validation"), stats, _nothing, handoff

    counts, stats = {}, {"truncated": {}, "dropped": {}}
    splits = {}
    for split in ("train", "validation") if evaluating else ("train",):
        split_rows = rows.build_split(run.tasks, run.data, split, run.training.seed, mix=run.task == MULTITASK)
        encoded, split_stats = encoding.encode(split_rows, tokenizer, run.data.max_seq_length, desc=f"tokenize {split}")
        if len(encoded) == 0:
            raise UserError(f"every {split} example is longer than --max_seq_length {run.data.max_seq_length}")
        counts[split] = rows.count_rows(encoded)  # what is trained/evaluated: after dropping over-long examples
        splits[split] = encoded.remove_columns(["source", "summary", "signature", "reference"])
        stats["truncated"][split], stats["dropped"][split] = split_stats["truncated"], split_stats["dropped"]
    stats = {"counts": counts, **stats, "reused_processed_data": False}
    if handoff is not None and run.training.local_process_index == 0:
        import datasets

        encoding.save_processed(handoff, key, datasets.DatasetDict(splits), stats, payload)

    def save():
        if run.data.save_processed_data:
            import datasets

            encoding.save_processed(folder, key, datasets.DatasetDict(splits), stats, payload)
            logger.info("processed data saved to %s", folder)

    return splits["train"], splits.get("validation"), stats, save, handoff


def _nothing() -> None:
    pass


def handoff_folder(key: str, output_dir: str) -> Path:
    """Where a distributed run's first process on this machine leaves the processed data for the others (in the
    datasets cache, HF_DATASETS_CACHE; removed when the run finishes). Named by the data, the run (two runs on one
    machine never share it) and the machine (each machine's first process writes its own)."""
    import socket

    import datasets

    run = encoding.fingerprint({"output_dir": str(Path(output_dir).expanduser().resolve())})[:12]
    return (Path(datasets.config.HF_DATASETS_CACHE) / "code-llm-finetune-handoff"
            / f"{key}-{run}-{socket.gethostname()}")


def _data_fingerprint_args(run: RunArgs) -> dict:
    from common.tasks import get

    d = run.data
    fields = {k: getattr(d, k) for k in ("languages", "directions", "sample_size", "val_sample_size",
                                         "max_seq_length", "remove_docstring")}
    sources = [get(task).source(d) for task in run.tasks]
    fields["sources"] = sources
    fields["files"] = [encoding.source_stamp(path) for _, path in sources if path]
    return fields


def _model_columns(dataset):
    return dataset.select_columns(["input_ids", "labels"])


def _log_plan(run: RunArgs, stats: dict) -> None:
    t = run.training
    logger.info("%s %s on %s -> %s", run.task, run.strategy, run.model.base_model_name, t.output_dir)
    for split, counts in stats["counts"].items():
        logger.info("%s examples: %s", split, ", ".join(f"{k}={v}" for k, v in counts.items()))
    for what in ("truncated", "dropped"):
        for split, counts in stats[what].items():
            if counts:
                logger.info("%s %s (over --max_seq_length %d): %s", split, what, run.data.max_seq_length,
                            ", ".join(f"{k}={v}" for k, v in counts.items()))
    for note in run.notes:
        logger.info(note)
    per_process = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if t.world_size > 1:  # the study's runs were one process: the same flags on N processes take N times the batch
        logger.warning("global batch %d = %d per device x %d accumulation x %d processes: %d times the batch these "
                       "flags give one process%s", stats["global_batch_size"], t.per_device_train_batch_size,
                       t.gradient_accumulation_steps, t.world_size, t.world_size,
                       "" if t.gradient_accumulation_steps % t.world_size else
                       f" (--gradient_accumulation_steps {t.gradient_accumulation_steps // t.world_size} keeps "
                       f"{per_process})")
    if t.eval_strategy == "no":
        logger.info("--eval_strategy no: no evaluation, no best-model loading, no early stopping")
    else:
        logger.info("steps per epoch %d; evaluating every %s and saving every %s steps", stats["steps_per_epoch"],
                    t.eval_steps, t.save_steps)
    total = t.max_steps if t.max_steps > 0 else math.ceil(stats["steps_per_epoch"] * t.num_train_epochs)
    if t.warmup_steps >= total:
        logger.warning("--warmup_steps %s >= the %d training steps: the learning rate never reaches %g",
                       t.warmup_steps, total, t.learning_rate)


def _write_run_config(run: RunArgs, stats: dict) -> None:
    from common.files import write_json
    from common.training import git_revision, library_versions

    out = Path(run.training.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run_config.json", {"arguments": run.to_dict(), "versions": library_versions(),
                                          "git_revision": git_revision(), **stats})


def run_cli(task: str, strategy: str, argv: list[str] | None = None) -> int:
    """Entry point of the task scripts: 0 on success, 2 with one line on stderr for a user error, 130 on Ctrl-C."""
    progress: dict = {}

    def interrupted() -> str:
        where = progress.get("output_dir")
        return (f"rerun the same command to resume from the last complete checkpoint in {where}" if where
                else "rerun the same command to start again")

    return cli.run(lambda: finetune(task, strategy, argv, progress), interrupted_hint=interrupted)

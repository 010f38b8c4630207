"""The fine-tuning recipe every task script runs: parse -> data -> model (FFT or QLoRA) -> Trainer -> save.

    finetune("multitask", "qlora", argv)

Features: the study's flags and defaults; completion-only loss; evaluation and checkpoints every epoch's worth of
steps; best model (by eval_loss) loaded at the end; early stopping; per-task eval loss; automatic resume from the
last checkpoint in --output_dir; processed-data cache; run_config.json with every resolved argument.
Raises `UserError` (one line, exit code 2) for anything the user can fix.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from common import cli, encoding
from common import data as rows
from common.args import DEMO_MODEL_DIR, MULTITASK, RunArgs
from common.errors import UserError
from common.run_args import parse_args

logger = logging.getLogger("common")


def finetune(task: str, strategy: str, argv: list[str] | None = None) -> dict:
    """Train one model; returns the final train (and eval) metrics."""
    run = parse_args(task, strategy, argv)
    training = run.training
    cli.setup_logging(logging.INFO if training.should_log else logging.WARNING)
    if run.model.demo and Path(run.model.base_model_name) == DEMO_MODEL_DIR:
        from common.tiny_model import ensure_tiny_model

        with training.main_process_first(desc="build the tiny demo model"):
            ensure_tiny_model(DEMO_MODEL_DIR)

    from transformers import set_seed

    from common.modeling import build_model, load_tokenizer
    from common.training import build_trainer, set_eval_and_save_steps

    set_seed(training.seed)  # before the model: peft draws the LoRA init from the global RNG
    tokenizer = load_tokenizer(run.model)
    with training.main_process_first(desc="prepare data"):
        train_set, val_set, stats, save_cache = prepare_data(run, tokenizer)
    eval_set = rows.even_subset(val_set, run.data.eval_samples, training.seed)  # even over tasks and languages
    stats["counts"]["eval"] = rows.count_rows(eval_set)
    stats["steps_per_epoch"] = set_eval_and_save_steps(run, len(train_set))
    stats["world_size"] = training.world_size
    _log_plan(run, stats)

    model = build_model(strategy, run.model, run.strategy_args, training, tokenizer)  # FFT or QLoRA: ready to train
    trainer = build_trainer(run, model, tokenizer, _model_columns(train_set), _model_columns(eval_set),
                            eval_tasks=eval_set["task"])
    if trainer.is_world_process_zero():  # everything checked: only now does the run write anything
        save_cache()
        _write_run_config(run, stats)

    resume = training.resume_from_checkpoint or _last_checkpoint(training.output_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    model.config.use_cache = True  # gradient checkpointing turned it off; inference wants it
    trainer.save_model()  # QLoRA: the adapter; FFT: the full model; both with the tokenizer
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = dict(result.metrics)
    if training.eval_strategy != "no":
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    logger.info("done: outputs in %s", training.output_dir)
    return metrics


def prepare_data(run: RunArgs, tokenizer):
    """Tokenized train/validation sets, their counts, and a function that saves them to processed_data.

    Reused from processed_data when the data arguments match; saving is left to the caller, so that a run which
    fails before training leaves nothing behind.
    """
    payload = {"task": run.task, "tasks": run.tasks, "seed": run.training.seed, "data": _data_fingerprint_args(run),
               "tokenizer": [run.model.base_model_name, len(tokenizer), tokenizer.chat_template]}
    key = encoding.fingerprint(payload)
    folder = Path(run.training.output_dir) / "processed_data"
    if run.data.save_processed_data:
        cached = encoding.load_processed(folder, key)
        if cached is not None:
            logger.info("reusing processed data from %s", folder)
            processed, stats = cached
            return processed["train"], processed["validation"], dict(stats, reused_processed_data=True), _nothing

    counts, stats = {}, {"truncated": {}, "dropped": {}}
    splits = {}
    for split in ("train", "validation"):
        split_rows = rows.build_split(run.tasks, run.data, split, run.training.seed, mix=run.task == MULTITASK)
        encoded, split_stats = encoding.encode(split_rows, tokenizer, run.data.max_seq_length, desc=f"tokenize {split}")
        if len(encoded) == 0:
            raise UserError(f"every {split} example is longer than --max_seq_length {run.data.max_seq_length}")
        counts[split] = rows.count_rows(encoded)  # what is trained/evaluated: after dropping over-long examples
        splits[split] = encoded.remove_columns(["source", "summary", "signature", "reference"])
        stats["truncated"][split], stats["dropped"][split] = split_stats["truncated"], split_stats["dropped"]
    stats = {"counts": counts, **stats, "reused_processed_data": False}

    def save():
        if run.data.save_processed_data:
            import datasets

            encoding.save_processed(folder, key, datasets.DatasetDict(splits), stats, payload)
            logger.info("processed data saved to %s", folder)

    return splits["train"], splits["validation"], stats, save


def _nothing() -> None:
    pass


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


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not Path(output_dir).is_dir():
        return None
    last = get_last_checkpoint(output_dir)
    if last:
        logger.info("resuming from %s (delete it or pick another --output_dir to start over)", last)
    return last


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
    """Entry point of the task scripts: 0 on success, 2 with one line on stderr for a user error."""
    return cli.run(lambda: finetune(task, strategy, argv))

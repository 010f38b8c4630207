"""Trainer set-up: steps per epoch, batching (padding-free or padded), per-task eval loss without holding logits,
early stopping, throughput (tokens trained on, padding, peak memory), run records."""

from __future__ import annotations

import logging
import math
import os
import platform
import resource
import subprocess
import time

import torch
import torch.nn.functional as F
from transformers import (DataCollatorForSeq2Seq, DataCollatorWithFlattening, EarlyStoppingCallback, Trainer,
                          TrainingArguments)

from common.args import REPO_ROOT, RunArgs
from common.encoding import IGNORE_INDEX
from common.errors import UserError

logger = logging.getLogger(__name__)


def steps_per_epoch(num_examples: int, training: TrainingArguments) -> int:
    """Optimizer steps in one epoch: ceil(examples / (device batch x accumulation x world size))."""
    per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size
    return max(1, math.ceil(num_examples / per_step))


def set_eval_and_save_steps(run: RunArgs, num_train: int) -> int:
    """Evaluate and checkpoint every epoch's worth of steps unless --eval_steps/--save_steps were given."""
    spe = steps_per_epoch(num_train, run.training)
    training, given = run.training, run.given
    eval_steps = training.eval_steps if "eval_steps" in given else None
    save_steps = training.save_steps if "save_steps" in given else None
    # a missing one follows the given one, so checkpoints line up with evaluations (needed to load the best)
    training.eval_steps = _steps(eval_steps or save_steps or spe)
    training.save_steps = _steps(save_steps or eval_steps or spe)
    if training.load_best_model_at_end and training.save_steps % training.eval_steps:
        raise UserError(f"--save_steps {training.save_steps} must be a multiple of --eval_steps "
                        f"{training.eval_steps} to load the best model at the end")
    return spe


def _steps(value: float) -> float | int:
    """Whole step counts as ints (1.0 -> 1); fractions of training (0.1) stay as HF reads them."""
    return int(value) if value >= 1 else value


def per_example_loss(logits, labels):
    """Reduce a batch's logits to (summed token loss, token count) per example, so evaluation keeps no logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    out = []
    for row_logits, row_labels in zip(logits, labels):  # one example at a time bounds the fp32 copy
        target = row_labels[1:]
        loss = F.cross_entropy(row_logits[:-1].float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
        out.append(torch.stack([loss, (target != IGNORE_INDEX).sum().float()]))
    return torch.stack(out)


def per_task_metrics(tasks: list[str]):
    """compute_metrics: token-level eval loss per task (logged as eval_{task}_loss), in eval-set order."""

    def compute(prediction) -> dict:
        stats = prediction.predictions
        if len(stats) != len(tasks):
            logger.warning("per-task loss skipped: %d predictions for %d examples", len(stats), len(tasks))
            return {}
        totals: dict[str, list[float]] = {}
        for task, (loss, count) in zip(tasks, stats):
            acc = totals.setdefault(task, [0.0, 0.0])
            acc[0] += float(loss)
            acc[1] += float(count)
        return {f"{task}_loss": loss / count for task, (loss, count) in sorted(totals.items()) if count}

    return compute


def padded_collator(tokenizer) -> DataCollatorForSeq2Seq:
    """Batches padded to their longest example (a multiple of 8), padding masked out of attention and loss."""
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=8)


class FlatCollator(DataCollatorWithFlattening):
    """Padding-free batches: the examples of a batch as one row, position ids restarting per example (attention stays
    within each example); each example's first label is masked, so none is trained to continue the one before it.

    `use_cache=False` goes with every batch: transformers builds the per-example (block-diagonal) attention mask from
    the position ids only when the forward pass has no cache, and Qwen2 creates one whenever `use_cache` is on, even
    in training; with it the examples of a batch would attend to each other (measured: another loss)."""

    def __call__(self, features, return_tensors=None, separator_id=None):
        batch = super().__call__(features, return_tensors, separator_id)
        batch["use_cache"] = False
        return batch


def flat_collator() -> FlatCollator:
    return FlatCollator(separator_id=IGNORE_INDEX)


class TaskTrainer(Trainer):
    """The Trainer with its own training collator (padding-free batches train, while evaluation stays padded, one row
    per example, for the per-example losses) and a count of the tokens it trains on."""

    def __init__(self, *args, train_collator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_collator = train_collator
        self.tokens = [0, 0]  # real tokens, positions computed (padding included), in this process
        self._since_log = None  # (tokens, time) at the last training log

    def save_model(self, output_dir=None, _internal_call=False):
        # FSDP with sharded checkpoints: the Trainer looks for the best checkpoint's folder right after this call, and
        # the shards (and their folder) are written later; processes that disagree on it hang in different collectives
        if self.is_fsdp_enabled and _internal_call and output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
        super().save_model(output_dir, _internal_call=_internal_call)

    def get_train_dataloader(self):
        if self.train_collator is None:
            return super().get_train_dataloader()
        padded, self.data_collator = self.data_collator, self.train_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = padded

    def training_step(self, model, inputs, num_items_in_batch=None):
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        self.tokens[0] += int(ids.numel() if mask is None else mask.sum())
        self.tokens[1] += int(ids.numel())
        if self._since_log is None:
            self._since_log = (0, time.monotonic())
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._since_log is not None:  # a training log: tokens/s since the previous one
            tokens, since = self._since_log
            now = time.monotonic()
            logs["tokens_per_second"] = round((self.tokens[0] - tokens) / max(now - since, 1e-9), 1)
            self._since_log = (self.tokens[0], now)
        super().log(logs, start_time)

    def _get_eval_sampler(self, eval_dataset):
        # the eval set in its own order whatever the training order (transformers' group_by_length reorders
        # evaluation too): the per-task losses are attributed by position; several processes: as the Trainer does
        if eval_dataset is None or self.args.world_size > 1:
            return None
        return torch.utils.data.SequentialSampler(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if logits is None or labels is None or self.compute_metrics is None:
            return loss, logits, labels
        # (summed loss, token count) per example and one label column: the Trainer concatenates what this returns
        # for every eval example, and the per-task losses need nothing else, so evaluation memory stays flat
        return loss, per_example_loss(logits, labels), labels[:, :1]

    def throughput(self, runtime: float) -> dict:
        """train_tokens (non-padding tokens trained on, all processes), train_tokens_per_second, padding_fraction
        (padding among the positions computed) and peak_memory_mb (CUDA: the most memory allocated on this process's
        device; CPU: this process's peak resident set). A resumed run counts from where it resumed."""
        counts = torch.tensor(self.tokens, dtype=torch.float64, device=self.accelerator.device)
        real, total = (float(v) for v in self.accelerator.reduce(counts, reduction="sum"))
        if torch.cuda.is_available():
            peak = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {"train_tokens": int(real), "train_tokens_per_second": round(real / runtime, 1) if runtime else 0.0,
                "padding_fraction": round(1 - real / total, 6) if total else 0.0, "peak_memory_mb": round(peak, 1)}


def build_trainer(run: RunArgs, model, tokenizer, train_dataset, eval_dataset, eval_tasks: list[str]) -> Trainer:
    training = run.training
    evaluating = training.eval_strategy != "no"
    callbacks = []
    if run.data.early_stopping_patience is not None and evaluating:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=run.data.early_stopping_patience,
                                               early_stopping_threshold=run.data.early_stopping_threshold or 0.0))
    return TaskTrainer(
        model=model,
        train_collator=flat_collator() if run.data.packing else None,
        args=training,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if evaluating else None,
        processing_class=tokenizer,
        data_collator=padded_collator(tokenizer),
        callbacks=callbacks,
        compute_metrics=per_task_metrics(eval_tasks) if evaluating else None,
    )


def library_versions() -> dict:
    import accelerate
    import datasets
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "datasets": datasets.__version__,
                "accelerate": accelerate.__version__}
    for name in ("peft", "bitsandbytes"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")

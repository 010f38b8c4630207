"""Peak memory of the Trainer's evaluation at 200 vs 2,000 validation items, set up as training sets it up.

Each setting runs in its own subprocess: a random Qwen2 scaled down to run on a CPU (2 layers, hidden 256, the tiny
tokenizer's vocabulary of 1,024), synthetic examples of realistic lengths (prompt 80-400 tokens, completion 16-112,
labels -100 on the prompt, at most 512 = --max_seq_length's default), and the Trainer from
`common.training.build_trainer` (its prediction_step keeps (summed loss, token count) and one label column per
example, per-task eval loss as compute_metrics, padding to a multiple of 8). After a warm-up evaluation on 16 items the
process's peak RSS is reset (`/proc/self/clear_refs`), and `trainer.evaluate()` runs on N items.

Measured: the resident set (RSS), which counts everything the evaluation holds in this process: the torch CPU
allocator's tensors (activations, logits, the labels and predictions the Trainer accumulates), numpy arrays and
Python objects alike; tracemalloc would miss the tensors. Printed: RSS before the evaluation, its peak during it, the
growth (peak - before, what the evaluation itself held at its worst), the ratios to the first setting, the labels the
Trainer accumulated for compute_metrics (`label_ids.nbytes`), and the eval losses. About 5 minutes on 2 CPU cores.

    python benchmarks/eval_memory.py [--items 200 2000] [--batch_size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_SEQ_LENGTH = 512
TASKS = ("summarization", "generation", "translation")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def synthetic_rows(n: int, vocab: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    rows = []
    for k in range(n):
        prompt = rng.randint(80, 400)
        answer = min(rng.randint(16, 112), MAX_SEQ_LENGTH - prompt)
        ids = [rng.randrange(3, vocab) for _ in range(prompt + answer)]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * prompt + ids[prompt:],
                     "task": TASKS[k % len(TASKS)]})
    return rows


def child(n: int, batch_size: int) -> dict:
    import datasets
    import torch
    from transformers import Qwen2ForCausalLM, TrainingArguments

    from common.tiny_model import build_tokenizer, qwen2_config, sample_texts
    from common.training import build_trainer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tokenizer = build_tokenizer(sample_texts())
    config = qwen2_config(tokenizer, hidden_size=256, intermediate_size=1024, num_attention_heads=8)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    rows = synthetic_rows(n, len(tokenizer), seed=0)
    warm_rows = synthetic_rows(16, len(tokenizer), seed=1)
    with tempfile.TemporaryDirectory(prefix="eval_memory-") as out:
        training = TrainingArguments(output_dir=out, per_device_eval_batch_size=batch_size, eval_strategy="steps",
                                     label_names=["labels"], report_to="none", use_cpu=True, disable_tqdm=True,
                                     dataloader_pin_memory=False)
        # the data flags build_trainer reads, at their defaults: no early stopping, no packing
        run = SimpleNamespace(training=training, data=SimpleNamespace(
            early_stopping_patience=None, early_stopping_threshold=None, packing=False))
        columns = ["input_ids", "attention_mask", "labels"]
        warm = datasets.Dataset.from_list(warm_rows).select_columns(columns)
        trainer = build_trainer(run, model, tokenizer, warm, warm, [r["task"] for r in warm_rows])
        trainer.evaluate()
        dataset = datasets.Dataset.from_list(rows)
        tasks = list(dataset["task"])
        dataset = dataset.select_columns(columns)
        trainer = build_trainer(run, model, tokenizer, dataset, dataset, tasks)
        held = {}
        compute = trainer.compute_metrics

        def measured(prediction):  # what the Trainer accumulated over the whole eval set for compute_metrics
            held["labels"] = prediction.label_ids.nbytes
            held["predictions"] = prediction.predictions.nbytes
            return compute(prediction)

        trainer.compute_metrics = measured
        del rows
        import gc

        gc.collect()
        before = _status_kib("VmRSS")
        _reset_peak()
        metrics = trainer.evaluate()
        peak = _status_kib("VmHWM")
    per_task = sorted(k for k in metrics if k.endswith("_loss") and k != "eval_loss")
    assert per_task, f"no per-task eval loss in {metrics}"
    return {"items": n, "before_kib": before, "peak_kib": peak, "eval_loss": metrics["eval_loss"], **held,
            "task_loss": metrics[per_task[0]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[200, 2000], help="eval set sizes (default 200 2000)")
    parser.add_argument("--batch_size", type=int, default=8, help="per_device_eval_batch_size (default 8)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch_size)))
        return 0
    results = []
    for n in args.items:
        command = [sys.executable, __file__, "--child", str(n), "--batch_size", str(args.batch_size)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first = results[0]
    print(f"Trainer.evaluate, random Qwen2 (2 layers, hidden 256, vocab 1,024), eval batch {args.batch_size}, "
          f"sequences up to {MAX_SEQ_LENGTH} tokens; MiB")
    print(f"{'items':>7}{'RSS before':>12}{'peak RSS':>10}{'growth':>9}{'peak x':>8}{'growth x':>10}"
          f"{'labels held':>13}{'eval_loss':>11}{'task loss':>11}")
    for r in results:
        growth, first_growth = r["peak_kib"] - r["before_kib"], first["peak_kib"] - first["before_kib"]
        print(f"{r['items']:>7}{r['before_kib'] / 1024:>12.1f}{r['peak_kib'] / 1024:>10.1f}{growth / 1024:>9.1f}"
              f"{r['peak_kib'] / first['peak_kib']:>8.2f}{growth / max(first_growth, 1):>10.2f}"
              f"{r['labels'] / 2 ** 20:>13.2f}{r['eval_loss']:>11.4f}{r['task_loss']:>11.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training tokens/s, padding and peak memory of each way to batch the same examples.

Trains a randomly initialised scaled-down Qwen2 (4 layers, hidden 256, 4 heads, 2 KV heads, intermediate 688, vocab
4096; sdpa attention; fp32 on a CPU, bf16 on a GPU), or with `--model PATH` a real model (bf16 on a GPU), for the same
optimizer steps (one epoch: 12 steps of 8 examples on a GPU, 8 steps on a CPU) over the same synthetic examples:
lengths drawn from a lognormal clipped to 120-1024 tokens (mean about 350), the first 40% of each example a prompt
masked out of the loss (labels -100). Variants, each in its own subprocess (this script runs itself with
`--variant NAME`), interleaved over `--rounds` rounds, the median tokens/s reported:

- default: the batching `common.run_args.choose_batching` picks for this attention (sdpa: padded, grouped by length;
  flash attention: padding-free, random order), through `common.training.TaskTrainer`;
- padded-random: padded to each batch's longest example, random order (the baseline, 1.0x);
- padding-free: `common.training.flat_collator()`, random order; padding-free+grouped: the same, grouped by length;
- original: the study's batching: every example padded to a fixed 512 tokens (the tokens past 512 truncated, as its
  tokenizer call with max_length 512 did) and the loss on every non-padding token, prompt included, random order;
- trl: TRL's SFTTrainer with padding_free=True, when `trl` is importable (nothing is installed for it).

Tokens/s counts the real (non-padding) tokens fed to the model, the same for every variant (the examples' total
length) except `original`, whose tokens past 512 are not trained (the table says how many). Padding % is padding among
the positions computed; peak MB is the subprocess's peak resident set on a CPU (ru_maxrss, Python and libraries
included) and `torch.cuda.max_memory_allocated` on a GPU. Activation checkpointing is off for every variant. The
rounds' range shows the noise of a shared machine; tokens per CPU-second (the process's CPU time while training, all
its threads) varies far less with other people's load there and ranks the variants on a busy CPU.

transformers' group_by_length sorts the examples by length within mega-batches of min(examples / 4, 50 x batch)
examples: with the default pool (steps x batch, every example once) it groups 2-3 batches at a time, far less than
over a real training set (400 at a time with batch 8); `--pool N` draws the steps from N examples (`--pool 1600`:
mega-batches of 400). About 3 minutes on 2 idle CPU cores with `--steps 5 --pool 400`.

    python benchmarks/training_throughput.py [--steps 5] [--batch 8] [--pool 400] [--rounds 2] [--model PATH]
    python benchmarks/training_throughput.py --model PATH [--attn_implementation flash_attention_2]   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("default", "padded-random", "padding-free", "padding-free+grouped", "original", "trl")
BASELINE = "padded-random"
FIXED_LENGTH = 512  # the study's max_seq_length, every example padded to it
MIN_LENGTH, MAX_LENGTH = 120, 1024
PROMPT_SHARE = 0.4
SMALL_QWEN2 = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)
TARGETS = ("default >= 1.3x padded-random and >= trl; padding fraction <= 2% padding-free, <= 10% grouped "
           "(padding-free+grouped and default)")


def example_lengths(count: int, seed: int = 0) -> list[int]:
    """Code-like lengths: lognormal (median 300 tokens, mean about 350 after clipping to 120-1024)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(n) for n in np.clip(rng.lognormal(np.log(300), 0.55, count), MIN_LENGTH, MAX_LENGTH)]


def examples(count: int, vocab: int, first_id: int, seed: int = 0) -> list[dict]:
    """Random token ids; the first 40% of each example is a prompt (labels -100)."""
    import numpy as np

    from common.encoding import IGNORE_INDEX

    rng = np.random.default_rng(seed + 1)
    rows = []
    for length in example_lengths(count, seed):
        ids = rng.integers(first_id, vocab, length).tolist()
        prompt = int(length * PROMPT_SHARE)
        rows.append({"input_ids": ids, "attention_mask": [1] * length,
                     "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return rows


def study_rows(rows: list[dict], pad_id: int) -> list[dict]:
    """The study's examples: truncated and padded to FIXED_LENGTH, labels = input_ids except padding."""
    from common.encoding import IGNORE_INDEX

    out = []
    for row in rows:
        ids = row["input_ids"][:FIXED_LENGTH]
        pad = FIXED_LENGTH - len(ids)
        out.append({"input_ids": ids + [pad_id] * pad, "attention_mask": [1] * len(ids) + [0] * pad,
                    "labels": ids + [IGNORE_INDEX] * pad})
    return out


def load(model_path: str | None, attention: str):
    """(model, tokenizer) on the GPU when there is one: the given model in bf16, or the small random Qwen2."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from common.args import DEMO_MODEL_DIR

    cuda = torch.cuda.is_available()
    if model_path:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if cuda else torch.float32,
                                                     attn_implementation=attention)
    else:
        if (DEMO_MODEL_DIR / "tokenizer.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
        else:
            from common.tiny_model import build_tokenizer, sample_texts

            tokenizer = build_tokenizer(sample_texts())
        torch.manual_seed(0)
        config = Qwen2Config(**SMALL_QWEN2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             bos_token_id=None)
        config._attn_implementation = attention
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to("cuda" if cuda else "cpu"), tokenizer


def training_arguments(out_dir: str, args, sampling: str):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=1e-4, warmup_steps=0, lr_scheduler_type="constant", weight_decay=0.0,
        train_sampling_strategy=sampling, bf16=torch.cuda.is_available(), logging_steps=args.steps,
        save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True, seed=0,
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(), activation_checkpointing=False,
    )


def pool_size(args) -> int:
    return args.pool or args.steps * args.batch


def timed_train(trainer) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `trainer.train()`, with the CUDA peak-memory counter reset before it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def run_variant(variant: str, args) -> dict:
    """Train one variant in this process; its tokens, seconds, padding fraction and peak memory."""
    from datasets import Dataset

    from common.run_args import choose_batching
    from common.training import TaskTrainer, flat_collator, padded_collator

    model, tokenizer = load(args.model, args.attn_implementation)
    vocab = min(model.config.vocab_size, tokenizer.vocab_size)  # ordinary tokens; added special ones lie above
    rows = examples(pool_size(args), vocab, first_id=16)  # the tiny tokenizer's specials are ids 0-2
    full_tokens = sum(len(row["input_ids"]) for row in rows)

    if variant == "trl":
        return run_trl(model, tokenizer, rows, args) | {"full_tokens": full_tokens}
    if variant == "default":
        values = {"attn_implementation": args.attn_implementation}
        note = choose_batching(values, set())
        packing, sampling = values["packing"], values["train_sampling_strategy"]
    else:
        note = ""
        packing = variant.startswith("padding-free")
        sampling = "group_by_length" if variant.endswith("+grouped") else "random"
    if variant == "original":
        rows = study_rows(rows, tokenizer.pad_token_id)
    if packing:
        rows = [{"input_ids": row["input_ids"], "labels": row["labels"]} for row in rows]
    with tempfile.TemporaryDirectory(prefix="training_throughput-") as out_dir:
        trainer = TaskTrainer(model=model, args=training_arguments(out_dir, args, sampling),
                              train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              data_collator=padded_collator(tokenizer),
                              train_collator=flat_collator() if packing else None)
        seconds, cpu_seconds = timed_train(trainer)
        measured = trainer.throughput(seconds)
    return {"tokens": measured["train_tokens"], "full_tokens": full_tokens, "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "padding_fraction": measured["padding_fraction"], "peak_mb": measured["peak_memory_mb"], "note": note}


def run_trl(model, tokenizer, rows: list[dict], args) -> dict:
    """TRL's SFTTrainer, padding-free, the prompt masked through `completion_mask`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"input_ids": row["input_ids"],
                               "completion_mask": [int(label != -100) for label in row["labels"]]} for row in rows])
    with tempfile.TemporaryDirectory(prefix="training_throughput-") as out_dir:
        base = training_arguments(out_dir, args, "random").to_dict()
        config = SFTConfig(**{key: base[key] for key in (
            "output_dir", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "learning_rate",
            "warmup_steps", "lr_scheduler_type", "weight_decay", "bf16", "logging_steps", "save_strategy",
            "report_to", "disable_tqdm", "seed")}, padding_free=True, max_length=None, completion_only_loss=True)
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
        seconds, cpu_seconds = timed_train(trainer)
    tokens = sum(len(row["input_ids"]) for row in rows)  # padding-free: every position is a real token
    return {"tokens": tokens, "seconds": seconds, "cpu_seconds": cpu_seconds, "padding_fraction": 0.0,
            "peak_mb": peak_memory_mb(), "note": ""}


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def child(variant: str, args) -> dict | str:
    """Run `--variant` in a fresh process: its result, or the reason it did not run."""
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--steps", str(args.steps),
               "--batch", str(args.batch), "--pool", str(args.pool), "--attn_implementation", args.attn_implementation]
    if args.model:
        command += ["--model", args.model]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: {tail[:150]}"
    return json.loads(lines[-1])


def trl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("trl") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="optimizer steps per variant (default 12 on a GPU, 8 on a CPU)")
    parser.add_argument("--batch", type=int, default=8, help="examples per step (default 8)")
    parser.add_argument("--pool", type=int, default=0, help=(
        "examples the steps draw from (default: steps x batch, every example once); group_by_length sorts within "
        "mega-batches of min(pool / 4, 50 x batch), so grouping needs a pool larger than one batch of them"))
    parser.add_argument("--rounds", type=int, default=2, help="runs of every variant, interleaved (default 2)")
    parser.add_argument("--model", help="a real model (folder or hub id) instead of the small random Qwen2")
    parser.add_argument("--attn_implementation", default="sdpa", help="sdpa (default) or flash_attention_2/3")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset to run")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # the subprocess's own variant
    args = parser.parse_args(argv)
    if args.steps is None:
        import torch

        args.steps = 12 if torch.cuda.is_available() else 8

    if args.variant:
        result = run_variant(args.variant, args)
        print(json.dumps(result))
        return 0

    chosen = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    skipped = {}
    if "trl" in chosen and not trl_available():
        skipped["trl"] = "skipped: trl not installed"
        chosen.remove("trl")
    lengths = example_lengths(pool_size(args))
    print(f"{len(lengths)} examples ({args.steps} steps x {args.batch} drawn from them), "
          f"lengths {min(lengths)}-{max(lengths)} "
          f"mean {statistics.mean(lengths):.0f}; {args.model or 'small random Qwen2'}, {args.attn_implementation}; "
          f"{args.rounds} rounds", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    start = time.perf_counter()
    for round_number in range(args.rounds):
        for name in chosen:
            if name in skipped:
                continue
            result = child(name, args)
            if isinstance(result, str):
                skipped[name] = result
                continue
            results[name].append(result)
            print(f"  round {round_number + 1} {name}: {result['tokens'] / result['seconds']:.0f} tokens/s "
                  f"({result['seconds']:.1f} s)", flush=True)

    rates = {name: statistics.median(r["tokens"] / r["seconds"] for r in runs) for name, runs in results.items()
             if runs and name not in skipped}
    cpu_rates = {name: statistics.median(r["tokens"] / r["cpu_seconds"] for r in runs) for name, runs in results.items()
                 if runs and name not in skipped}
    baseline, cpu_baseline = rates.get(BASELINE), cpu_rates.get(BASELINE)
    print(f"{'variant':<22}{'tokens/s':>10}{'x padded':>10}{'padding %':>11}{'peak MB':>9}  {'rounds':<12}"
          f"{'tok/CPU-s':>10}{'x padded':>10}  "
          f"({time.perf_counter() - start:.0f} s in all)")
    for name in VARIANTS:
        if name in skipped:
            print(f"{name:<22}{skipped[name]}")
        elif name in rates:
            last = results[name][-1]
            ratio = f"{rates[name] / baseline:.2f}" if baseline else "-"
            peak = max(r["peak_mb"] for r in results[name])
            each = [r["tokens"] / r["seconds"] for r in results[name]]
            print(f"{name:<22}{rates[name]:>10.0f}{ratio:>10}{100 * last['padding_fraction']:>11.1f}{peak:>9.0f}  "
                  f"{f'{min(each):.0f}-{max(each):.0f}':<12}{cpu_rates[name]:>10.0f}"
                  f"{cpu_rates[name] / cpu_baseline if cpu_baseline else 0:>10.2f}")
    for name, runs in results.items():
        if runs and runs[-1]["tokens"] != runs[-1]["full_tokens"] and pool_size(args) == args.steps * args.batch:
            run = runs[-1]
            print(f"{name}: trains {run['tokens']} of the examples' {run['full_tokens']} tokens "
                  f"({100 * (1 - run['tokens'] / run['full_tokens']):.1f}% cut at {FIXED_LENGTH})")
    if results.get("default"):
        print(results["default"][-1]["note"])
    if "default" in results or "padding-free+grouped" in results:
        print(f"group_by_length: mega-batches of {args.batch * max(1, min(len(lengths) // (4 * args.batch), 50))} "
              f"examples here")
    print(f"targets: {TARGETS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

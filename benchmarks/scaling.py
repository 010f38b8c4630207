"""Training throughput on 1 and N processes, FFT and QLoRA, through the training scripts a user runs.

Runs `multitask/{fft,qlora}_train.py` on the shipped samples for `--steps` optimizer steps (no evaluation, no
checkpoints), once as one plain process and once under each launcher in `--processes` (torchrun, or
`accelerate launch --config_file CONFIG` with `--accelerate_config`), and prints one table: tokens/s over all
processes (train_results.json's `train_tokens_per_second`: the non-padding tokens every process trained on, divided by
the training time), its ratio to one process, the peak memory of the first process (CUDA: memory allocated on its
GPU; CPU: its resident set), and the wall time of the whole command (loading included). Each process takes the same
per-device batch, so N processes train N times the examples per step: the ratio is the scaling of the throughput.

The model: `--model PATH` (a local model; on GPUs the scripts' defaults apply: bf16 where supported, QLoRA with bf16
compute), else a randomly initialised scaled-down Qwen2 (4 layers, hidden 256) on the tiny tokenizer, built in a
temporary folder. On a GPU machine this is the scripted check of the GPU path: device placement (each process on its
own GPU), bf16, the 4-bit CUDA kernels, NCCL, tokens/s and peak memory, for FFT and QLoRA:

    python benchmarks/scaling.py                                   # CPU: 1 vs 2 processes (gloo), about 2 minutes
    python benchmarks/scaling.py --model /models/Qwen2.5-Coder-0.5B-Instruct --processes 1,2,8 --steps 20
    python benchmarks/scaling.py --model M --processes 8 --strategies fft --accelerate_config configs/accelerate/fsdp.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(folder: Path) -> Path:
    """A scaled-down Qwen2 (4 layers, hidden 256) with random weights on the tiny model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from common.tiny_model import build_tiny_model, qwen2_config

    tiny = build_tiny_model(folder / "tiny")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(qwen2_config(tokenizer, hidden_size=256, intermediate_size=688,
                                                          num_hidden_layers=4))
    out = folder / "small-qwen2"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def command(strategy: str, processes: int, model: Path, out: Path, args) -> list[str]:
    script = f"multitask/{strategy}_train.py"
    if processes == 1:
        launch = [sys.executable]
    elif args.accelerate_config:
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate_config,
                  "--num_processes", str(processes)]
    else:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    flags = ["--base_model_name", str(model), "--summarization_dataset", str(ROOT / "data/samples/code_to_text"),
             "--translation_dataset", str(ROOT / "data/samples/code_to_code_trans"), "--output_dir", str(out),
             "--max_steps", str(args.steps), "--device_batch_size", str(args.batch), "--gradient_accumulation_steps",
             "1", "--eval_strategy", "no", "--save_strategy", "no", "--warmup_steps", "0", "--logging_steps", "1000",
             "--disable_tqdm", "True", "--report_to", "none"]
    if strategy == "qlora" and not _cuda():
        flags += ["--bnb_4bit_compute_dtype", "float32"]  # bf16 4-bit compute on a CPU is slow and not the study's
    return [*launch, script, *flags]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run(strategy: str, processes: int, model: Path, work: Path, args) -> dict:
    out = work / f"{strategy}-{processes}"
    started = time.monotonic()
    proc = subprocess.run(command(strategy, processes, model, out, args), cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[-300:]}
    results = json.loads((out / "train_results.json").read_text())
    config = json.loads((out / "run_config.json").read_text())
    return {"tokens_per_second": results["train_tokens_per_second"], "peak_mb": results["peak_memory_mb"],
            "wall": wall, "world_size": config["world_size"], "bf16": config["arguments"]["training"]["bf16"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a local model folder (default: a random scaled-down Qwen2)")
    parser.add_argument("--processes", default="2", help="comma-separated process counts besides 1 (default 2)")
    parser.add_argument("--strategies", default="fft,qlora")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4, help="per-device batch")
    parser.add_argument("--accelerate_config", help="launch with accelerate launch --config_file this, not torchrun")
    args = parser.parse_args(argv)
    counts = [1, *sorted({int(n) for n in args.processes.split(",") if int(n) > 1})]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else build_model(work)
        device = "CUDA" if _cuda() else "CPU"
        launcher = f"accelerate launch --config_file {args.accelerate_config}" if args.accelerate_config else "torchrun"
        print(f"{device}; model {args.model or 'scaled-down Qwen2 (random)'}; {args.steps} steps of {args.batch} per "
              f"device; N > 1 under {launcher}\n")
        print("| strategy | processes | tokens/s (all) | vs 1 process | peak MB (first process) | bf16 | wall s |")
        print("|---|---|---|---|---|---|---|")
        for strategy in args.strategies.split(","):
            base = None
            for n in counts:
                r = run(strategy, n, model, work, args)
                if "error" in r:
                    print(f"| {strategy} | {n} | failed: {r['error']} | | | | |", flush=True)
                    continue
                base = base or (r["tokens_per_second"] if n == 1 else None)
                ratio = f"{r['tokens_per_second'] / base:.2f}x" if base else "n/a"
                print(f"| {strategy} | {r['world_size']} | {r['tokens_per_second']:,.0f} | {ratio} | "
                      f"{r['peak_mb']:,.0f} | {r['bf16']} | {r['wall']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

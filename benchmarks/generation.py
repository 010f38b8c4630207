"""Greedy generation throughput of `common.inference.generate`: batched (left padding) vs one prompt at a time.

Generates for N chat prompts (the shipped sample functions, cut at varied lengths) twice, with --batch_size and with
batch size 1, checks that the outputs are identical, and prints items/s and the ratio to batch size 1. Every prompt
runs the whole --max_new_tokens budget (no stop token), so both modes do the same number of decoding steps.

By default the model is a random Qwen2 scaled down to run on a CPU (4 layers, hidden 256, the tiny tokenizer's
vocabulary; its matrices redrawn at std 0.1 so that greedy outputs depend on the prompt); --model loads a real model or
trained run the way evaluation does (`common.modeling.load_for_inference`, on the GPU when there is one).

    python benchmarks/generation.py [-n 32] [--batch_size 8] [--max_new_tokens 64] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from common.args import SAMPLES_DIR  # noqa: E402
from common.inference import generate  # noqa: E402


def scaled_down_qwen2(seed: int = 0):
    """(model, tokenizer): a random fp32 Qwen2 with 4 layers, hidden 256, and the tiny model's tokenizer."""
    from transformers import Qwen2ForCausalLM

    from common.tiny_model import build_tokenizer, qwen2_config, sample_texts

    tokenizer = build_tokenizer(sample_texts())
    config = qwen2_config(tokenizer, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                          num_attention_heads=8)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # at the default std (0.02) every prompt gives the same output
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.1)
    return model.eval(), tokenizer


def sample_prompts(tokenizer, n: int) -> list[list[int]]:
    """n tokenized chat prompts of different lengths from the shipped code-to-text samples."""
    rows = []
    for path in sorted((SAMPLES_DIR / "code_to_text").rglob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = []
    for k in range(n):
        row = rows[k % len(rows)]
        code = row["code"][: 60 + 37 * (k % 17)]
        messages = [{"role": "system", "content": "You are an expert developer."},
                    {"role": "user", "content": f"Summarize this {row['language']} function:\n{code}"}]
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                     return_dict=False))
    return prompts


def timed(model, tokenizer, prompts, max_new_tokens: int, batch_size: int) -> tuple[float, list[str]]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    outputs = generate(model, tokenizer, prompts, [], max_new_tokens, batch_size=batch_size)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=32, help="prompts (default 32)")
    parser.add_argument("--batch_size", type=int, default=8, help="batched mode's batch size (default 8)")
    parser.add_argument("--max_new_tokens", type=int, default=64, help="tokens generated per prompt (default 64)")
    parser.add_argument("--model", help="a model folder, hub id or trained run instead of the random model")
    args = parser.parse_args(argv)
    if args.model:
        from common.modeling import load_for_inference

        model, tokenizer, how = load_for_inference(args.model)
    else:
        model, tokenizer = scaled_down_qwen2()
        how = "random Qwen2, 4 layers, hidden 256, fp32"
    prompts = sample_prompts(tokenizer, args.n)
    timed(model, tokenizer, prompts[: args.batch_size], 4, args.batch_size)  # warm-up
    rows = {}
    for label, size in ((f"batch size {args.batch_size}", args.batch_size), ("batch size 1", 1)):
        rows[label] = timed(model, tokenizer, prompts, args.max_new_tokens, size)
    (_, batched), (_, single) = rows.values()
    differ = [i for i, (a, b) in enumerate(zip(batched, single)) if a != b]
    device = next(model.parameters()).device
    lengths = sorted(len(p) for p in prompts)
    print(f"{how} on {device}; {args.n} prompts of {lengths[0]}-{lengths[-1]} tokens, {args.max_new_tokens} new "
          f"tokens each; {len(set(single))} distinct outputs")
    print(f"{'mode':<16}{'items':>7}{'seconds':>10}{'items/s':>10}{'x bs 1':>9}")
    base = args.n / rows["batch size 1"][0]
    for label, (seconds, _) in rows.items():
        rate = args.n / seconds
        print(f"{label:<16}{args.n:>7}{seconds:>10.2f}{rate:>10.2f}{rate / base:>9.2f}")
    print(f"outputs identical: {'yes' if not differ else f'NO, {len(differ)} of {args.n} differ: {differ}'}")
    assert not differ, f"batched and one-at-a-time outputs differ for prompts {differ}"
    return 0


if __name__ == "__main__":
    sys.exit(main())

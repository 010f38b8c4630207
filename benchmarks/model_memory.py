"""Weights footprint of a Qwen2.5-0.5B-shaped model in bf16 (FFT) vs 4-bit (QLoRA's nf4 with double quantization).

Builds a model from Qwen2.5-0.5B's config (written out below; random weights, nothing downloaded), saves it in bf16 to
a temporary folder and loads it back twice: in bf16, and quantized by bitsandbytes as `common.modeling` builds the
QLoRA base (nf4, double quantization, bf16 compute; quantization happens as the weights load). Prints
`model.get_memory_footprint()` of each, the ratio, and the share of the embedding (tied with the output layer), which
bitsandbytes leaves in bf16. Runs on a CPU in about a minute and needs about 4 GB of memory and 1 GB of disk.

    python benchmarks/model_memory.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# Qwen/Qwen2.5-0.5B config.json
QWEN25_05B = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, hidden_act="silu", bos_token_id=151643, eos_token_id=151643,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN25_05B)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="model_memory-") as folder:
        model.save_pretrained(folder)
        del model
        bf16 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        rows["bf16 (FFT)"] = bf16.get_memory_footprint()
        del bf16
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        nf4 = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, dtype=torch.bfloat16,
                                                   device_map={"": "cpu"})
        assert getattr(nf4, "is_loaded_in_4bit", False), "the model did not load in 4-bit"
        rows["4-bit nf4 (QLoRA)"] = nf4.get_memory_footprint()
        del nf4
    gib = 1024 ** 3
    bf16_bytes = rows["bf16 (FFT)"]
    print(f"Qwen2.5-0.5B shape: {parameters / 1e6:.0f}M parameters, embedding (tied) {embedding / 1e6:.0f}M "
          f"= {2 * embedding / gib:.3f} GiB in bf16 either way; {time.perf_counter() - start:.0f} s")
    print(f"{'weights':<20}{'GiB':>8}{'x bf16':>9}")
    for label, size in rows.items():
        print(f"{label:<20}{size / gib:>8.3f}{size / bf16_bytes:>9.2f}")
    rest = [size - 2 * embedding for size in rows.values()]
    print(f"{'without embedding':<20}{'':>8}{rest[1] / rest[0]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

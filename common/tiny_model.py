"""A tiny Qwen2-shaped causal LM and a byte-level BPE tokenizer, built locally for tests and the offline demo.

The tokenizer is trained on the shipped sample data and uses ChatML (`<|im_start|>`/`<|im_end|>`), like Qwen2.5;
the model has random weights, 2 layers and hidden size 64, so a QLoRA step takes milliseconds on a CPU.

    python -m common.tiny_model runs/tiny-qwen2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common.args import SAMPLES_DIR
from common.prompts import CHATML_TEMPLATE

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def sample_texts(root: Path = SAMPLES_DIR) -> list[str]:
    texts = []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.extend(str(row[k]) for k in ("code", "docstring", "java", "cs") if k in row)
    return texts


def build_tokenizer(texts: list[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from common.tasks import TASKS

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    prompt_texts = [text for spec in TASKS.values() if spec.in_default_mixture for text in spec.tokenizer_texts]
    bpe.train_from_iterator(texts + prompt_texts + ["SUMMARY: DONE Summarize Generate expert developer"],
                            trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        model_max_length=2048)
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def qwen2_config(tokenizer, *, hidden_size: int = 64, intermediate_size: int = 128, num_hidden_layers: int = 2,
                 num_attention_heads: int = 4):
    """A small Qwen2 configuration on `tokenizer`: the tiny model's shape by default (the benchmarks scale it up)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )


def build_tiny_model(out_dir: str | Path, texts: list[str] | None = None, seed: int = 0) -> Path:
    """Write a tokenizer and a randomly initialised tiny Qwen2 model to `out_dir` (deterministic for a seed)."""
    import torch
    from transformers import Qwen2ForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(texts if texts is not None else sample_texts())
    config = qwen2_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def ensure_tiny_model(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if not (out_dir / "config.json").exists():
        build_tiny_model(out_dir)
    return out_dir


if __name__ == "__main__":
    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny-qwen2"))

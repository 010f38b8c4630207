"""Batched greedy generation (left padding, sorted by length) gives exactly the outputs of one prompt at a time."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SAMPLES

MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def lively_model(tiny_model, tmp_path_factory):
    """The tiny model with its matrices redrawn at std 0.3: at the default init (std 0.02) its greedy output is the
    same token whatever the prompt, which would hide a wrong padding or attention mask."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.3)
    out = tmp_path_factory.mktemp("models") / "lively-qwen2"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    """12 chat prompts of different lengths: the shipped Python and Java test functions, cut at varied lengths."""
    rows = []
    for language in ("python", "java"):
        lines = (SAMPLES / "code_to_text" / language / "test.jsonl").read_text(encoding="utf-8").splitlines()
        rows += [json.loads(line) for line in lines[:6]]
    out = []
    for n, row in enumerate(rows):
        code = row["code"][: 40 + 35 * n]
        messages = [{"role": "system", "content": "You are an expert developer."},
                    {"role": "user", "content": f"Summarize this {row['language']} function:\n{code}"}]
        out.append(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                 return_dict=False))
    lengths = [len(p) for p in out]
    assert len(set(lengths)) >= 10 and max(lengths) > 2 * min(lengths), lengths
    return out


def _generate(model, tokenizer, prompts, batch_size):
    from common.inference import generate

    # no stop ids: every prompt runs the whole budget, so every padded row is compared over MAX_NEW_TOKENS tokens
    return generate(model, tokenizer, prompts, [], MAX_NEW_TOKENS, batch_size=batch_size, desc="test")


def _assert_same(model, tokenizer, prompts):
    batched = _generate(model, tokenizer, prompts, 8)
    single = _generate(model, tokenizer, prompts, 1)
    assert all(batched), "every prompt generates something"
    assert len(set(single)) >= len(prompts) // 2, ("the outputs depend on the prompt", single)
    diff = [i for i, (a, b) in enumerate(zip(batched, single)) if a != b]
    assert not diff, [(i, batched[i], single[i]) for i in diff]


def test_batched_equals_one_at_a_time_fp32(lively_model, tokenizer, prompts):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lively_model, dtype=torch.float32).eval()
    _assert_same(model, tokenizer, prompts)


def test_batched_equals_one_at_a_time_qlora(lively_model, tokenizer, prompts):
    """The 4-bit base (nf4, double quantization, fp32 compute) with LoRA adapters that change the outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(lively_model, quantization_config=quantization, dtype=torch.float32,
                                                device_map={"": "cpu"})
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    model = get_peft_model(base, lora).eval()
    _assert_same(model, tokenizer, prompts)

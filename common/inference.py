"""Loading a trained run (or a base model) for inference, and batched greedy generation.

`--model_path` may be:
- a QLoRA training output (adapter_config.json): the base named there, loaded the way it was trained (4-bit with the
  run's quantization settings), plus the adapter; or, with `merge_adapter`, the base in its compute dtype with the
  adapter merged into it;
- an FFT output or any local model directory (config.json), a hub id, or a `.gguf` file.
The tokenizer comes from the run directory when it has one (it carries the chat template used in training).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from common.errors import UserError, first_line

logger = logging.getLogger(__name__)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load_for_inference(model_path: str, merge_adapter: bool = False):
    """(model, tokenizer, description) ready for `generate`."""
    from peft import PeftModel
    from transformers import AutoTokenizer, BitsAndBytesConfig

    from common.modeling import DTYPES, _load, model_source

    path = Path(os.path.expanduser(model_path))
    gpu = torch.cuda.is_available()
    if (path / "adapter_config.json").exists():
        adapter = _read_json(path / "adapter_config.json")
        run = _read_json(path / "run_config.json").get("arguments", {})
        qlora = run.get("qlora") or {}
        base = adapter.get("base_model_name_or_path") or run.get("model", {}).get("base_model_name")
        if base and not Path(base).exists() and run.get("model", {}).get("base_model_name"):
            base = run["model"]["base_model_name"]  # e.g. a GGUF cache folder that was cleared: convert again
        if not base:
            raise UserError(f"--model_path: {path}/adapter_config.json names no base model")
        source = model_source(base, "--model_path (its base model)")
        compute = DTYPES[qlora.get("bnb_4bit_compute_dtype", "bfloat16" if gpu else "float32")]
        if merge_adapter:
            model = _load(source, "--model_path", dtype=compute, device_map=_device_map(gpu))
            model = _adapter(PeftModel, model, path).merge_and_unload()
            how = f"{base} + adapter merged ({compute})"
        else:
            quantization = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=qlora.get("bnb_4bit_quant_type", "nf4"),
                bnb_4bit_use_double_quant=qlora.get("bnb_4bit_use_double_quant", True),
                bnb_4bit_compute_dtype=compute)
            model = _load(source, "--model_path", quantization_config=quantization, dtype=compute,
                          device_map=_device_map(gpu))
            model = _adapter(PeftModel, model, path)
            how = f"{base} in 4-bit + adapter"
        tokenizer_source = str(path) if (path / "tokenizer_config.json").exists() else source
    else:
        source = model_source(model_path, "--model_path")
        dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
        model = _load(source, "--model_path", dtype=dtype, device_map=_device_map(gpu))
        tokenizer_source, how = source, f"{model_path} ({dtype})"
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except OSError as exc:
        raise UserError(f"--model_path: cannot load a tokenizer from {tokenizer_source}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, how


def _adapter(peft_model, model, path: Path):
    try:
        return peft_model.from_pretrained(model, str(path))
    except (OSError, ValueError) as exc:  # e.g. adapter_model.safetensors missing
        raise UserError(f"--model_path: cannot load the adapter in {path}: {first_line(exc)}") from None


def _device_map(gpu: bool) -> dict:
    return {"": 0} if gpu else {"": "cpu"}


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], stop_ids: list[int], max_new_tokens: int,
             batch_size: int = 8, desc: str = "generate") -> list[str]:
    """Greedy completions of tokenized prompts, batched with left padding, stopping at any of `stop_ids`."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        batch = order[start: start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                   max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad,
                                   temperature=None, top_p=None, top_k=None)
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(_until_stop(generated[row, width:].tolist(), stop_ids),
                                          skip_special_tokens=True)
    return outputs


def _until_stop(tokens: list[int], stop_ids: list[int]) -> list[int]:
    for k, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:k]
    return tokens

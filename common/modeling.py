"""Models and tokenizers: the one place where full fine-tuning and QLoRA differ.

FFT: the full model in bf16 where the GPU supports it (fp32 otherwise), every weight trained, gradient checkpointing.
QLoRA: the base quantized to 4-bit by bitsandbytes (nf4 + double quantization, bf16 or fp32 compute), prepared with
`prepare_model_for_kbit_training`, LoRA adapters on the attention and MLP projections; only the adapters train.

Here too: each strategy's own flags (`STRATEGY_FLAGS`), defaults and checks, and loading a trained run back for
inference (`load_for_inference`: an adapter on its 4-bit base, or a full model).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

# harmless: it only says the optional `kernels` hub package is absent
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainingArguments  # noqa: E402

from dataclasses import dataclass, field  # noqa: E402

from common.args import ModelArguments  # noqa: E402
from common.encoding import ensure_chat_template  # noqa: E402
from common.errors import UserError, first_line  # noqa: E402
from common.gguf import is_gguf, resolve_model  # noqa: E402
from common.sources import OFFLINE_HINT, is_local  # noqa: E402

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class QLoraArguments:
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        metadata={"help": "Comma-separated module names that get LoRA adapters."},
    )
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "nf4 or fp4."})
    bnb_4bit_use_double_quant: bool = field(default=True, metadata={"help": "Quantize the quantization constants."})
    bnb_4bit_compute_dtype: str = field(default="bfloat16", metadata={"help": "bfloat16 or float32 (for CPUs)."})


STRATEGY_FLAGS = {"fft": None, "qlora": QLoraArguments}  # the flags each strategy adds to its scripts


def strategy_defaults(strategy: str) -> dict:
    """TrainingArguments defaults that depend on the strategy (applied where the user gave no value)."""
    # paged 8-bit AdamW (the study's, for QLoRA) needs CUDA; elsewhere plain AdamW (recorded in run_config.json)
    return {"optim": "paged_adamw_8bit" if strategy == "qlora" and torch.cuda.is_available() else "adamw_torch"}


def check_strategy(strategy: str, values: dict) -> None:
    """The strategy's own flag checks, on the parsed values (raises UserError)."""
    if strategy != "qlora":
        return
    if values["fp16"]:
        raise UserError("--fp16 is not supported with QLoRA: use --bf16 True (GPU) or fp32 (the default on CPU)")
    if values["bnb_4bit_compute_dtype"] not in DTYPES:
        raise UserError(f"--bnb_4bit_compute_dtype {values['bnb_4bit_compute_dtype']}: use bfloat16 or float32")
    if values["bnb_4bit_quant_type"] not in ("nf4", "fp4"):
        raise UserError(f"--bnb_4bit_quant_type {values['bnb_4bit_quant_type']}: use nf4 or fp4")


def model_source(name: str, flag: str = "--base_model_name") -> str:
    """Where to load a model from: hub id, local directory, or a `.gguf` file's converted checkpoint."""
    check_model_source(name, flag)
    return resolve_model(name)


def check_model_source(name: str, flag: str = "--base_model_name") -> None:
    """A local model path must exist and hold a model; hub ids are checked when loading."""
    if not is_local(name) or is_gguf(name):
        return
    path = Path(os.path.expanduser(name))
    if not path.exists():
        raise UserError(f"{flag}: no such directory: {path}")
    if not (path / "config.json").exists():
        raise UserError(f"{flag}: {path} holds no model (no config.json); "
                        f"pass a directory written by save_pretrained, or a hub id")


def _hub_error(name: str, exc: Exception, flag: str = "--base_model_name") -> UserError:
    return UserError(
        f"{flag}: could not load model '{name}' from the Hugging Face Hub: {first_line(exc)}. "
        f"Without network access pass a local model directory ({flag} PATH); {OFFLINE_HINT}"
    )


def load_tokenizer(args: ModelArguments):
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_source(args.base_model_name),
                                                  trust_remote_code=args.trust_remote_code)
    except OSError as exc:
        raise _hub_error(args.base_model_name, exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # labels are explicit, so padding never masks a trained token
    ensure_chat_template(tokenizer)  # saved with the run, so inference renders prompts exactly as training did
    return tokenizer


def build_model(strategy: str, args: ModelArguments, qlora: QLoraArguments | None, training: TrainingArguments,
                tokenizer):
    """The model to train: full weights (FFT) or a 4-bit base with LoRA adapters (QLoRA)."""
    source = model_source(args.base_model_name)
    common = {"trust_remote_code": args.trust_remote_code}
    if args.attn_implementation:
        common["attn_implementation"] = args.attn_implementation
    if strategy == "fft":
        model = _load(source, dtype=torch.bfloat16 if training.bf16 else torch.float32, **common)
        if training.activation_checkpointing:
            model.config.use_cache = False
    else:
        model = _build_qlora(source, qlora, training, common)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _load(name: str, flag: str = "--base_model_name", **kwargs):
    try:
        return AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise _hub_error(name, exc, flag) from None


def _build_qlora(source: str, qlora: QLoraArguments, training: TrainingArguments, common: dict):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    compute_dtype = DTYPES[qlora.bnb_4bit_compute_dtype]
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=qlora.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=qlora.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    model = _load(source, quantization_config=quantization, dtype=compute_dtype,
                  device_map=_device_map(training.local_process_index), **common)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            # On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for inference at the first eval/generate,
            # and the repack breaks the next training step
            module.support_avx512bf16_for_cpu = False
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=bool(training.activation_checkpointing),
        gradient_checkpointing_kwargs=training.activation_checkpointing_kwargs or {"use_reentrant": False},
    )
    targets = [m.strip() for m in qlora.lora_target_modules.split(",") if m.strip()]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise UserError(f"--lora_target_modules: {', '.join(missing)} not found in {source}")
    lora = LoraConfig(r=qlora.lora_r, lora_alpha=qlora.lora_alpha, lora_dropout=qlora.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("QLoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}",
                100 * trainable / total)
    return model


# ---------------------------------------------------------------- a trained run, for inference

def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load_for_inference(model_path: str, merge_adapter: bool = False):
    """(model, tokenizer, description) ready for `generate`."""
    from peft import PeftModel

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
            model = _load(source, "--model_path", dtype=compute, device_map=_device_map())
            model = _adapter(PeftModel, model, path).merge_and_unload()
            how = f"{base} + adapter merged ({compute})"
        else:
            quantization = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=qlora.get("bnb_4bit_quant_type", "nf4"),
                bnb_4bit_use_double_quant=qlora.get("bnb_4bit_use_double_quant", True),
                bnb_4bit_compute_dtype=compute)
            model = _load(source, "--model_path", quantization_config=quantization, dtype=compute,
                          device_map=_device_map())
            model = _adapter(PeftModel, model, path)
            how = f"{base} in 4-bit + adapter"
        tokenizer_source = str(path) if (path / "tokenizer_config.json").exists() else source
    else:
        source = model_source(model_path, "--model_path")
        dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
        model = _load(source, "--model_path", dtype=dtype, device_map=_device_map())
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


def _device_map(process_index: int = 0) -> dict:
    """The whole model on this process's GPU (each DDP process holds its own copy), or on the CPU."""
    return {"": process_index} if torch.cuda.is_available() else {"": "cpu"}

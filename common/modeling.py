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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainingArguments

from common.args import ModelArguments
from common.encoding import ensure_chat_template
from common.errors import UserError, first_line
from common.model_files import (TOKENIZER_FILES, check_attn_implementation, check_model_files, check_tokenizer,
                                hub_error, model_context, model_source)

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
STORAGE_DTYPES = {"uint8": torch.uint8, **DTYPES}


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
    bnb_4bit_quant_storage: str | None = field(default=None, metadata={
        "help": "The dtype the packed 4-bit weights are stored in: uint8, or under FSDP the compute dtype (FSDP "
                "shards float tensors only); default: that choice (recorded in run_config.json)."})


def fsdp_requested(values) -> bool:
    """FSDP asked for: by an accelerate config (accelerate launch sets ACCELERATE_USE_FSDP) or by --fsdp."""
    fsdp = values.get("fsdp") if isinstance(values, dict) else getattr(values, "fsdp", None)
    return bool(fsdp) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


STRATEGY_FLAGS = {"fft": None, "qlora": QLoraArguments}  # the flags each strategy adds to its scripts


def strategy_defaults(strategy: str) -> dict:
    """TrainingArguments defaults that depend on the strategy (applied where the user gave no value)."""
    # paged 8-bit AdamW (the study's, for QLoRA) needs CUDA; elsewhere plain AdamW (recorded in run_config.json)
    return {"optim": "paged_adamw_8bit" if strategy == "qlora" and torch.cuda.is_available() else "adamw_torch"}


def check_strategy(strategy: str, values: dict) -> None:
    """The strategy's own flag checks, on the parsed values (raises UserError); --attn_implementation too."""
    check_attn_implementation(values.get("attn_implementation"))
    if strategy != "qlora":
        return
    if values["lora_r"] < 1:
        raise UserError(f"--lora_r {values['lora_r']}: the LoRA rank must be a positive integer (e.g. 8)")
    if values["lora_alpha"] <= 0:
        raise UserError(f"--lora_alpha {values['lora_alpha']}: use a positive number (e.g. 16, twice --lora_r)")
    if not 0 <= values["lora_dropout"] < 1:
        raise UserError(f"--lora_dropout {values['lora_dropout']}: use a probability from 0 up to (not including) 1")
    if values["fp16"]:
        raise UserError("--fp16 is not supported with QLoRA: use --bf16 True (GPU) or fp32 (the default on CPU)")
    if values["bnb_4bit_compute_dtype"] not in DTYPES:
        raise UserError(f"--bnb_4bit_compute_dtype {values['bnb_4bit_compute_dtype']}: use bfloat16 or float32")
    if values["bnb_4bit_quant_type"] not in ("nf4", "fp4"):
        raise UserError(f"--bnb_4bit_quant_type {values['bnb_4bit_quant_type']}: use nf4 or fp4")
    storage = values.get("bnb_4bit_quant_storage")
    if fsdp_requested(values) and _fsdp_version(values) == 1:
        raise UserError("QLoRA under FSDP version 1 saves an adapter without weights (peft cannot see the LoRA "
                        "weights through its wrappers): launch with configs/accelerate/fsdp_qlora.yaml (FSDP version 2)")
    if fsdp_requested(values):
        if storage not in (None, values["bnb_4bit_compute_dtype"]):
            raise UserError(f"--bnb_4bit_quant_storage {storage}: FSDP shards the 4-bit weights only when they are "
                            f"stored in the compute dtype; use {values['bnb_4bit_compute_dtype']} or drop the flag")
        values["bnb_4bit_quant_storage"] = values["bnb_4bit_compute_dtype"]
    elif storage not in (None, "uint8", *DTYPES):
        raise UserError(f"--bnb_4bit_quant_storage {storage}: use uint8, bfloat16 or float32")
    else:
        values["bnb_4bit_quant_storage"] = storage or "uint8"


def _fsdp_version(values: dict) -> int:
    """accelerate launch passes its config's fsdp_version as FSDP_VERSION; --fsdp_config may name it; else 1."""
    config = values.get("fsdp_config")
    version = os.environ.get("FSDP_VERSION") or (
        (config.get("version") or config.get("fsdp_version")) if isinstance(config, dict) else None)
    return int(version or 1)


def load_tokenizer(args: ModelArguments, max_seq_length: int | None = None):
    """The base model's tokenizer, after every check that needs no weights (config, weights present, tokenizer
    files, vocabulary size, --attn_implementation and, when given, --max_seq_length against the context)."""
    check_attn_implementation(args.attn_implementation)
    source = model_source(args.base_model_name)
    config = check_model_files(source, args.base_model_name, trust_remote_code=args.trust_remote_code)
    context = model_context(config)
    if max_seq_length is not None and context is not None and max_seq_length > context:
        raise UserError(f"--max_seq_length {max_seq_length} exceeds the model's context of {context} tokens")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=args.trust_remote_code)
    except OSError as exc:
        raise hub_error(args.base_model_name, exc) from None
    check_tokenizer(tokenizer, config, args.base_model_name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # labels are explicit, so padding never masks a trained token
    ensure_chat_template(tokenizer)  # saved with the run, so inference renders prompts exactly as training did
    tokenizer.model_context = context  # encoding.encode checks --max_seq_length against it
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
        raise hub_error(name, exc, flag) from None


def _build_qlora(source: str, qlora: QLoraArguments, training: TrainingArguments, common: dict):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    compute_dtype = DTYPES[qlora.bnb_4bit_compute_dtype]
    # FSDP flattens each wrapped unit into one tensor of one float dtype: the 4-bit weights stored in the compute
    # dtype (--bnb_4bit_quant_storage), loaded on the CPU (FSDP places the shards), nothing upcast to float32
    fsdp = fsdp_requested(training)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=qlora.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=qlora.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_quant_storage=STORAGE_DTYPES[qlora.bnb_4bit_quant_storage or "uint8"],
    )
    # DDP: each process holds a whole 4-bit copy on its own GPU (device_map {"": local rank})
    model = _load(source, quantization_config=quantization, dtype=compute_dtype,
                  device_map=None if fsdp else _device_map(training.local_process_index), **common)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            # On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for inference at the first eval/generate,
            # and the repack breaks the next training step
            module.support_avx512bf16_for_cpu = False
    # non-reentrant checkpointing: the reentrant variant fails under DDP with peft ("marked as ready twice")
    checkpointing = training.activation_checkpointing_kwargs or {"use_reentrant": False}
    if fsdp:  # prepare_model_for_kbit_training would upcast norms and embeddings to float32: one dtype per unit
        if training.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
            model.enable_input_require_grads()
    else:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(training.activation_checkpointing),
            gradient_checkpointing_kwargs=checkpointing)
    targets = [m.strip() for m in qlora.lora_target_modules.split(",") if m.strip()]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise UserError(f"--lora_target_modules: {', '.join(missing)} not found in {source}")
    lora = LoraConfig(r=qlora.lora_r, lora_alpha=qlora.lora_alpha, lora_dropout=qlora.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora, autocast_adapter_dtype=not fsdp)  # FSDP: adapters in the compute dtype too
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("QLoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}",
                100 * trainable / total)
    return model


# ---------------------------------------------------------------- a trained run, for inference

def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load_for_inference(model_path: str, merge_adapter: bool = False):
    """(model, tokenizer, description) ready for `generate`.

    The config, weights and tokenizer files and the tokenizer itself are checked before any weights load.
    """
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
        flag = "--model_path (its base model)"
        source = model_source(base, flag)
        if not any((path / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
            checkpoints = sorted((p.parent for p in path.glob("checkpoint-*/adapter_model.safetensors")
                                  if p.parent.name.removeprefix("checkpoint-").isdigit()),
                                 key=lambda p: int(p.name.removeprefix("checkpoint-")))
            hint = (f"pass a checkpoint folder such as {checkpoints[-1]}" if checkpoints else
                    "training writes it when it finishes; rerun it, or pass a checkpoint-*/ folder of the run")
            raise UserError(f"--model_path: cannot load the adapter in {path}: it holds no adapter_model.safetensors; "
                            f"{hint}")
        has_tokenizer = any((path / f).is_file() for f in TOKENIZER_FILES)
        config = check_model_files(source, base, flag, tokenizer=not has_tokenizer)
        tokenizer = _inference_tokenizer(str(path) if has_tokenizer else source,
                                         model_path if has_tokenizer else base, config,
                                         "--model_path" if has_tokenizer else flag)
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
    else:
        source = model_source(model_path, "--model_path")
        config = check_model_files(source, model_path, "--model_path")
        tokenizer = _inference_tokenizer(source, model_path, config, "--model_path")
        dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
        model = _load(source, "--model_path", dtype=dtype, device_map=_device_map())
        how = f"{model_path} ({dtype})"
    model.eval()
    return model, tokenizer, how


def _inference_tokenizer(source: str, shown: str, config, flag: str):
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise UserError(f"{flag}: cannot load a tokenizer from {shown}: {first_line(exc)}") from None
    check_tokenizer(tokenizer, config, shown, flag)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _adapter(peft_model, model, path: Path):
    try:
        return peft_model.from_pretrained(model, str(path))
    except (OSError, ValueError) as exc:  # e.g. adapter_model.safetensors missing
        raise UserError(f"--model_path: cannot load the adapter in {path}: {first_line(exc)}") from None


def _device_map(process_index: int | None = None) -> dict:
    """The whole model on this process's GPU (each DDP process, or evaluation shard under torchrun, holds its own
    copy: LOCAL_RANK), or on the CPU."""
    if process_index is None:
        process_index = int(os.environ.get("LOCAL_RANK", "0"))
    return {"": process_index} if torch.cuda.is_available() else {"": "cpu"}

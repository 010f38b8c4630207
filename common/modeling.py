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
from common.gguf import is_gguf, resolve_model
from common.sources import OFFLINE_HINT, is_local

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


def attn_implementations() -> list[str]:
    """The --attn_implementation values usable here: eager, sdpa, and those whose package is installed."""
    import importlib.util

    from transformers import utils

    choices = ["eager", "sdpa"]
    if utils.is_torch_flex_attn_available():
        choices.append("flex_attention")
    kernels = importlib.util.find_spec("kernels") is not None and torch.cuda.is_available()  # hub kernels
    for version in (2, 3, 4):
        available = getattr(utils, f"is_flash_attn_{version}_available", lambda: False)
        if kernels or available():
            choices.append(f"flash_attention_{version}")
    return choices


def check_attn_implementation(value: str | None) -> None:
    if value is None or value in attn_implementations():
        return
    valid = ", ".join(attn_implementations())
    if value.startswith("flash_attention_"):
        raise UserError(f"--attn_implementation {value} needs the flash-attn package (pip install flash-attn, on a "
                        f"CUDA GPU); here choose from {valid}")
    raise UserError(f"--attn_implementation {value}: choose from {valid}")


def model_source(name: str, flag: str = "--base_model_name") -> str:
    """Where to load a model from: hub id, local directory, or a `.gguf` file's converted checkpoint."""
    check_model_source(name, flag)
    return resolve_model(name, flag)


def check_model_source(name: str, flag: str = "--base_model_name") -> None:
    """A local model path must exist and hold a model; a hub id, when offline, must be in the hub cache."""
    if is_gguf(name):
        return
    if not is_local(name):
        _check_offline_hub_id(name, flag)
        return
    path = Path(os.path.expanduser(name))
    if not path.exists():
        raise UserError(f"{flag}: no such directory: {path}")
    if not (path / "config.json").exists():
        raise UserError(f"{flag}: {path} holds no model (no config.json); "
                        f"pass a directory written by save_pretrained, or a hub id")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE", "").upper() in ("1", "ON", "YES",
                                                                                                   "TRUE")


def _check_offline_hub_id(name: str, flag: str) -> None:
    """Offline, a name that is not a local directory must be a model in the hub cache (e.g. a mistyped runs/NAME)."""
    if not _offline():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not even a valid repo id
        cached = None
    if not isinstance(cached, str):
        raise UserError(f"{flag} {name} is neither a local directory nor a model available offline (not in the "
                        f"Hugging Face cache, HF_HUB_OFFLINE=1): check the path, or pass a local model directory "
                        f"({flag} PATH)")


def _hub_error(name: str, exc: Exception, flag: str = "--base_model_name") -> UserError:
    return UserError(
        f"{flag}: could not load model '{name}' from the Hugging Face Hub: {first_line(exc)}. "
        f"Without network access pass a local model directory ({flag} PATH); {OFFLINE_HINT}"
    )


# ---------------------------------------------------------------- checks from config and tokenizer files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def preflight(run) -> None:
    """Every model check that needs only config and tokenizer files, before data prepares and weights load.

    `run` is a training run (common.args.RunArgs). Raises UserError with one line.
    """
    load_tokenizer(run.model, max_seq_length=run.data.max_seq_length)


def check_model_files(source: str, shown: str, flag: str = "--base_model_name", tokenizer: bool = True,
                      trust_remote_code: bool = False):
    """The model's config (returned), weights and tokenizer files are there; `source` is the resolved location
    (a local directory, or a hub id), `shown` the name the user gave."""
    local = Path(os.path.expanduser(source))
    if local.is_dir():
        config_file = local / "config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{flag}: {config_file} is not readable JSON ({first_line(exc)}); copy config.json from "
                            f"the base model") from None
        if not isinstance(config, dict) or not config.get("model_type"):
            raise UserError(f"{flag}: {config_file} has no model_type (e.g. \"model_type\": \"qwen2\"); copy "
                            f"config.json from the base model")
        if not any(next(local.glob(p), None) for p in WEIGHT_PATTERNS):
            raise UserError(f"{flag}: {shown} holds no model weights (*.safetensors); pass a directory written by "
                            f"save_pretrained (a training run's checkpoint-*/ folder, or its output folder once "
                            f"training has finished)")
        if tokenizer and not any((local / f).is_file() for f in TOKENIZER_FILES):
            raise _no_tokenizer(shown, flag)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise _hub_error(shown, exc, flag) from None
    except (ValueError, KeyError) as exc:  # e.g. a model_type this transformers does not know
        raise UserError(f"{flag}: cannot read the config of {shown}: {first_line(exc)}") from None


def _no_tokenizer(shown: str, flag: str) -> UserError:
    return UserError(f"{flag} {shown} has no tokenizer files (tokenizer.json / tokenizer_config.json); copy them "
                     f"from the base model")


def model_context(config) -> int | None:
    """The model's context length from its config (max_position_embeddings or its older names)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_tokenizer(tokenizer, config, shown: str, flag: str = "--base_model_name") -> None:
    """A real tokenizer whose ids all fit the model's embedding table."""
    if len(tokenizer) <= 1:  # AutoTokenizer without any tokenizer file gives an empty tokenizer
        raise _no_tokenizer(shown, flag)
    # tokenizer_config.json without its vocabulary (tokenizer.json, vocab.json, ...) gives one that knows only its
    # special tokens and encodes every text to nothing
    if not tokenizer("def add(a, b):\n    return a + b", add_special_tokens=False)["input_ids"]:
        raise UserError(f"{flag} {shown}: its tokenizer encodes text to nothing (the vocabulary file, e.g. "
                        f"tokenizer.json, is missing); copy the tokenizer files from the base model")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab_size = getattr(text, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise UserError(f"{flag}: the tokenizer of {shown} has {len(tokenizer)} tokens but the model's vocab_size is "
                        f"{vocab_size}; use the model's own tokenizer")


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
        raise _hub_error(args.base_model_name, exc) from None
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


def _device_map(process_index: int = 0) -> dict:
    """The whole model on this process's GPU (each DDP process holds its own copy), or on the CPU."""
    return {"": process_index} if torch.cuda.is_available() else {"": "cpu"}

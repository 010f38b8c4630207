"""A model's files, checked before its weights load: where it is (local folder, offline hub cache, GGUF), that its
config, weights and tokenizer files are there and agree (vocabulary size, context), and which attention
implementations this machine can run. Every problem is one `UserError` line naming the flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from common.errors import UserError, first_line
from common.gguf import is_gguf, resolve_model
from common.sources import OFFLINE_HINT, is_local


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


def hub_error(name: str, exc: Exception, flag: str = "--base_model_name") -> UserError:
    return UserError(
        f"{flag}: could not load model '{name}' from the Hugging Face Hub: {first_line(exc)}. "
        f"Without network access pass a local model directory ({flag} PATH); {OFFLINE_HINT}"
    )


# ---------------------------------------------------------------- checks from config and tokenizer files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


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
            raise no_tokenizer(shown, flag)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise hub_error(shown, exc, flag) from None
    except (ValueError, KeyError) as exc:  # e.g. a model_type this transformers does not know
        raise UserError(f"{flag}: cannot read the config of {shown}: {first_line(exc)}") from None


def no_tokenizer(shown: str, flag: str) -> UserError:
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
        raise no_tokenizer(shown, flag)
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

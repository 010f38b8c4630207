"""Run configs: a file of `flag: value` settings (YAML or JSON, e.g. configs/mt-qlora.yaml) read as if typed first.

`--config FILE` puts the file's settings in front of the command line, which therefore overrides them; the file may
name the script it is for (`script: multitask/qlora_train.py`) and is refused by another. `{model_size}` in
--base_model_name is filled by --model_size (the configs use it for the study's 0.5B/1.5B/3B/7B models).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from common.errors import UserError


def with_config(argv: list[str], script: str, parser: HfArgumentParser) -> list[str]:
    """argv with a `--config FILE`'s settings put in front (`key: value` becomes `--key value`; a null value is left
    out). `--config FILE` itself stays, so the run records which file it came from."""
    for i, token in enumerate(argv):
        if token == "--config" or token.startswith("--config="):
            path = token.split("=", 1)[1] if "=" in token else (argv[i + 1] if i + 1 < len(argv) else "")
            break
    else:
        return argv
    if not path or path.startswith("--"):
        raise UserError("--config needs a file: --config configs/mt-qlora.yaml")
    settings = read_config(Path(path).expanduser())
    meant_for = settings.pop("script", None)
    if meant_for and Path(meant_for).as_posix() != script:
        raise UserError(f"--config {path} is for {meant_for}, not {script}")
    known = {opt.lstrip("-") for action in parser._actions for opt in action.option_strings} - {"config"}
    for key in settings:
        if key not in known:
            raise UserError(f"--config {path}: unknown setting {key!r} (settings are the script's flag names)")
    return setting_tokens(settings) + argv


def setting_tokens(settings: dict) -> list[str]:
    """`key: value` settings as command-line tokens: `--key value`, a list comma-joined, a null value left out."""
    tokens = []
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        tokens += [f"--{key}", str(value)]
    return tokens


def read_config(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"--config: no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        settings = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"--config {path}: cannot read it ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(settings, dict):
        raise UserError(f"--config {path}: expected `flag: value` settings, one per line")
    return settings


def fill_model_size(values: dict, typed: set[str]) -> None:
    """`{model_size}` in --base_model_name replaced; a --model_size typed on the command line that fills nothing is an
    error (a config's own model_size is moot once the command line names another model)."""
    name, size = values["base_model_name"], values.get("model_size")
    if "{model_size}" in name:
        if not size:
            raise UserError(f"--base_model_name {name} needs --model_size (e.g. 0.5B, 1.5B, 3B, 7B)")
        values["base_model_name"] = name.replace("{model_size}", size)
    elif size and "model_size" in typed:
        raise UserError(f"--model_size {size}: --base_model_name {name} has no {{model_size}} to fill")

"""Typed command-line arguments: the study's flags, data/model/LoRA options and every `TrainingArguments` flag.

`parse_args(task, strategy, argv)` returns a `RunArgs` whose `training` is a real `TrainingArguments` with the study's
defaults filled in wherever the user did not give a value. Everything is validated here, up front, so that a bad
combination fails in one line before any model or data is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from common.errors import UserError

TASKS = ("summarization", "generation", "translation", "multitask")
STRATEGIES = ("fft", "qlora")
LANGUAGES = ("java", "python")
DIRECTIONS = ("java-cs", "cs-java")

SUMMARIZATION_HUB = "google/code_x_glue_ct_code_to_text"
TRANSLATION_HUB = "google/code_x_glue_cc_code_to_code_trans"
DEFAULT_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "data" / "samples"
DEMO_MODEL_DIR = REPO_ROOT / "runs" / "tiny-qwen2"


@dataclass
class ModelArguments:
    base_model_name: str = field(
        default=DEFAULT_MODEL, metadata={"help": "Hub id (e.g. Qwen/Qwen2.5-Coder-1.5B-Instruct) or local model directory."}
    )
    device_batch_size: int = field(default=2, metadata={"help": "Per-device train and eval batch size."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub."})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, eager, flash_attention_2."})
    demo: bool = field(
        default=False,
        metadata={"help": "Offline demo: a tiny Qwen2-shaped model built locally and the sample data shipped in "
                          "data/samples; any flag you pass still wins."},
    )


@dataclass
class DataArguments:
    summarization_dataset: str = field(
        default=SUMMARIZATION_HUB, metadata={"help": "Code-to-text data: hub id or local path."}
    )
    translation_dataset: str = field(default=TRANSLATION_HUB, metadata={"help": "Java<->C# pairs: hub id or local path."})
    generation_dataset: str | None = field(
        default=None,
        metadata={"help": "Generation data (hub id or local path, code-to-text or input/output columns); "
                          "default: derived from --summarization_dataset."},
    )
    languages: str = field(default="java,python", metadata={"help": "Comma-separated: java, python."})
    directions: str = field(default="java-cs,cs-java", metadata={"help": "Comma-separated: java-cs, cs-java."})
    sample_size: int = field(default=-1, metadata={"help": "Training examples per data source (-1: all)."})
    val_sample_size: int = field(default=-1, metadata={"help": "Validation examples per data source (-1: all)."})
    eval_samples: int = field(
        default=400, metadata={"help": "Validation examples evaluated during training, even across tasks (-1: all)."}
    )
    max_seq_length: int = field(default=512, metadata={"help": "Prompt + target tokens; the code in the prompt is "
                                                                "truncated first, the target never."})
    remove_docstring: bool = field(
        default=True,
        metadata={"help": "Remove the docstring (the reference) from Python summarization inputs; False reproduces "
                          "the study's target leak."},
    )
    save_processed_data: bool = field(
        default=False,
        metadata={"help": "Save tokenized data to {output_dir}/processed_data and reuse it on a rerun with the same "
                          "data arguments."},
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Evaluations without improvement before stopping (default: no early stopping)."}
    )
    early_stopping_threshold: float | None = field(
        default=None, metadata={"help": "Minimum improvement of the selection metric that counts (default 0)."}
    )

    @property
    def language_list(self) -> list[str]:
        return _split_choices(self.languages, LANGUAGES, "--languages")

    @property
    def direction_list(self) -> list[str]:
        return _split_choices(self.directions, DIRECTIONS, "--directions")


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


@dataclass
class RunArgs:
    task: str
    strategy: str
    model: ModelArguments
    data: DataArguments
    qlora: QLoraArguments | None
    training: TrainingArguments
    given: set[str]  # flags the user passed explicitly
    argv: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decisions worth a line in the log

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "strategy": self.strategy,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "qlora": dataclasses.asdict(self.qlora) if self.qlora else None,
            "training": self.training.to_dict(),
            "argv": self.argv,
        }


def strict_bool(value: str | bool) -> bool:
    """True/False/true/false/1/0 and nothing else (the study's `type=bool` made "False" true)."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False (or 1/0), got {value!r}")


def _split_choices(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise UserError(f"{flag}: unknown value {', '.join(unknown) or repr(value)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors are one line (`error: ...`) and exit code 2, without the usage block."""

    def error(self, message):
        raise UserError(message)


def make_parser(types: list) -> HfArgumentParser:
    parser = _Parser(types, allow_abbrev=False)
    for action in parser._actions:  # stricter booleans than HF's yes/no/t/f/y/n
        if action.type is string_to_bool and not isinstance(action.default, str):  # str defaults: "no"/"yes"
            action.type = strict_bool
    return parser


def build_parser(strategy: str) -> HfArgumentParser:
    types = [ModelArguments, DataArguments] + ([QLoraArguments] if strategy == "qlora" else []) + [TrainingArguments]
    return make_parser(types)


def _given_flags(argv: list[str]) -> set[str]:
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
            names.add(name[3:] if name.startswith("no_") else name)
    return names


def default_output_dir(task: str, strategy: str, model_name: str) -> str:
    short = Path(model_name.rstrip("/")).name.removesuffix(".gguf") or "model"
    return str(REPO_ROOT / "runs" / f"{task}-{strategy}-{short}")


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def study_training_defaults(task: str, strategy: str, device_batch_size: int) -> dict:
    """The study's training hyper-parameters (its README and scripts), applied wherever the user gave no value."""
    import torch

    cuda = torch.cuda.is_available()
    cpu_ddp = not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return {
        "per_device_train_batch_size": device_batch_size,
        "per_device_eval_batch_size": device_batch_size,
        "gradient_accumulation_steps": 16,
        "num_train_epochs": 5,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 100 if task == "translation" else 1000,
        # paged 8-bit AdamW needs CUDA; on a CPU the default is plain AdamW (recorded in run_config.json)
        "optim": ("paged_adamw_8bit" if cuda else "adamw_torch") if strategy == "qlora" else "adamw_torch",
        "bf16": _bf16_supported(),
        "activation_checkpointing": True,  # transformers 5 name of gradient checkpointing
        "activation_checkpointing_kwargs": {"use_reentrant": False},  # reentrant fails under DDP + peft
        "dataloader_pin_memory": cuda,
        "eval_strategy": "steps",
        "save_strategy": "steps",
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "label_names": ["labels"],  # PEFT models hide the forward signature; without this no eval_loss
        "logging_steps": 10,
        "save_total_limit": 2,
        "report_to": "none",
        "ddp_find_unused_parameters": False,
        # torchrun on CPUs: without gloo + use_cpu accelerate sees no distributed set-up, and every process would
        # train alone and race on the output folder
        "ddp_backend": "gloo" if cpu_ddp else None,
        "use_cpu": cpu_ddp,
    }


def demo_defaults() -> dict:
    """What `--demo` changes: a tiny local model, the shipped samples, settings that finish in seconds on a CPU."""
    return {
        "base_model_name": str(DEMO_MODEL_DIR),
        "summarization_dataset": str(SAMPLES_DIR / "code_to_text"),
        "translation_dataset": str(SAMPLES_DIR / "code_to_code_trans"),
        "device_batch_size": 8,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "num_train_epochs": 3,
        "learning_rate": 2e-3,
        "warmup_steps": 5,
        "eval_samples": -1,
        "logging_steps": 5,
        "bnb_4bit_compute_dtype": "float32",
    }


def parse_args(task: str, strategy: str, argv: list[str] | None = None) -> RunArgs:
    """Parse and validate; raises UserError with one line for anything the user must fix."""
    if task not in TASKS or strategy not in STRATEGIES:
        raise ValueError(f"unknown task/strategy {task}/{strategy}")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(strategy)
    given = _given_flags(argv)
    try:
        namespace = parser.parse_args(argv)
    except argparse.ArgumentError as exc:  # raised instead of exiting when exit_on_error is off
        raise UserError(str(exc)) from None
    values = vars(namespace)

    defaults = study_training_defaults(task, strategy, values["device_batch_size"])
    if values.get("demo"):
        defaults.update(demo_defaults(), output_dir=default_output_dir(task, strategy, "demo"))
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if old in given:  # the deprecated name is honoured only while the new one is unset
            given.add(new)
            values[new] = values[old]
    for name, value in defaults.items():
        if name not in given and name in values:
            values[name] = value
    if "output_dir" not in given and not values.get("demo"):
        values["output_dir"] = default_output_dir(task, strategy, values["base_model_name"])
    if "device_batch_size" in given:
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            if name not in given:
                values[name] = values["device_batch_size"]

    _validate(strategy, values, given)
    notes = _resolve_strategies(values, given)
    # Best-model loading needs eval/save steps that line up, and they depend on the number of training examples:
    # build TrainingArguments without it, and switch it on once the data has fixed the steps (training.py).
    load_best = values["load_best_model_at_end"]
    values["load_best_model_at_end"] = False

    model_args, data_args, *rest = _instantiate(parser, values)
    qlora_args = rest[0] if strategy == "qlora" else None
    training_args = rest[-1]
    training_args.load_best_model_at_end = load_best
    return RunArgs(task, strategy, model_args, data_args, qlora_args, training_args, given, argv, notes)


def _resolve_strategies(values: dict, given: set[str]) -> list[str]:
    """Saving follows evaluation unless given; best-model loading only where checkpoints match evaluations."""
    notes = []
    evaluation, load_best = values["eval_strategy"], values["load_best_model_at_end"]
    if "save_strategy" not in given and evaluation != "no":
        values["save_strategy"] = evaluation
    saving = values["save_strategy"]
    if evaluation == "no":
        values["load_best_model_at_end"] = False
    elif load_best and saving not in (evaluation, "best"):
        if "load_best_model_at_end" in given:
            raise UserError(f"--save_strategy {saving} with --eval_strategy {evaluation} cannot load the best model: "
                            f"save at the evaluations or pass --load_best_model_at_end False")
        values["load_best_model_at_end"] = False
        notes.append(f"--save_strategy {saving}: the best model is not loaded at the end (no matching checkpoints)")
    return notes


def _instantiate(parser: HfArgumentParser, values: dict):
    outputs = []
    for dtype in parser.dataclass_types:
        names = {f.name for f in dataclasses.fields(dtype) if f.init}
        kwargs = {k: v for k, v in values.items() if k in names}
        try:
            outputs.append(dtype(**kwargs))
        except (ValueError, TypeError) as exc:
            raise UserError(" ".join(str(exc).split())) from None
    return outputs


def _validate(strategy: str, v: dict, given: set[str]) -> None:
    for name in ("languages", "directions"):
        choices = LANGUAGES if name == "languages" else DIRECTIONS
        _split_choices(v[name], choices, f"--{name}")
    if strategy == "qlora":
        if v["fp16"]:
            raise UserError("--fp16 is not supported with QLoRA: use --bf16 True (GPU) or fp32 (the default on CPU)")
        if v["bnb_4bit_compute_dtype"] not in ("bfloat16", "float32"):
            raise UserError(f"--bnb_4bit_compute_dtype {v['bnb_4bit_compute_dtype']}: use bfloat16 or float32")
        if v["bnb_4bit_quant_type"] not in ("nf4", "fp4"):
            raise UserError(f"--bnb_4bit_quant_type {v['bnb_4bit_quant_type']}: use nf4 or fp4")
    if v["fp16"] and v["bf16"]:
        raise UserError("--fp16 and --bf16 are both on: pick one")
    for name in ("sample_size", "val_sample_size", "eval_samples"):
        if v[name] == 0 or v[name] < -1:
            raise UserError(f"--{name} {v[name]}: use a positive number, or -1 for all")
    if v["device_batch_size"] < 1:
        raise UserError("--device_batch_size must be at least 1")
    if v["max_seq_length"] < 16:
        raise UserError("--max_seq_length must be at least 16")
    if v["early_stopping_threshold"] is not None and v["early_stopping_patience"] is None:
        raise UserError("--early_stopping_threshold needs --early_stopping_patience N")
    if v["early_stopping_patience"] is not None and v["early_stopping_patience"] < 1:
        raise UserError("--early_stopping_patience must be at least 1")

"""A training run's arguments: the study's defaults filled in, and every combination checked, before anything loads.

`parse_args(task, strategy, argv)` returns a `RunArgs` whose `training` is a real `TrainingArguments` with the study's
defaults wherever the user did not give a value; a bad combination fails in one line (UserError) before any model or
data is loaded. `task` is a registered task or "multitask" (the mixture, `--tasks`). `--config FILE` (YAML or JSON,
e.g. configs/mt-qlora.yaml) supplies flags as if typed before the command line's own, which therefore win.
Longer than most modules on purpose: every check of a flag or a combination of flags lives here, in one pass, so
that none of them can run after data or a model has loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments

from common import tasks as registry
from common.args import (DEMO_MODEL_DIR, MULTITASK, REPO_ROOT, SAMPLES_DIR, DataArguments, ModelArguments,
                         RunArgs, given_flags, split_choices, with_task_data)
from common.configs import fill_model_size, with_config
from common.errors import UserError
from common.parsing import make_parser
from common.languages import DIRECTIONS, SOURCE_LANGUAGES


def build_parser(strategy: str) -> HfArgumentParser:
    from common.modeling import STRATEGY_FLAGS

    extra = [STRATEGY_FLAGS[strategy]] if STRATEGY_FLAGS[strategy] else []
    return make_parser([ModelArguments, with_task_data(DataArguments), *extra, TrainingArguments])


def default_output_dir(task: str, tasks: list[str], strategy: str, model_name: str) -> str:
    """runs/{task}-{strategy}-{model}; a mixture other than the default one names its tasks."""
    if task == MULTITASK and tasks != registry.default_mixture():
        task = f"{MULTITASK}-{'+'.join(tasks)}"
    short = Path(model_name.rstrip("/")).name.removesuffix(".gguf") or "model"
    return str(REPO_ROOT / "runs" / f"{task}-{strategy}-{short}")


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def study_training_defaults(tasks: list[str], mixture: bool, strategy: str, device_batch_size: int) -> dict:
    """The study's training hyper-parameters (its README and scripts), applied wherever the user gave no value."""
    import torch

    from common.modeling import strategy_defaults

    cuda = torch.cuda.is_available()
    cpu_ddp = not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1
    defaults = {
        "per_device_train_batch_size": device_batch_size,
        "per_device_eval_batch_size": device_batch_size,
        "gradient_accumulation_steps": 16,
        "num_train_epochs": 5,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 1000,
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
        # a resumed run continues early stopping's patience count instead of starting it again (transformers
        # restores callback states only when asked), so it stops where an uninterrupted run stops
        "restore_callback_states_from_checkpoint": True,
        "ddp_find_unused_parameters": False,
        # torchrun on CPUs: without gloo + use_cpu accelerate sees no distributed set-up, and every process would
        # train alone and race on the output folder
        "ddp_backend": "gloo" if cpu_ddp else None,
        "use_cpu": cpu_ddp,
        **strategy_defaults(strategy),
    }
    if not mixture:  # a single task's own settings (the study's multi-task runs used the common ones)
        defaults.update(registry.get(tasks[0]).training_defaults)
    return defaults


def demo_defaults() -> dict:
    """What `--demo` changes: a tiny local model, the shipped samples, settings that finish in seconds on a CPU."""
    data = {spec.data_flag: str(SAMPLES_DIR / spec.demo_data) for spec in registry.TASKS.values() if spec.demo_data}
    return {
        "base_model_name": str(DEMO_MODEL_DIR),
        **data,
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
    from common.modeling import STRATEGY_FLAGS

    if (task != MULTITASK and task not in registry.TASKS) or strategy not in STRATEGY_FLAGS:
        raise ValueError(f"unknown task/strategy {task}/{strategy}")
    typed = list(sys.argv[1:] if argv is None else argv)  # recorded as typed, --config included
    parser = build_parser(strategy)
    argv = with_config(typed, f"{task}/{strategy}_train.py", parser)
    given = given_flags(argv)
    typed_flags = given_flags(typed)
    try:
        namespace = parser.parse_args(argv)
    except argparse.ArgumentError as exc:  # raised instead of exiting when exit_on_error is off
        raise UserError(str(exc)) from None
    values = vars(namespace)
    tasks = _tasks(task, values["tasks"])
    values["tasks"] = ",".join(tasks)
    fill_model_size(values, typed=typed_flags)

    defaults = study_training_defaults(tasks, task == MULTITASK, strategy, values["device_batch_size"])
    if values.get("demo"):
        defaults.update(demo_defaults(), output_dir=default_output_dir(task, tasks, strategy, "demo"))
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if old in given:  # the deprecated name is honoured only while the new one is unset
            given.add(new)
            values[new] = values[old]
    for name, value in defaults.items():
        if name not in given and name in values:
            values[name] = value
    if "output_dir" not in given and not values.get("demo"):
        values["output_dir"] = default_output_dir(task, tasks, strategy, values["base_model_name"])
    if "device_batch_size" in given:
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            if name not in given:
                values[name] = values["device_batch_size"]

    _launcher_precision(values, given)
    _validate(strategy, values)
    notes = _resolve_strategies(values, given, typed_flags)
    notes.append(choose_batching(values, given))
    notes += _check_task_data(task, tasks, strategy, given)
    # Best-model loading needs eval/save steps that line up, and they depend on the number of training examples:
    # build TrainingArguments without it, and switch it on once the data has fixed the steps (training.py).
    load_best = values["load_best_model_at_end"]
    values["load_best_model_at_end"] = False

    model_args, data_args, *rest = _instantiate(parser, values)
    strategy_args = rest[0] if len(rest) == 2 else None
    training_args = rest[-1]
    training_args.load_best_model_at_end = load_best
    return RunArgs(task, tasks, strategy, model_args, data_args, strategy_args, training_args, given, typed, notes)


# attention implementations with a variable-length kernel: padding-free batches cost nothing extra there
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


def choose_batching(values: dict, given: set[str]) -> str:
    """The fastest correct batching for the attention in use, unless --packing / --train_sampling_strategy say
    otherwise; returns the log line that says which and why.

    Measured on CPU with sdpa (batch 8, code lengths 120-1024 tokens): padded random batches 1.0x, padding-free 1.2x,
    padded and grouped by length 1.5x, padding-free and grouped 0.9x -- without a variable-length kernel the
    flattened batch is attended through a block-diagonal mask, quadratic in the flattened length. The loss over the
    same examples is the same either way (a token-level mean over the batch)."""
    attention = values.get("attn_implementation") or "sdpa (the default)"
    varlen = values.get("attn_implementation") in VARLEN_ATTENTION
    if "packing" not in given:
        values["packing"] = varlen
    if "train_sampling_strategy" not in given:
        values["train_sampling_strategy"] = "random" if values["packing"] else "group_by_length"
    how = ("padding-free (the examples of a batch flattened into one sequence)" if values["packing"]
           else "padded to the longest example of each batch")
    how += f", {values['train_sampling_strategy']} order"
    if "packing" in given or "train_sampling_strategy" in given:
        return f"batching: {how} (as given)"
    why = ("its variable-length kernel attends to each example alone" if varlen else
           "without a variable-length kernel padding-free batches attend through a block mask, slower than batches "
           "of similar lengths padded")
    return f"batching: {how}, chosen for {attention} attention: {why} (--packing, --train_sampling_strategy)"


def _tasks(task: str, value: str | None) -> list[str]:
    if task != MULTITASK:
        if value and value != task:
            raise UserError(f"--tasks is for the multitask scripts; {task} scripts train {task}")
        return [task]
    return registry.parse_tasks(value)


# Settings that act only on evaluations: with --eval_strategy no they do nothing
BEST_MODEL_FLAGS = ("early_stopping_patience", "early_stopping_threshold", "load_best_model_at_end",
                    "metric_for_best_model")


def _resolve_strategies(values: dict, given: set[str], typed: set[str]) -> list[str]:
    """Saving follows evaluation unless given; best-model loading only where checkpoints match evaluations.

    With --eval_strategy no, early stopping and best-model loading are off. Asking for them in the same place that
    turns evaluation off (both typed, or both in the --config file) is refused; a config's early stopping overridden
    by a typed --eval_strategy no is switched off with a note, and run_config.json records it as off."""
    notes = []
    evaluation, load_best = values["eval_strategy"], values["load_best_model_at_end"]
    if "save_strategy" not in given and evaluation != "no":
        values["save_strategy"] = evaluation
    saving = values["save_strategy"]
    if evaluation == "no":
        asked = [name for name in BEST_MODEL_FLAGS if name in given and values[name] not in (None, False)]
        for name in asked:
            if name in typed or "eval_strategy" not in typed:
                raise UserError(f"--{name} needs evaluations, but --eval_strategy is no: drop --{name}, or evaluate "
                                f"(--eval_strategy steps or epoch)")
        if asked:
            notes.append(f"--eval_strategy no: the --config file's {', '.join('--' + n for n in asked)} "
                         f"{'is' if len(asked) == 1 else 'are'} off (no evaluations)")
        values["load_best_model_at_end"] = False
        values["early_stopping_patience"] = values["early_stopping_threshold"] = None  # recorded as what ran
    elif load_best and saving not in (evaluation, "best"):
        if "load_best_model_at_end" in given:
            raise UserError(f"--save_strategy {saving} with --eval_strategy {evaluation} cannot load the best model: "
                            f"save at the evaluations or pass --load_best_model_at_end False")
        values["load_best_model_at_end"] = False
        notes.append(f"--save_strategy {saving}: the best model is not loaded at the end (no matching checkpoints)")
    return notes


def _check_task_data(task: str, tasks: list[str], strategy: str, given: set[str]) -> list[str]:
    """Data flags of tasks this run does not train. Refused when the run's own data flags were not given (the run
    would read its default data, not what was named); noted in the log when they were (the extra flag is unused)."""
    used = {flag for name in tasks for flag in (registry.get(name).data_flag, registry.get(name).data_fallback) if flag}
    unused = [spec for spec in registry.TASKS.values() if spec.data_flag in given and spec.data_flag not in used]
    if not unused:
        return []
    script = f"{task}/{strategy}_train.py"
    trains = f"{script} trains {task}" if task != MULTITASK else f"this run trains {', '.join(tasks)}"
    if not used & given:
        spec = unused[0]
        fix = (f"use --{registry.get(task).data_flag} for its data" if task != MULTITASK
               else f"add {spec.name} to --tasks, or drop the flag")
        raise UserError(f"--{spec.data_flag} is for the {spec.name} task; {trains}: {fix}")
    return [f"--{spec.data_flag} is not used: it is for the {spec.name} task, and {trains}" for spec in unused]


def _check_report_to(values: dict) -> None:
    """--report_to names known integrations whose packages are installed (else the Trainer fails after the model
    has loaded); a comma-separated value becomes a list, as a config's list does."""
    import importlib.util

    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    value = values.get("report_to")
    names = value if isinstance(value, list) else [v.strip() for v in str(value or "none").split(",") if v.strip()]
    if names in ([], ["none"], ["all"]):
        return
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(f"--report_to {name}: choose from {', '.join(INTEGRATION_TO_CALLBACK)}, all or none")
        modules, package = REPORT_TO_PACKAGES.get(name, ((), ""))
        if modules and not any(importlib.util.find_spec(m) is not None for m in modules):
            raise UserError(f"--report_to {name} needs the {package} package: pip install {package}, "
                            f"or --report_to none")
        if name == "dagshub" and importlib.util.find_spec("mlflow") is None:
            raise UserError("--report_to dagshub needs the mlflow package: pip install mlflow, or --report_to none")
    values["report_to"] = names if len(names) > 1 else names[0]


# --report_to integration -> (modules any of which the Trainer's callback imports, the package to install); the
# module names are those transformers.integrations.integration_utils looks for
REPORT_TO_PACKAGES = {
    "azure_ml": (("azureml",), "azureml-core"), "comet_ml": (("comet_ml",), "comet-ml"),
    "mlflow": (("mlflow",), "mlflow"), "neptune": (("neptune",), "neptune"),
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "trackio": (("trackio",), "trackio"),
    "wandb": (("wandb",), "wandb"), "codecarbon": (("codecarbon",), "codecarbon"),
    "clearml": (("clearml",), "clearml"), "dagshub": (("dagshub",), "dagshub"), "flyte": (("flytekit",), "flytekit"),
    "dvclive": (("dvclive",), "dvclive"), "swanlab": (("swanlab",), "swanlab"),
}


def _accelerator_available() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator.is_available()) if accelerator else torch.cuda.is_available()


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


def _launcher_precision(values: dict, given: set[str]) -> None:
    """accelerate launch passes its config's mixed_precision (ACCELERATE_MIXED_PRECISION), and the Trainer uses it
    whatever --bf16/--fp16 say: it becomes the flag's value, so that run_config.json records what runs."""
    mode = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if mode not in ("bf16", "fp16"):
        return
    if mode in given and not values[mode]:
        raise UserError(f"--{mode} False, but the accelerate config runs mixed_precision {mode}: set mixed_precision "
                        f"no in it (or pass --mixed_precision no to accelerate launch), or drop --{mode} False")
    values[mode] = True


def _launched_engine(v: dict) -> None:
    """DeepSpeed and FSDP asked for where they cannot run: one line, before anything loads."""
    import importlib.util

    from common.modeling import fsdp_requested

    deepspeed = v.get("deepspeed") or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true")
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise UserError("DeepSpeed (--deepspeed, or a DeepSpeed accelerate config) needs the deepspeed package: "
                        "pip install deepspeed (it is optional, not in requirements.txt)")
    if fsdp_requested(v) and not _accelerator_available():
        raise UserError("FSDP needs GPUs (on CPUs accelerate trains plain DDP instead, silently): launch with "
                        "configs/accelerate/ddp.yaml or torchrun here")


def _validate(strategy: str, v: dict) -> None:
    from common.modeling import check_strategy

    split_choices(v["languages"], SOURCE_LANGUAGES, "--languages")
    split_choices(v["directions"], DIRECTIONS, "--directions")
    _launched_engine(v)
    check_strategy(strategy, v)
    if v["fp16"] and v["bf16"]:
        raise UserError("--fp16 and --bf16 are both on: pick one")
    # Mixed precision off a GPU: accelerate silently runs fp16 in float32 on a CPU (the run would record fp16 it
    # did not use), so --fp16 is refused there; bf16 autocast does run on a CPU, but only with --use_cpu True.
    if v["fp16"] and (v["use_cpu"] or not _accelerator_available()):
        raise UserError("--fp16 needs a GPU (on a CPU it is ignored): drop it on CPU, or use --bf16 True with "
                        "--use_cpu True for bf16 autocast on the CPU")
    if v["bf16"] and not v["use_cpu"]:
        from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

        if not (is_torch_bf16_gpu_available() or is_torch_xla_available()):
            raise UserError("--bf16 needs a GPU with bf16 support: drop it, or add --use_cpu True for bf16 autocast "
                            "on the CPU")
    if v["max_steps"] == 0:  # the Trainer would take one step and save it as the result
        raise UserError("--max_steps 0: give a positive number of steps, or -1 (the default) to train for "
                        "--num_train_epochs")
    if v["num_train_epochs"] <= 0 and v["max_steps"] <= 0:
        raise UserError(f"--num_train_epochs {v['num_train_epochs']:g}: train for a positive number of epochs, or "
                        f"give --max_steps N")
    if v["learning_rate"] <= 0:
        raise UserError(f"--learning_rate {v['learning_rate']:g}: use a positive number (e.g. 1e-4)")
    if v["gradient_accumulation_steps"] < 1:
        raise UserError(f"--gradient_accumulation_steps {v['gradient_accumulation_steps']}: use 1 or more")
    for name in ("seed", "data_seed"):
        if v[name] is not None and not 0 <= v[name] < 2**32:
            raise UserError(f"--{name} {v[name]}: use a number from 0 to {2**32 - 1}")
    for name in ("eval_steps", "save_steps"):  # 0 would silently become another step count
        if v[name] is not None and v[name] <= 0:
            raise UserError(f"--{name} {v[name]:g}: use a positive number of steps (or a fraction of training "
                            f"below 1)")
    _check_report_to(v)
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

"""Command-line flags: the typed argument dataclasses and the parser that reads them.

`ModelArguments`, `DataArguments` (and `QLoraArguments`, declared with the model building in common.modeling) plus
every `TrainingArguments` flag. Each registered task adds the flag that holds its data (its spec's `data_flag`,
see common.tasks), so `with_task_data(DataArguments)` is the class actually parsed. Defaults, study settings and
validation are in common.run_args.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from common.errors import UserError
from common.languages import DIRECTIONS, SOURCE_LANGUAGES

MULTITASK = "multitask"  # the scripts that train or evaluate a mixture of tasks
DEFAULT_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "data" / "samples"
DEMO_MODEL_DIR = REPO_ROOT / "runs" / "tiny-qwen2"


@dataclass
class ModelArguments:
    config: str | None = field(
        default=None, metadata={"help": "A run config (YAML or JSON `flag: value` settings, e.g. configs/mt-qlora.yaml); "
                                        "flags given on the command line override it."}
    )
    base_model_name: str = field(
        default=DEFAULT_MODEL, metadata={"help": "Hub id (e.g. Qwen/Qwen2.5-Coder-1.5B-Instruct) or local model directory."}
    )
    model_size: str | None = field(
        default=None, metadata={"help": "Fills `{model_size}` in --base_model_name (the configs: e.g. 0.5B, 3B)."}
    )
    device_batch_size: int = field(default=2, metadata={"help": "Per-device train and eval batch size."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub."})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, eager, flash_attention_2."})
    demo: bool = field(
        default=False,
        metadata={"help": "Offline demo: a tiny Qwen2-shaped model built locally and the sample data shipped in "
                          "data/samples; any flag you pass still wins."},
    )
    # A run-level flag kept here because transformers 5 dropped it from TrainingArguments.
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start afresh in an --output_dir that holds a run (its checkpoints and outputs are removed, the "
                "processed-data cache kept); without it a rerun with the same arguments resumes, or does nothing if "
                "the run finished, and one with other arguments is refused."})


@dataclass
class DataArguments:
    """The data flags every task shares; `with_task_data` adds each registered task's data flag."""

    tasks: str | None = field(
        default=None, metadata={"help": "Multi-task scripts: the tasks to mix, comma-separated (default: the study's "
                                        "three); single-task scripts: their own task."})
    languages: str = field(default=",".join(SOURCE_LANGUAGES),
                           metadata={"help": f"Comma-separated: {', '.join(SOURCE_LANGUAGES)}."})
    directions: str = field(default=",".join(DIRECTIONS), metadata={"help": f"Comma-separated: {', '.join(DIRECTIONS)}."})
    sample_size: int = field(default=-1, metadata={"help": "Training examples per data source (-1: all)."})
    val_sample_size: int = field(default=-1, metadata={"help": "Validation examples per data source (-1: all)."})
    eval_samples: int = field(
        default=400, metadata={"help": "Validation examples evaluated during training, split evenly over tasks and "
                                       "their languages or directions (-1: all)."}
    )
    max_seq_length: int = field(default=512, metadata={"help": "Prompt + target tokens; the code in the prompt is "
                                                                "truncated first, the target never."})
    remove_docstring: bool = field(
        default=True,
        metadata={"help": "Remove the docstring (the reference) from Python inputs of code -> docstring tasks; False "
                          "reproduces the study's target leak."},
    )
    save_processed_data: bool = field(
        default=False,
        metadata={"help": "Save tokenized data to {output_dir}/processed_data and reuse it on a rerun with the same "
                          "data arguments."},
    )
    packing: bool | None = field(
        default=None, metadata={"help": (
            "Padding-free batches: the examples of a batch flattened into one sequence, positions restarting per "
            "example, no attention across examples (True), or padded batches (False). Default: padding-free where "
            "the attention has a variable-length kernel (--attn_implementation flash_attention_2/3), else padded and "
            "grouped by length (--train_sampling_strategy group_by_length); the log says which and why.")})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Evaluations without improvement before stopping (default: no early stopping)."}
    )
    early_stopping_threshold: float | None = field(
        default=None, metadata={"help": "Minimum improvement of the selection metric that counts (default 0)."}
    )

    @property
    def language_list(self) -> list[str]:
        return split_choices(self.languages, SOURCE_LANGUAGES, "--languages")

    @property
    def direction_list(self) -> list[str]:
        return split_choices(self.directions, DIRECTIONS, "--directions")


def with_task_data(base: type) -> type:
    """`base` plus one field per registered task's data flag (hub id or path; its help and default from the spec)."""
    from common.tasks import TASKS

    fields, seen = [], {f.name for f in dataclasses.fields(base)}
    for spec in TASKS.values():
        if spec.data_flag in seen:
            continue
        seen.add(spec.data_flag)
        fields.append((spec.data_flag, str | None, field(default=spec.data_default, metadata={"help": spec.data_help})))
    return dataclasses.make_dataclass(base.__name__, fields, bases=(base,))


def data_arguments(**values) -> DataArguments:
    """DataArguments with the registered tasks' data flags (keyword arguments by flag name)."""
    return with_task_data(DataArguments)(**values)


@dataclass
class RunArgs:
    task: str  # the script's task, or "multitask"
    tasks: list[str]  # the tasks it trains
    strategy: str
    model: ModelArguments
    data: DataArguments
    strategy_args: object | None  # the strategy's own flags (common.modeling.STRATEGY_FLAGS), e.g. QLoraArguments
    training: TrainingArguments
    given: set[str]  # flags the user passed explicitly
    argv: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decisions worth a line in the log

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "tasks": self.tasks,
            "strategy": self.strategy,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            # under the strategy's name (e.g. "qlora"): inference reads the quantization settings back from there
            **({self.strategy: dataclasses.asdict(self.strategy_args)} if self.strategy_args else {}),
            "training": self.training.to_dict(),
            "argv": self.argv,
        }


def split_choices(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise UserError(f"{flag}: unknown value {', '.join(unknown) or repr(value)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def given_flags(argv: list[str]) -> set[str]:
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
            names.add(name[3:] if name.startswith("no_") else name)
    return names

"""The task registry: one `TaskSpec` per task holds everything task-specific; the rest of the toolkit reads it.

Built-in tasks (one module each in this package, imported below): summarization, generation, translation. A module
added to this package is imported and registered too, so a new task is one file; `register` also takes a spec from
anywhere (a test, a user's script) at run time.

What a spec declares, and who reads it:
- data: `groups` ("languages" or "directions": which flag lists its groups), `data_flag` (the flag holding its
  data, added to the data arguments with `data_default` and `data_help`; `data_fallback` names another when it is
  unset; `demo_data` is its sample data for --demo) and `rows` (data -> rows of the common schema, see common.data)
  -- training and evaluation data;
- prompting: `messages` (system + user), `target` (the trained answer), `truncatable` -- common.prompts/encoding;
- evaluation: `answer_language`, `extract` (the answer inside a raw output), `score` (metrics per group),
  `code_answer` (code quality, pass@1), `quality_reformat`, `max_new_tokens`, `benchmarks` (--benchmark loaders),
  `eval_flags` (evaluation flags only this task uses), `main_metrics` (its headline metrics: the grid's summary, the
  comparison charts);
- training: `training_defaults` (study hyper-parameters that differ for this task, single-task runs only); each task's
  eval loss is logged as `eval_{name}_loss`; the best model is chosen by the overall `eval_loss` (the study's
  selection), which for a single task is that task's loss.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import UserError


def _same(group: str) -> str:
    return group


@dataclass(frozen=True)
class Benchmark:
    """An evaluation set with a loader of its own (--benchmark NAME), for one task."""

    load: Callable  # (eval args, languages, flag of the task's data) -> items
    reads_data: bool = False  # it reads the file given as the task's data (else it ships its own)
    detect: Callable | None = None  # path -> whether a data file given without --benchmark is of this kind


@dataclass(frozen=True)
class TaskSpec:
    name: str
    summary: str  # one line: what the task maps to what
    groups: str  # "languages" or "directions"
    data_flag: str  # the data argument with its data (hub id or local path)
    rows: Callable  # (data args, group, split, n, seed, raw dataset or None) -> list of rows
    messages: Callable  # (row, source override or None) -> [system message, user message]
    target: Callable  # row -> the answer the model is trained on
    extract: Callable  # (raw output, answer language) -> the answer
    score: Callable  # (ScoreContext, group, answers, items) -> (group values, per-item values)
    data_default: str | None = None  # its data's hub id (the flag's default)
    data_help: str = ""  # the data flag's --help text
    data_fallback: str | None = None  # the data argument used when `data_flag` is unset
    demo_data: str | None = None  # --demo: its data under data/samples
    answer_language: Callable = _same  # group -> the language the answer is written in
    truncatable: bool = False  # the prompt shows code (`source`) that may be cut to fit the length limit
    code_answer: bool = True  # answers are code: quality is measured, benchmarks with tests execute them
    quality_reformat: bool = False  # analyse code reformatted one statement per line (the study's translations)
    max_new_tokens: int = 512
    in_default_mixture: bool = False  # part of the multi-task mixture when --tasks is not given
    training_defaults: dict = field(default_factory=dict)
    benchmarks: dict = field(default_factory=dict)  # --benchmark name -> Benchmark
    eval_flags: tuple[str, ...] = ()
    main_metrics: tuple[str, ...] = ()  # the headline per-item metrics, as the study reported them
    tokenizer_texts: tuple[str, ...] = ()  # fixed prompt text the tiny demo tokenizer is trained on

    def group_list(self, data) -> list[str]:
        """The languages or directions this task runs on, from the data arguments."""
        return data.language_list if self.groups == "languages" else data.direction_list

    def source(self, data) -> tuple[str, str | None]:
        """(flag, hub id or path) of this task's data."""
        value = getattr(data, self.data_flag, None)
        if not value and self.data_fallback:
            return f"--{self.data_fallback}", getattr(data, self.data_fallback)
        return f"--{self.data_flag}", value


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in TASKS and TASKS[spec.name] is not spec:
        raise ValueError(f"a task named {spec.name!r} is already registered")
    if spec.name == "multitask" or not spec.name.isidentifier():
        raise ValueError(f"task name {spec.name!r}: use an identifier other than 'multitask'")
    if spec.groups not in ("languages", "directions"):
        raise ValueError(f"{spec.name}: groups must be 'languages' or 'directions', not {spec.groups!r}")
    TASKS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    TASKS.pop(name, None)


def get(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; registered: {', '.join(TASKS)}") from None


def default_mixture() -> list[str]:
    return [name for name, spec in TASKS.items() if spec.in_default_mixture]


def parse_tasks(value: str | None, flag: str = "--tasks") -> list[str]:
    """Registered task names from a comma-separated flag value (None or empty: the default mixture), in registry
    order: the order a user lists them in changes neither the data nor the run's name."""
    if not value:
        return default_mixture()
    names = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(n for n in names if n not in TASKS)
    if unknown or not names:
        raise UserError(f"{flag}: unknown task {', '.join(unknown) or repr(value)}; choose from {', '.join(TASKS)}")
    return [name for name in TASKS if name in names]


def _import_task_modules() -> None:
    for built_in in ("summarization", "generation", "translation"):  # the default mixture's order
        importlib.import_module(f"{__name__}.{built_in}")
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_task_modules()

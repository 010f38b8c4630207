"""The study's grid of runs in one command: every (model size, configuration) cell trained and evaluated, then the
comparisons, with a summary table.

    python -m common.grid configs/study.yaml --dry_run             # print every command, run nothing
    python -m common.grid configs/study.yaml --only '1.5B/*'       # the 1.5B cells (and their comparisons)
    python -m common.grid configs/study.yaml --executor slurm --slurm_partition gpu --gpus_per_node 1

One flow: load the grid file -> plan the steps -> run them -> summarize. The grid file (configs/study.yaml documents
the format) declares model sizes x cells (a training config + its evaluate.py) and comparisons. Where results land,
under the grid's `output_root`: training `{root}/{size}/{cell}`, its evaluation `{root}/{size}/{cell}/eval`, the
step logs `{root}/{size}/{cell}.log` (outside the run folder, which a training refuses to share with other files),
comparisons `{root}/{size}/compare-{name}`, the summary `{root}/grid_summary.md` and `grid_summary.json`.

A cell whose training has `run_complete.json` and whose evaluation has `metrics.json` (and no
`predictions.partial.jsonl`) is skipped as "done (earlier)"; a finished training with an unfinished evaluation runs
the evaluation only. A failed step is reported with its log and the other cells go on; comparisons that need a
failed cell are skipped; the exit code is 1 when anything failed. `--executor slurm` runs each cell (training, then
evaluation) as one submitit job and the comparisons here once every job has ended. Relative paths in the grid file
are relative to the project root, where every command runs. Raises `UserError` (one line, exit code 2) for a bad grid
file or flag, before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal

import yaml

from common import cli
from common.errors import UserError, first_line
from common.files import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
GRID_KEYS = {"output_root", "model_sizes", "launcher", "train_args", "eval_args", "compare_args", "cells",
             "comparisons"}
CELL_KEYS = {"config", "script", "launcher", "train_args", "evaluate", "eval_args"}
SET_BY_GRID = {"config", "model_size", "output_dir", "model_path", "runs"}  # flags the grid passes itself


@dataclass
class GridArguments:
    dry_run: bool = field(default=False, metadata={"help": "Print every command in order; run and write nothing."})
    only: str | None = field(default=None, metadata={
        "help": "Comma-separated fnmatch patterns over cell names ({size}/{cell}, e.g. '1.5B/*,*/mt-fft') or "
                "comparison names ({size}/compare-{name}); a comparison runs when its cells are selected or finished."})
    executor: Literal["local", "slurm"] = field(default="local", metadata={
        "help": "local: one step after another here; slurm: one submitit job per cell, comparisons here at the end."})
    slurm_partition: str | None = field(default=None, metadata={"help": "SLURM partition of the jobs."})
    gpus_per_node: int = field(default=1, metadata={"help": "GPUs per job (--executor slurm)."})
    cpus_per_task: int | None = field(default=None, metadata={"help": "CPUs per job (--executor slurm)."})
    timeout_min: int = field(default=2880, metadata={"help": "Time limit of a job in minutes (--executor slurm)."})
    submitit_cluster: Literal["slurm", "local", "debug"] = field(default="slurm", metadata={
        "help": "For testing: submitit's executor behind --executor slurm (local: processes here; debug: in-process)."})


@dataclass
class Cell:
    name: str  # {size}/{cell}
    train_dir: Path
    eval_dir: Path
    log: Path
    train: list[str]
    evaluate: list[str]


@dataclass
class Comparison:
    name: str  # {size}/compare-{name}
    needs: list[str]  # cell names
    inputs: list[Path]  # their evaluation folders
    out: Path
    log: Path
    command: list[str]


# ------------------------------------------------------------------------------------------------- the grid file

def _flags(values, where: str) -> list[str]:
    """`flag: value` settings (as in configs/*.yaml) as command-line tokens; a null value is left out."""
    if not isinstance(values, dict):
        raise UserError(f"{where}: expected `flag: value` settings, not {type(values).__name__}")
    from common.configs import setting_tokens

    for key in values:
        if key in SET_BY_GRID:
            raise UserError(f"{where}: --{key} is set by the grid itself; drop it")
    return setting_tokens(values)


def _path(value, where: str, kind: str = "file") -> Path:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: expected a path")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else ROOT / path
    if kind == "file" and not path.is_file():
        raise UserError(f"{where}: no such file: {value}")
    return path


def _shown(path: Path) -> str:
    """A path as the commands show it: relative to the project root (their working folder) when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", value):
        raise UserError(f"{where}: {value!r} is not a name (letters, digits, . _ + -)")
    return value


def load_grid(path: Path) -> tuple[Path, list[Cell], list[Comparison]]:
    """The grid file -> (output root, every cell, every comparison), all checked; nothing is read from the runs."""
    from common.configs import read_config

    if not path.is_file():
        raise UserError(f"no such grid file: {path}")
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"grid file {path}: cannot read it ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("cells"), dict) or not grid.get("model_sizes"):
        raise UserError(f"grid file {path}: expected a mapping with model_sizes and cells (see configs/study.yaml)")
    if unknown := sorted(set(grid) - GRID_KEYS):
        raise UserError(f"grid file {path}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(GRID_KEYS))}")
    root = _path(grid.get("output_root", "runs/study"), f"{path}: output_root", kind="folder")
    sizes = [_name(s, f"{path}: model_sizes") for s in _listed(grid["model_sizes"], f"{path}: model_sizes")]
    common_train = _flags(grid.get("train_args") or {}, f"{path}: train_args")
    common_eval = _flags(grid.get("eval_args") or {}, f"{path}: eval_args")
    compare_flags = _flags(grid.get("compare_args") or {}, f"{path}: compare_args")
    launcher = _launcher(grid.get("launcher"), f"{path}: launcher")
    specs = {}  # cell -> (training command without the size and folder, evaluate.py, evaluation flags)
    for key, spec in grid["cells"].items():
        where = f"{path}: cell {_name(key, f'{path}: cells')}"
        if not isinstance(spec, dict) or set(spec) - CELL_KEYS:
            raise UserError(f"{where}: expected keys among {', '.join(sorted(CELL_KEYS))}")
        config = _path(spec["config"], f"{where}: config") if spec.get("config") else None
        script = spec.get("script") or (read_config(config).get("script") if config else None)
        if not script:
            raise UserError(f"{where}: name the training script (script: multitask/qlora_train.py)")
        own = _launcher(spec["launcher"], f"{where}: launcher") if "launcher" in spec else launcher
        train = [*own, _shown(_path(script, f"{where}: script")), *(["--config", _shown(config)] if config else [])]
        specs[key] = (train, _flags(spec.get("train_args") or {}, f"{where}: train_args"),
                      [*own, _shown(_path(spec.get("evaluate"), f"{where}: evaluate"))],
                      _flags(spec.get("eval_args") or {}, f"{where}: eval_args"))
    declared = grid.get("comparisons") or {}
    if not isinstance(declared, dict):
        raise UserError(f"grid file {path}: comparisons: expected a mapping of comparison name -> configurations")
    for key, sides in declared.items():
        where = f"{path}: comparison {_name(key, f'{path}: comparisons')}"
        if not isinstance(sides, dict) or len(sides) < 2:
            raise UserError(f"{where}: expected two or more `NAME: [cells]` entries")
        for side, names in sides.items():
            _name(str(side), where)
            for name in _listed(names, where):
                if name not in specs:
                    raise UserError(f"{where}: unknown cell {name!r}; cells: {', '.join(specs)}")
    cells, comparisons = [], []
    for size in sizes:
        for key, (train, train_flags, evaluate, eval_flags) in specs.items():
            folder = root / size / key
            cells.append(Cell(f"{size}/{key}", folder, folder / "eval", root / size / f"{key}.log",
                              [*train, "--model_size", size, *common_train, *train_flags, "--output_dir", _shown(folder)],
                              [*evaluate, "--model_path", _shown(folder), *common_eval, *eval_flags,
                               "--output_dir", _shown(folder / "eval")]))
    for size in sizes:  # after every cell, size by size
        for key, sides in declared.items():
            out = root / size / f"compare-{key}"
            needs = {side: [f"{size}/{n}" for n in _listed(names, key)] for side, names in sides.items()}
            inputs = {side: [root / name / "eval" for name in names] for side, names in needs.items()}
            runs = [f"{side}=" + ",".join(map(_shown, folders)) for side, folders in inputs.items()]
            command = [sys.executable, "-m", "common.compare", "--runs", *runs, *compare_flags,
                       "--output_dir", _shown(out)]
            comparisons.append(Comparison(f"{size}/compare-{key}", sum(needs.values(), []), sum(inputs.values(), []),
                                          out, root / size / f"compare-{key}.log", command))
    return root, cells, comparisons


def _launcher(value, where: str) -> list[str]:
    """What runs the training and evaluation scripts: this Python, or a launcher command line such as
    `torchrun --standalone --nproc_per_node 8` or `accelerate launch --config_file configs/accelerate/fsdp.yaml`."""
    if value is None:
        return [sys.executable]
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: expected a command line, e.g. torchrun --standalone --nproc_per_node 8")
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise UserError(f"{where}: {value!r}: {exc}") from None


def _listed(value, where: str) -> list[str]:
    """One name or a list of names (a YAML list or a single string)."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}: expected a name or a list of names, not {value!r}")
    return names


# ------------------------------------------------------------------------------------------------------ the plan

def trained(cell: Cell) -> bool:
    from common.run_dir import read_complete

    return read_complete(cell.train_dir) is not None


def evaluated(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() and not (folder / "predictions.partial.jsonl").exists()


def compared(comparison: Comparison) -> bool:
    """compare.csv is there and newer than every evaluation it reads."""
    csv = comparison.out / "compare.csv"
    return csv.is_file() and all((d / "metrics.json").is_file() and (d / "metrics.json").stat().st_mtime_ns
                                 <= csv.stat().st_mtime_ns for d in comparison.inputs)


def plan(cells: list[Cell], comparisons: list[Comparison], only: str | None) -> tuple[list[Cell], list[Comparison]]:
    """The selected cells, and the comparisons that are selected or need a selected cell, whose other cells are
    finished."""
    if not only:
        return cells, comparisons
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    names = [c.name for c in cells] + [c.name for c in comparisons]
    for pattern in patterns:
        if not any(fnmatch(name, pattern) for name in names):
            raise UserError(f"--only {pattern}: matches no cell; cells are like {cells[0].name}")
    chosen = [c for c in cells if any(fnmatch(c.name, p) for p in patterns)]
    picked, done = {c.name for c in chosen}, {c.name for c in cells if trained(c) and evaluated(c.eval_dir)}
    return chosen, [c for c in comparisons
                    if (any(fnmatch(c.name, p) for p in patterns) or picked & set(c.needs))
                    and set(c.needs) <= picked | done]


# ------------------------------------------------------------------------------------------------------- running

def _show(command: list[str]) -> str:
    return shlex.join(["python" if command[0] == sys.executable else command[0], *command[1:]])


def _step(name: str, kind: str, command: list[str], log: Path) -> int:
    """One command as a subprocess in the project root, its output appended to `log`; one progress line."""
    print(f"{name}: {kind} (log {_shown(log)}) ...", end=" ", flush=True)
    start = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {_show(command)}\n")
        handle.flush()
        code = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
    print(f"{'ok' if code == 0 else f'exit {code}'} ({_duration(time.monotonic() - start)})", flush=True)
    return code


def run_cell(cell: Cell) -> dict:
    """Train (unless finished) then evaluate (unless finished) one cell: its status and wall time (None when nothing
    ran). Also the body of a submitit job."""
    if trained(cell) and evaluated(cell.eval_dir):
        return {"status": "done (earlier)", "wall_s": None}
    start = time.monotonic()
    for kind, command in ([] if trained(cell) else [("train", cell.train)]) + [("evaluate", cell.evaluate)]:
        if code := _step(cell.name, kind, command, cell.log):
            return {"status": f"failed: {kind}, exit {code}, see {_shown(cell.log)}",
                    "wall_s": time.monotonic() - start}
    return {"status": "done", "wall_s": time.monotonic() - start}


def run_comparison(comparison: Comparison, results: dict) -> dict:
    if missing := [n for n in comparison.needs if not results[n]["status"].startswith("done")]:
        return {"status": f"skipped: needs {missing[0]}", "wall_s": None}
    if compared(comparison):
        return {"status": "done (earlier)", "wall_s": None}
    start = time.monotonic()  # compare replaces its own earlier result (same arguments) by itself
    if code := _step(comparison.name, "compare", comparison.command, comparison.log):
        return {"status": f"failed: compare, exit {code}, see {_shown(comparison.log)}",
                "wall_s": time.monotonic() - start}
    return {"status": "done", "wall_s": time.monotonic() - start}


def _import_submitit():
    """submitit, imported without its import-time `logging.config.dictConfig`, which would shut down the handlers
    already configured in this process and bind its own to whatever sys.stdout/sys.stderr are at that moment; its
    loggers propagate to ours instead. Its jobs still configure their own logging (the variable is not inherited)."""
    saved = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    finally:
        if saved is None:
            del os.environ["SUBMITIT_LOG_LEVEL"]
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = saved
    return submitit


def run_slurm(cells: list[Cell], args: GridArguments, root: Path) -> dict:
    """One submitit job per cell; waits for them all."""
    submitit = _import_submitit()

    executor = submitit.AutoExecutor(folder=root / "submitit" / "%j", cluster=args.submitit_cluster)
    executor.update_parameters(timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_node,
                               **({"slurm_partition": args.slurm_partition} if args.slurm_partition else {}),
                               **({"cpus_per_task": args.cpus_per_task} if args.cpus_per_task else {}))
    paths = os.environ.get("PYTHONPATH", "")  # a job unpickles common.grid.run_cell: the project must be importable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), paths) if p)
    try:
        jobs = []
        for cell in cells:
            executor.update_parameters(name=f"grid-{cell.name.replace('/', '-')}")
            jobs.append(executor.submit(run_cell, cell))
            print(f"{cell.name}: job {jobs[-1].job_id}", flush=True)
    finally:
        os.environ["PYTHONPATH"] = paths
        if not paths:
            del os.environ["PYTHONPATH"]
    results = {}
    for cell, job in zip(cells, jobs):
        try:
            results[cell.name] = job.result()
        except Exception as exc:  # the job itself failed: killed, timed out, cancelled
            results[cell.name] = {"status": f"failed: job {job.job_id}, {first_line(exc, 120)}, see "
                                            f"{_shown(Path(job.paths.stderr))}", "wall_s": None}
        print(f"{cell.name}: {results[cell.name]['status']}", flush=True)
    return results


# ---------------------------------------------------------------------------------------------------- the summary

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def main_metrics(eval_dir: Path) -> dict:
    """task -> {metric: overall value} from an evaluation's metrics.json (the task's `main_metrics`, those the
    evaluation has; a task without them shows its first three values), {} without one."""
    try:
        metrics = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    found = {}
    for task, groups in metrics.items():
        overall = groups.get("overall", {}) if isinstance(groups, dict) else {}
        keys = _main_metrics(task) or [k for k, v in overall.items() if isinstance(v, (int, float))][:3]
        found[task] = {k: overall[k] for k in keys if isinstance(overall.get(k), (int, float))}
    return found


def _main_metrics(task: str) -> tuple[str, ...]:
    from common import tasks

    return tasks.TASKS[task].main_metrics if task in tasks.TASKS else ()


def summarize(root: Path, rows: list[dict]) -> str:
    lines = ["| cell | status | wall time | main metrics |", "|---|---|---|---|"]
    for row in rows:
        shown = "; ".join(f"{task}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                          for task, values in row.get("metrics", {}).items() if values)
        shown = shown or (f"{row['output']}/compare.md" if row.get("output") and "done" in row["status"] else "-")
        lines.append(f"| {row['cell']} | {row['status']} | {_duration(row['wall_s'])} | {shown} |")
    table = "\n".join(lines) + "\n"
    write_text(root / "grid_summary.md", f"# Grid summary\n\n{table}")
    write_json(root / "grid_summary.json", rows)
    return table


# ------------------------------------------------------------------------------------------------------ the flow

def run_grid(argv: list[str]) -> int:
    from common.parsing import make_parser

    parser = make_parser([GridArguments], prog="python -m common.grid", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid_file", help="The grid file, e.g. configs/study.yaml.")
    namespace = parser.parse_args(argv)
    args = GridArguments(**{k: v for k, v in vars(namespace).items() if k != "grid_file"})
    root, cells, comparisons = load_grid(Path(namespace.grid_file).expanduser())
    chosen, chosen_comparisons = plan(cells, comparisons, args.only)
    if args.executor == "slurm":
        try:
            _import_submitit()
        except ImportError:
            raise UserError("--executor slurm needs submitit: pip install submitit==1.5.4") from None
    if args.dry_run:
        for cell in chosen:
            print(f"# {cell.name} train: done (earlier)" if trained(cell) else _show(cell.train))
            print(f"# {cell.name} evaluate: done (earlier)" if evaluated(cell.eval_dir) else _show(cell.evaluate))
        for comparison in chosen_comparisons:
            print(f"# {comparison.name}: done (earlier)" if compared(comparison) else _show(comparison.command))
        return 0

    root.mkdir(parents=True, exist_ok=True)
    if args.executor == "slurm":
        results = run_slurm(chosen, args, root)
    else:
        results = {}
        for cell in chosen:
            results[cell.name] = run_cell(cell)
            if results[cell.name]["status"] != "done":
                print(f"{cell.name}: {results[cell.name]['status']}", flush=True)
    for cell in cells:  # those left out by --only
        finished = trained(cell) and evaluated(cell.eval_dir)
        results.setdefault(cell.name, {"status": "done (earlier)" if finished else "not selected", "wall_s": None})
    rows = [{"cell": c.name, **results[c.name], "metrics": main_metrics(c.eval_dir)} for c in cells]
    for comparison in comparisons:
        if comparison in chosen_comparisons:
            result = run_comparison(comparison, results)
            if result["status"] != "done":
                print(f"{comparison.name}: {result['status']}", flush=True)
        else:
            result = {"status": "done (earlier)" if compared(comparison) else "not selected", "wall_s": None}
        rows.append({"cell": comparison.name, **result, "output": _shown(comparison.out)})
    print(summarize(root, rows), end="")
    return 1 if any(row["status"].startswith("failed") for row in rows) else 0


def main(argv: list[str] | None = None) -> int:
    """0 when every step finished, 1 when one failed, 2 with one line on stderr for a user error."""
    outcome = {}

    def body() -> None:
        outcome["code"] = run_grid(sys.argv[1:] if argv is None else list(argv))

    code = cli.run(body, "rerun the same command: finished cells are skipped, an interrupted one continues")
    return code or outcome.get("code", 0)


if __name__ == "__main__":
    sys.exit(main())

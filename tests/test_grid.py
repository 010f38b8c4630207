"""The grid command: the study's grid as commands (--dry_run), one-line errors for a bad grid, and a miniature grid
run end to end on the tiny model (local executor and submitit), skipped on a rerun, a failed cell reported."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml

from common import grid
from conftest import ROOT, SAMPLES, snapshot

STUDY = ROOT / "configs" / "study.yaml"


def _study_copy(tmp_path, **changes):
    """configs/study.yaml with its output root under tmp_path (and any other key changed)."""
    settings = {**yaml.safe_load(STUDY.read_text()), "output_root": str(tmp_path / "study"), **changes}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def test_dry_run_prints_the_study_grid_in_order_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grid.subprocess, "run", lambda *a, **k: pytest.fail("--dry_run ran a command"))
    path = _study_copy(tmp_path)
    before = snapshot(tmp_path)
    assert grid.main([str(path), "--dry_run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = tmp_path / "study"
    trainings = [line for line in lines if "_train.py" in line]
    evaluations = [line for line in lines if "/evaluate.py" in line]
    comparisons = [line for line in lines if "common.compare" in line]
    assert (len(trainings), len(evaluations), len(comparisons), len(lines)) == (15, 15, 6, 36)
    assert lines[0] == (f"python multitask/qlora_train.py --config configs/mt-qlora.yaml --model_size 0.5B "
                        f"--output_dir {out}/0.5B/mt-qlora")
    assert lines[1] == (f"python multitask/evaluate.py --model_path {out}/0.5B/mt-qlora "
                        f"--output_dir {out}/0.5B/mt-qlora/eval")
    assert (f"python translation/qlora_train.py --config configs/st-qlora-translation.yaml --model_size 1.5B "
            f"--output_dir {out}/1.5B/st-qlora-translation") in trainings
    assert (f"python translation/evaluate.py --model_path {out}/1.5B/st-qlora-translation "
            f"--output_dir {out}/1.5B/st-qlora-translation/eval") in evaluations
    assert (f"python multitask/fft_train.py --config configs/mt-fft.yaml --model_size 3B "
            f"--output_dir {out}/3B/mt-fft") == trainings[-1]
    assert {line.split("--model_size ")[1].split()[0] for line in trainings} == {"0.5B", "1.5B", "3B"}
    assert lines[30] == (f"python -m common.compare --runs MT-QLoRA={out}/0.5B/mt-qlora/eval "
                         f"ST-QLoRA={out}/0.5B/st-qlora-summarization/eval,{out}/0.5B/st-qlora-generation/eval,"
                         f"{out}/0.5B/st-qlora-translation/eval --output_dir {out}/0.5B/compare-mt-qlora-vs-st-qlora")
    assert lines[-1] == (f"python -m common.compare --runs MT-QLoRA={out}/3B/mt-qlora/eval MT-FFT={out}/3B/mt-fft/eval"
                         f" --output_dir {out}/3B/compare-mt-qlora-vs-mt-fft")
    assert snapshot(tmp_path) == before, "--dry_run writes nothing"


def test_compare_args_reach_every_comparison(tmp_path, capsys):
    path = _study_copy(tmp_path, compare_args={"adjust": "bh", "intersect": True})
    assert grid.main([str(path), "--dry_run", "--only", "0.5B/*"]) == 0
    comparisons = [line for line in capsys.readouterr().out.splitlines() if "common.compare" in line]
    assert len(comparisons) == 2
    assert all(" --adjust bh --intersect True --output_dir " in line for line in comparisons)
    assert grid.main([str(_study_copy(tmp_path, compare_args={"runs": "A=x"})), "--dry_run"]) == 2
    assert "--runs is set by the grid itself" in capsys.readouterr().err


def test_the_shipped_grid_names_paths_under_the_project(capsys):
    assert grid.main([str(STUDY), "--dry_run", "--only", "1.5B/mt-fft"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "python multitask/fft_train.py --config configs/mt-fft.yaml --model_size 1.5B --output_dir runs/study/1.5B/mt-fft",
        "python multitask/evaluate.py --model_path runs/study/1.5B/mt-fft --output_dir runs/study/1.5B/mt-fft/eval"]


def test_only_selects_cells_and_the_comparisons_they_complete(tmp_path, capsys):
    path = _study_copy(tmp_path)
    assert grid.main([str(path), "--dry_run", "--only", "1.5B/mt-*,*/st-qlora-generation"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("--output_dir ")[1].removeprefix(f"{tmp_path}/study/") for line in lines] == [
        "0.5B/st-qlora-generation", "0.5B/st-qlora-generation/eval", "1.5B/mt-qlora", "1.5B/mt-qlora/eval",
        "1.5B/st-qlora-generation", "1.5B/st-qlora-generation/eval", "1.5B/mt-fft", "1.5B/mt-fft/eval",
        "3B/st-qlora-generation", "3B/st-qlora-generation/eval",
        "1.5B/compare-mt-qlora-vs-mt-fft"]  # the ST comparison needs unfinished, unselected cells


@pytest.mark.parametrize("grid_text, only, needle", [
    (None, None, "no such grid file"),
    ("cells: [a\n", None, "cannot read it"),
    ("model_sizes: [1B]\ncells:\n  a: {config: configs/nope.yaml, evaluate: multitask/evaluate.py}\n", None,
     "no such file: configs/nope.yaml"),
    ("model_sizes: [1B]\ncells:\n  a: {config: configs/mt-fft.yaml, evaluate: multitask/evaluate.py}\n"
     "comparisons:\n  c: {A: [a], B: [b]}\n", None, "comparison c: unknown cell 'b'"),
    ("model_sizes: [1B]\ncells:\n  a: {config: configs/mt-fft.yaml, evaluate: multitask/evaluate.py}\n"
     "train_args: {output_dir: x}\n", None, "--output_dir is set by the grid itself"),
    ("model_sizes: [1B]\ncels: {}\n", None, "expected a mapping with model_sizes and cells"),
    ("model_sizes: [1B]\ncells:\n  a: {config: configs/mt-fft.yaml, evaluate: multitask/evaluate.py}\n", "2B/*",
     "--only 2B/*: matches no cell"),
])
def test_a_bad_grid_is_one_line_before_anything_runs(tmp_path, capsys, grid_text, only, needle):
    path = tmp_path / "grid.yaml"
    if grid_text is not None:
        path.write_text(f"output_root: {tmp_path / 'out'}\n{grid_text}")
    before = snapshot(tmp_path)
    code = grid.main([str(path), *(["--only", only] if only else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert snapshot(tmp_path) == before


def test_slurm_without_submitit_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # import submitit raises ImportError
    assert grid.main([str(_study_copy(tmp_path)), "--executor", "slurm", "--dry_run"]) == 2
    assert "needs submitit" in capsys.readouterr().err


def test_submitit_is_imported_without_reconfiguring_logging(monkeypatch):
    """submitit's import-time logging.config.dictConfig would shut down this process's handlers and bind its own to
    the sys.stdout/sys.stderr of that moment (a closed pytest capture later: the process lost its stderr)."""
    import logging
    import sys

    for name in [m for m in sys.modules if m == "submitit" or m.startswith("submitit.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(logging.getLogger("submitit"), "handlers", [])
    monkeypatch.delenv("SUBMITIT_LOG_LEVEL", raising=False)
    assert grid._import_submitit().AutoExecutor
    assert logging.getLogger("submitit").handlers == []
    assert "SUBMITIT_LOG_LEVEL" not in __import__("os").environ  # the jobs configure their own logging


def test_main_metrics_are_the_tasks_overall_values(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {
        "summarization": {"overall": {"bleu": 10.0, "chrf": 30.0, "rougeL": 20.0, "n": 4}, "java": {"bleu": 1.0}},
        "generation": {"overall": {"codebleu": 25.0, "bleu": 3.0, "pass@1": 0.5, "exact_match": 0.1}},
        "unregistered": {"overall": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}}}}))
    # each task's main_metrics (its TaskSpec), in that order, those the evaluation has; else the first three values
    assert grid.main_metrics(tmp_path) == {"summarization": {"bleu": 10.0, "rougeL": 20.0, "chrf": 30.0},
                                           "generation": {"pass@1": 0.5, "codebleu": 25.0, "bleu": 3.0},
                                           "unregistered": {"a": 1.0, "b": 2.0, "c": 3.0}}


# ------------------------------------------------------------------------------------ a miniature grid, end to end

def _mini_grid(tmp_path, tiny_model, cells: dict, comparisons: dict) -> tuple:
    """Two cells on generation (a single-task QLoRA and a multi-task FFT trained on generation only), a few steps
    of the tiny model on the shipped samples; {model_size} is the tiny model's folder name."""
    data = {"summarization_dataset": str(SAMPLES / "code_to_text"),
            "translation_dataset": str(SAMPLES / "code_to_code_trans")}
    settings = {
        "output_root": str(tmp_path / "out"), "model_sizes": [tiny_model.name],
        "train_args": {"base_model_name": str(tiny_model.parent / "{model_size}"), **data, "max_steps": 2,
                       "device_batch_size": 4, "gradient_accumulation_steps": 1, "sample_size": 6,
                       "val_sample_size": 3, "learning_rate": 1e-2, "warmup_steps": 0, "disable_tqdm": True,
                       "seed": 0, "eval_strategy": "no"},
        "eval_args": {**data, "num_samples": 2, "max_new_tokens": 6},
        "cells": cells, "comparisons": comparisons}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path, tmp_path / "out", tmp_path / "out" / tiny_model.name


ST = {"config": "configs/st-qlora-generation.yaml", "train_args": {"bnb_4bit_compute_dtype": "float32"},
      "evaluate": "generation/evaluate.py"}
FFT = {"config": "configs/mt-fft.yaml", "train_args": {"tasks": "generation"}, "evaluate": "multitask/evaluate.py"}


def _statuses(out) -> dict:
    return {row["cell"].split("/", 1)[1]: row["status"] for row in json.loads((out / "grid_summary.json").read_text())}


@pytest.mark.slow
def test_mini_grid_runs_skips_when_finished_and_reports_a_failed_cell(tiny_model, tmp_path, capsys):
    broken = {**ST, "train_args": {**ST["train_args"], "no_such_flag": 1}}
    path, out, size = _mini_grid(tmp_path, tiny_model, {"st": ST, "fft": FFT, "broken": broken},
                                 {"st-vs-fft": {"ST": ["st"], "FFT": "fft"}, "st-vs-broken": {"ST": "st", "B": "broken"}})
    assert grid.main([str(path)]) == 1  # a cell failed
    printed = capsys.readouterr().out
    assert _statuses(out) == {"st": "done", "fft": "done", "compare-st-vs-fft": "done",
                              "broken": f"failed: train, exit 2, see {size}/broken.log",
                              "compare-st-vs-broken": f"skipped: needs {size.name}/broken"}
    assert f"{size.name}/broken: failed: train" in printed
    assert "no_such_flag" in (size / "broken.log").read_text()
    for cell in ("st", "fft"):
        assert (size / cell / "run_complete.json").is_file() and (size / cell / "eval" / "metrics.json").is_file()
    assert (size / "compare-st-vs-fft" / "compare.csv").is_file()
    assert "| done | " in (out / "grid_summary.md").read_text()
    assert json.loads((out / "grid_summary.json").read_text())[0]["metrics"]["generation"]["codebleu"] >= 0

    # an evaluation gone: only it runs again (not the training), then the comparison that reads it
    shutil.rmtree(size / "fft" / "eval")
    assert grid.main([str(path), "--only", "*/st,*/fft"]) == 0
    printed = capsys.readouterr().out
    assert f"{size.name}/fft: evaluate" in printed and f"{size.name}/fft: train" not in printed
    assert f"{size.name}/compare-st-vs-fft: compare" in printed
    assert _statuses(out)["st"] == "done (earlier)" and _statuses(out)["fft"] == "done"

    # everything finished: a rerun skips it all, quickly
    start = time.monotonic()
    assert grid.main([str(path), "--only", "*/st,*/fft"]) == 0
    assert time.monotonic() - start < 10
    assert _statuses(out) == {"st": "done (earlier)", "fft": "done (earlier)", "compare-st-vs-fft": "done (earlier)",
                              "broken": "not selected", "compare-st-vs-broken": "not selected"}


@pytest.mark.slow
def test_mini_grid_through_submitit(tiny_model, tmp_path, capsys):
    path, out, size = _mini_grid(tmp_path, tiny_model, {"st": ST}, {})
    assert grid.main([str(path), "--executor", "slurm", "--submitit_cluster", "local", "--gpus_per_node", "0",
                      "--timeout_min", "10"]) == 0
    assert _statuses(out) == {"st": "done"}
    assert (size / "st" / "run_complete.json").is_file() and (size / "st" / "eval" / "metrics.json").is_file()
    assert any((out / "submitit").rglob("*_result.pkl")), "the cell ran as a submitit job"


def test_a_launcher_runs_the_scripts_on_several_processes(tmp_path, capsys):
    path = _study_copy(tmp_path, launcher="torchrun --standalone --nproc_per_node 8")
    assert grid.main([str(path), "--dry_run", "--only", "0.5B/mt-qlora"]) == 0
    out = tmp_path / "study"
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"torchrun --standalone --nproc_per_node 8 multitask/qlora_train.py --config configs/mt-qlora.yaml "
        f"--model_size 0.5B --output_dir {out}/0.5B/mt-qlora",
        f"torchrun --standalone --nproc_per_node 8 multitask/evaluate.py --model_path {out}/0.5B/mt-qlora "
        f"--output_dir {out}/0.5B/mt-qlora/eval"]
    assert grid.main([str(_study_copy(tmp_path, launcher="torchrun 'x")), "--dry_run"]) == 2
    assert "launcher" in capsys.readouterr().err

    settings = yaml.safe_load(STUDY.read_text())  # a cell's own launcher: FSDP for the FFT cell only
    settings["cells"]["mt-fft"]["launcher"] = "accelerate launch --config_file configs/accelerate/fsdp.yaml"
    path = _study_copy(tmp_path, launcher="torchrun --standalone --nproc_per_node 8", cells=settings["cells"])
    assert grid.main([str(path), "--dry_run", "--only", "3B/*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fft = [line for line in lines if "mt-fft" in line and "common.compare" not in line]
    assert len(fft) == 2 and all(line.startswith("accelerate launch --config_file configs/accelerate/fsdp.yaml ")
                                 for line in fft)
    others = [line for line in lines if "common.compare" not in line and "mt-fft" not in line]
    assert len(others) == 8 and all(line.startswith("torchrun --standalone --nproc_per_node 8 ") for line in others)

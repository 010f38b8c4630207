"""Evaluation survives being killed and never overwrites another evaluation, an input or the model.

A run interrupted after some batches and rerun with the same command generates only the missing batches and writes
the same files as an uninterrupted run; a finished evaluation rerun is scored again from its own answers; other
arguments, a foreign file in the folder, an output folder that is an input, and a live lock are refused; a budget
beyond the model's context is capped and said; the sandbox that ran the tests is recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from common import eval_resume
from conftest import SAMPLES, load_script, read_json

DATA = ["--summarization_dataset", str(SAMPLES / "code_to_text"), "--languages", "python", "--num_samples", "6",
        "--batch_size", "2", "--max_new_tokens", "6", "--quality", "False"]


def _evaluate(*args: str) -> int:
    return load_script("summarization", "evaluate").main(list(args))



@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "whole"
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 0
    return out


def _same_outputs(a, b):
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
    ma, mb = read_json(a / "metrics.json"), read_json(b / "metrics.json")
    for m in (ma, mb):
        m["arguments"].pop("output_dir")
    assert ma == mb
    assert not (b / eval_resume.PARTIAL).exists() and not (b / ".lock").exists()


def test_killed_evaluation_resumes_to_the_same_files(tiny_model, uninterrupted, tmp_path, monkeypatch, capsys,
                                                     generate_calls):
    out = tmp_path / "eval"
    real = eval_resume.EvaluationFolder.record
    recorded: list[int] = []

    def killed_after_two(self, answers):
        if len(recorded) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) while the third batch was generated
        recorded.append(len(answers))
        real(self, answers)

    monkeypatch.setattr(eval_resume.EvaluationFolder, "record", killed_after_two)
    code = _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out))
    assert code == 130
    assert "rerun the same command" in capsys.readouterr().err.strip().splitlines()[-1]
    assert len(generate_calls) == 3 and recorded == [2, 2]
    lines = (out / eval_resume.PARTIAL).read_text().splitlines()
    assert len(lines) == 1 + 4  # the header, then two batches of two
    assert not (out / "predictions.jsonl").exists() and not (out / ".lock").exists()
    with open(out / eval_resume.PARTIAL, "a") as f:
        f.write('{"key": "summarization\\tpython:torn", "out')  # a kill in the middle of a line

    monkeypatch.setattr(eval_resume.EvaluationFolder, "record", real)
    generate_calls.clear()
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 0
    assert generate_calls == [2]  # only the third batch
    _same_outputs(uninterrupted, out)


def test_finished_evaluation_is_rescored_without_generating(tiny_model, uninterrupted, tmp_path, generate_calls):
    out = tmp_path / "again"
    shutil.copytree(uninterrupted, out)
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 0
    assert generate_calls == []
    _same_outputs(uninterrupted, out)


def test_other_arguments_are_refused_and_overwrite_starts_afresh(tiny_model, uninterrupted, tmp_path, capsys,
                                                                 generate_calls):
    out = tmp_path / "again"
    shutil.copytree(uninterrupted, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["--model_path", str(tiny_model), *DATA, "--max_new_tokens", "5", "--output_dir", str(out)]
    assert _evaluate(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "max_new_tokens (6 -> 5)" in err and "--overwrite_output_dir" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and generate_calls == []
    assert _evaluate(*argv, "--overwrite_output_dir", "True") == 0
    assert len(generate_calls) == 3
    assert read_json(out / "metrics.json")["arguments"]["max_new_tokens"] == 5


def test_changed_model_files_are_refused(tiny_model, uninterrupted, tmp_path, capsys):
    model, out = tmp_path / "model", tmp_path / "again"
    shutil.copytree(tiny_model, model)
    shutil.copytree(uninterrupted, out)
    argv = ["--model_path", str(model), *DATA, "--output_dir", str(out)]
    metrics = read_json(out / "metrics.json")  # the same evaluation, recorded with this model's path
    metrics["evaluation_record"]["arguments"]["model_path"] = str(model.resolve())
    (out / "metrics.json").write_text(json.dumps(metrics))
    assert _evaluate(*argv) == 0  # the same files (copied with their times): the same evaluation
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # trained again
    assert _evaluate(*argv) == 2
    assert "the model or the test data changed" in capsys.readouterr().err


def test_foreign_files_in_the_output_dir_are_refused(tiny_model, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "predictions.jsonl").write_text('{"id": 1, "prediction": "my own work"}\n')
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --output_dir") and "something other than an evaluation" in err
    assert (out / "predictions.jsonl").read_text() == '{"id": 1, "prediction": "my own work"}\n'
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl"]


@pytest.mark.parametrize("where", ["model", "data", "file"])
def test_output_dir_over_an_input_is_refused(where, tiny_model, tmp_path, capsys, generate_calls):
    model, data = tmp_path / "model", tmp_path / "data"
    shutil.copytree(tiny_model, model)
    shutil.copytree(SAMPLES / "code_to_text", data)
    target = {"model": model, "data": data / "python", "file": tmp_path / "a_file"}[where]
    if where == "file":
        target.write_text("keep me")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = ["--model_path", str(model), *DATA, "--summarization_dataset", str(data), "--output_dir", str(target)]
    assert _evaluate(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --output_dir") and not any("Traceback" in line for line in err)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before and generate_calls == []


def test_a_live_lock_is_refused(tiny_model, tmp_path, capsys, generate_calls):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        import socket

        (out / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid,
                                               "started": "earlier", "command": "another evaluation"}))
        assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: --output_dir") and f"pid {holder.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == [".lock"] and generate_calls == []
    finally:
        holder.kill()
        holder.wait()


def test_budget_beyond_the_context_is_capped_and_said(tiny_model, tmp_path, generate_calls, monkeypatch):
    from transformers import GenerationMixin

    budgets: list[int] = []
    counting = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        budgets.append(kwargs["max_new_tokens"])
        return counting(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    out = tmp_path / "eval"
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--max_new_tokens", "1000000",
                     "--max_prompt_length", "2040", "--output_dir", str(out)) == 0
    assert set(budgets) == {8}  # the tiny model's context is 2048 tokens
    metrics = read_json(out / "metrics.json")
    assert any("max_new_tokens 1000000 capped to 8" in note for note in metrics["notes"])
    assert metrics["arguments"]["max_new_tokens"] == 1000000  # what was typed; the note says what ran


def _humaneval_predictions(path, n):
    from common.benchmarks import load_humaneval

    with open(path, "w") as f:
        for p in load_humaneval()[:n]:
            f.write(json.dumps({"id": p["task_id"], "prediction": p["prompt"] + p["canonical_solution"]}) + "\n")


def test_the_sandbox_is_recorded_and_required(tmp_path, monkeypatch, capsys):
    from common import execution

    preds = tmp_path / "preds.jsonl"
    _humaneval_predictions(preds, 3)
    asked: list[bool] = []
    real = execution.execute_programs

    def spy(programs, **kwargs):
        asked.append(kwargs["unsafe"])
        return real(programs, **kwargs)

    monkeypatch.setattr(execution, "execute_programs", spy)
    argv = ["--benchmark", "humaneval", "--predictions_file", str(preds), "--num_samples", "3", "--quality", "False"]
    gen = load_script("generation", "evaluate")
    assert gen.main([*argv, "--output_dir", str(tmp_path / "safe")]) == 0
    layers = read_json(tmp_path / "safe" / "metrics.json")["execution"]
    assert layers == execution.sandbox_layers() and layers["tool"] in ("bwrap", "unshare")

    monkeypatch.setenv(execution.SANDBOX_ENV, "none")  # as on a machine without bubblewrap or unshare
    assert gen.main([*argv, "--output_dir", str(tmp_path / "refused")]) == 2
    assert "--unsafe_execution" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "refused").exists()
    assert gen.main([*argv, "--output_dir", str(tmp_path / "unsafe"), "--unsafe_execution", "True"]) == 0
    metrics = read_json(tmp_path / "unsafe" / "metrics.json")
    assert asked == [False, True]  # the fallback is permitted only where the flag was given
    assert metrics["execution"]["tool"] == "none" and metrics["metrics"]["generation"]["python"]["pass@1"] == 1.0


def test_summaries_record_no_execution(uninterrupted):
    assert "execution" not in read_json(uninterrupted / "metrics.json")
    assert os.path.exists(uninterrupted / "report.md")


def test_a_lone_surrogate_in_predictions_is_one_line(tmp_path, capsys):
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "HumanEval/0", "prediction": "def f():\\n    return \\"\\ud800\\""}\n')
    out = tmp_path / "out"
    code = load_script("generation", "evaluate").main(["--benchmark", "humaneval", "--predictions_file", str(preds),
                                                        "--num_samples", "1", "--output_dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --predictions_file: line 1") and "surrogate" in err[-1]
    assert not out.exists() and not any("Traceback" in line for line in err)


def test_answers_of_another_runtime_are_not_reused(tiny_model, uninterrupted, tmp_path, capsys, monkeypatch):
    from common import training

    out = tmp_path / "again"
    shutil.copytree(uninterrupted, out)
    real = training.library_versions
    monkeypatch.setattr(training, "library_versions", lambda: dict(real(), transformers="0.0.1"))
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 2
    assert "another device, dtype or library version" in capsys.readouterr().err


def test_overwrite_keeps_the_earlier_evaluation_until_the_new_one_runs(tiny_model, uninterrupted, tmp_path, capsys):
    broken, out = tmp_path / "broken", tmp_path / "again"
    shutil.copytree(tiny_model, broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    shutil.copytree(uninterrupted, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _evaluate("--model_path", str(broken), *DATA, "--output_dir", str(out), "--overwrite_output_dir",
                     "True") == 2
    assert "holds no model weights" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

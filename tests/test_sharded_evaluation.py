"""A sharded evaluation (--shard I/N, then the same command without it) writes the files one process writes.

Each shard generates every N-th batch of the whole run's batches and records them in its shard file; the run without
--shard reuses them whole, generates what no shard did, and scores. (Under torchrun: tests/test_distributed.py.)
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from common import eval_resume
from conftest import load_script, read_json
from test_eval_resume import DATA, _evaluate, _same_outputs
from test_eval_resume import uninterrupted  # noqa: F401 - a fixture: the whole evaluation, one process


def _shard_rows(path) -> dict:
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert "shard" not in header["arguments"]  # shards and the whole run have the same comparable arguments
    return {json.loads(line)["key"]: json.loads(line)["output"] for line in lines[1:]}


def test_two_shards_then_the_merge_write_the_whole_runs_files(tiny_model, uninterrupted, tmp_path, generate_calls):
    out = tmp_path / "sharded"
    argv = ["--model_path", str(tiny_model), *DATA, "--output_dir", str(out)]
    assert _evaluate(*argv, "--shard", "0/2") == 0
    assert generate_calls == [2, 2]  # 6 items in batches of 2: batches 0 and 2
    assert _evaluate(*argv, "--shard", "1/2") == 0
    assert generate_calls == [2, 2, 2]  # batch 1
    assert sorted(p.name for p in out.iterdir()) == ["predictions.shard-0-of-2.jsonl", "predictions.shard-1-of-2.jsonl"]
    first, second = (_shard_rows(out / f"predictions.shard-{i}-of-2.jsonl") for i in (0, 1))
    assert len(first) == 4 and len(second) == 2 and not set(first) & set(second)
    expected = {eval_resume.item_key(row): row["output"]
                for row in map(json.loads, (uninterrupted / "predictions.jsonl").read_text().splitlines())}
    assert {**first, **second} == expected  # each answer is the one the whole run generated

    assert _evaluate(*argv, "--shard", "1/2") == 0  # a finished shard rerun generates nothing
    assert _evaluate(*argv) == 0  # the merge
    assert generate_calls == [2, 2, 2]
    _same_outputs(uninterrupted, out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.jsonl", "report.md"]
    assert _evaluate(*argv, "--shard", "0/2") == 0  # after the merge: nothing left to do, nothing written
    assert generate_calls == [2, 2, 2]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.jsonl", "report.md"]


def test_the_merge_generates_what_no_shard_did(tiny_model, uninterrupted, tmp_path, generate_calls):
    out = tmp_path / "sharded"
    argv = ["--model_path", str(tiny_model), *DATA, "--output_dir", str(out)]
    assert _evaluate(*argv, "--shard", "1/3") == 0
    assert generate_calls == [2]
    assert _evaluate(*argv) == 0
    assert generate_calls == [2, 2, 2]  # the two batches of the shards never run
    _same_outputs(uninterrupted, out)


@pytest.mark.parametrize("shard, extra, message", [
    ("2/2", [], "--shard 2/2: give I/N with 0 <= I < N"),
    ("a/b", [], "--shard a/b: give I/N"),
    ("0/2", ["--overwrite_output_dir", "True"], "--shard generates part of the answers: --overwrite_output_dir"),
])
def test_bad_shards_are_one_line(shard, extra, message, tiny_model, tmp_path, capsys):
    out = tmp_path / "x"
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out), "--shard", shard, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {message}") and not any("Traceback" in line for line in err)
    assert not out.exists()


def test_a_shard_with_other_arguments_is_refused(tiny_model, tmp_path, capsys, generate_calls):
    out = tmp_path / "sharded"
    argv = ["--model_path", str(tiny_model), *DATA, "--output_dir", str(out)]
    assert _evaluate(*argv, "--shard", "0/2") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _evaluate(*argv, "--max_new_tokens", "5", "--shard", "1/2") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "max_new_tokens (6 -> 5)" in err and "predictions.shard" not in err
    assert _evaluate(*argv, "--max_new_tokens", "5") == 2  # nor merged by a run with other arguments
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and generate_calls == [2, 2]


@pytest.mark.parametrize("held, run", [(".lock-shard-0-of-2", []), (".lock", ["--shard", "1/2"])])
def test_no_merge_while_a_shard_runs_and_no_shard_while_merging(held, run, tiny_model, tmp_path, capsys,
                                                                generate_calls):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (out / held).write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid, "started": "earlier",
                                            "what": "an evaluation (summarization/evaluate.py)"}))
        assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out), *run) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: --output_dir") and f"pid {holder.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == [held] and generate_calls == []
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_shard_resumes_its_own_batches(tiny_model, uninterrupted, tmp_path, monkeypatch, generate_calls):
    out = tmp_path / "sharded"
    argv = ["--model_path", str(tiny_model), *DATA, "--output_dir", str(out)]
    real = eval_resume.EvaluationFolder.record
    calls = []

    def killed_after_one(self, answers):
        if calls:
            raise KeyboardInterrupt
        calls.append(answers)
        real(self, answers)

    monkeypatch.setattr(eval_resume.EvaluationFolder, "record", killed_after_one)
    assert _evaluate(*argv, "--shard", "0/2") == 130
    assert sorted(p.name for p in out.iterdir()) == ["predictions.shard-0-of-2.partial.jsonl"]
    monkeypatch.setattr(eval_resume.EvaluationFolder, "record", real)
    generate_calls.clear()
    assert _evaluate(*argv, "--shard", "0/2") == 0
    assert generate_calls == [2]  # only its second batch
    assert _evaluate(*argv, "--shard", "1/2") == 0
    assert _evaluate(*argv) == 0
    _same_outputs(uninterrupted, out)
    assert read_json(out / "metrics.json")["num_items"] == 6


def test_a_shard_under_a_launcher_is_refused(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "x"
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out), "--shard", "0/2") == 2
    assert "the 2 processes split the batches themselves; drop --shard" in capsys.readouterr().err
    assert not out.exists()


def test_rescoring_under_a_launcher_is_done_by_the_first_process_alone(tiny_model, uninterrupted, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["--predictions_file", str(uninterrupted / "predictions.jsonl"), *DATA, "--output_dir"]
    monkeypatch.setenv("RANK", "1")
    assert _evaluate(*argv, str(tmp_path / "one")) == 0
    assert not (tmp_path / "one").exists()
    monkeypatch.setenv("RANK", "0")
    assert _evaluate(*argv, str(tmp_path / "zero")) == 0
    assert (tmp_path / "zero" / "metrics.json").exists()


def test_shards_then_a_merge_that_exports_for_codereval(tiny_model, tmp_path):
    """--export_codereval changes no number: shards without it are merged by the run with it."""
    from test_study_files import HUMANLABEL, _write_jsonl

    prompts = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    argv = ["--model_path", str(tiny_model), "--test_dataset", str(prompts), "--batch_size", "1",
            "--max_new_tokens", "4", "--quality", "False", "--output_dir", str(tmp_path / "out")]
    gen = load_script("generation", "evaluate")
    assert gen.main([*argv, "--shard", "0/2"]) == 0 and gen.main([*argv, "--shard", "1/2"]) == 0
    assert gen.main([*argv, "--export_codereval", str(tmp_path / "harness.jsonl")]) == 0
    assert len((tmp_path / "harness.jsonl").read_text().splitlines()) == len(HUMANLABEL)


def test_a_shard_rerun_after_an_interrupted_merge_generates_nothing(tiny_model, uninterrupted, tmp_path, monkeypatch,
                                                                    generate_calls):
    import common.evaluation

    out = tmp_path / "sharded"
    argv = ["--model_path", str(tiny_model), *DATA, "--output_dir", str(out)]
    assert _evaluate(*argv, "--shard", "0/2") == 0 and _evaluate(*argv, "--shard", "1/2") == 0

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    real = common.evaluation.score
    monkeypatch.setattr(common.evaluation, "score", killed)
    assert _evaluate(*argv) == 130  # the merge, killed while scoring: the answers now sit in its partial file
    assert sorted(p.name for p in out.iterdir()) == [eval_resume.PARTIAL]
    monkeypatch.setattr(common.evaluation, "score", real)
    generate_calls.clear()
    assert _evaluate(*argv, "--shard", "0/2") == 0 and _evaluate(*argv, "--shard", "1/2") == 0
    assert generate_calls == []  # every batch was there already
    assert _evaluate(*argv) == 0
    _same_outputs(uninterrupted, out)


def test_the_first_process_refuses_to_score_when_the_others_answers_are_elsewhere(tiny_model, tmp_path, capsys,
                                                                                   monkeypatch, generate_calls):
    """Under a launcher, process 0 scores once every process's shard file is in the (shared) output folder."""
    import torch.distributed as dist

    for name in ("init_process_group", "barrier", "destroy_process_group"):
        monkeypatch.setattr(dist, name, lambda *a, **k: None)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    out = tmp_path / "out"
    assert _evaluate("--model_path", str(tiny_model), *DATA, "--output_dir", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the answers of process(es) 1 are not there" in err
    assert generate_calls == [2, 2]  # its own shard only; the other process's batch was not generated here
    assert sorted(p.name for p in out.iterdir()) == ["predictions.shard-0-of-2.jsonl"]


def test_a_machine_without_a_sandbox_is_refused_before_a_shard_generates(tmp_path, monkeypatch, capsys,
                                                                         generate_calls, tiny_model):
    import common.execution

    def no_sandbox(unsafe):
        from common.errors import UserError

        raise UserError("no sandbox here (test)")

    monkeypatch.setattr(common.execution, "sandbox_layers", no_sandbox)
    out = tmp_path / "he"
    argv = ["--model_path", str(tiny_model), "--benchmark", "humaneval", "--num_samples", "2", "--max_new_tokens",
            "4", "--quality", "False", "--output_dir", str(out), "--shard", "0/2"]
    assert load_script("generation", "evaluate").main(argv) == 2
    assert "no sandbox here (test)" in capsys.readouterr().err and generate_calls == [] and not out.exists()


def test_under_a_launcher_the_merges_checks_run_before_any_process_generates(tiny_model, tmp_path, capsys,
                                                                             monkeypatch, generate_calls):
    import torch.distributed as dist
    from test_study_files import HUMANLABEL, _write_jsonl

    for name in ("init_process_group", "barrier", "destroy_process_group"):
        monkeypatch.setattr(dist, name, lambda *a, **k: pytest.fail("reached the distributed set-up"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    prompts = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    argv = ["--model_path", str(tiny_model), "--test_dataset", str(prompts), "--max_new_tokens", "4", "--quality",
            "False", "--output_dir", str(tmp_path / "out"), "--export_codereval", str(prompts)]
    assert load_script("generation", "evaluate").main(argv) == 2
    assert "is one of this run's inputs" in capsys.readouterr().err
    assert generate_calls == [] and not (tmp_path / "out").exists()

"""Adding a task is one declaration: a fourth task registered from this test module (code -> its function's name),
trained with the multi-task script on the tiny model and evaluated, without touching a file under common/."""

from __future__ import annotations

import json
import re

import pytest

from common import metrics
from common.extraction import extract_code
from common.tasks import TaskSpec, register, unregister
from conftest import SAMPLES, load_script, read_json, run_script

NAME = "function_name"
_DEF = re.compile(r"(?:def|\b(?:public|private|protected|static)\b[\w<>\[\], ]*?)\s+(\w+)\s*\(")


def rows(data, lang, split, n, seed, raw=None):
    from common.data import load_task_split, make_row, sample, usable

    raw = usable(sample(raw if raw is not None else load_task_split(SPEC, data, lang, split), n, seed), ("code",),
                 f"{NAME} {lang} {split}")
    out = []
    for rid, code in zip(raw["id"], raw["code"]):
        match = _DEF.search(code)
        if match:
            out.append(make_row(NAME, lang, rid, source=code, reference=match.group(1)))
    return out


def messages(row, source=None):
    return [{"role": "system", "content": "You name code."},
            {"role": "user", "content": f"What is this function called?\n{row['source'] if source is None else source}"}]


def score(context, lang, answers, items):
    return metrics.text_scores(answers, [it["reference"] for it in items])


SPEC = TaskSpec(
    name=NAME, summary="code -> its function's name", groups="languages", data_flag="summarization_dataset",
    rows=rows, messages=messages, target=lambda row: row["reference"],
    extract=lambda text, lang: extract_code(text, lang).split("\n")[0].strip(), score=score, truncatable=True,
    code_answer=False, max_new_tokens=8,
)


@pytest.fixture()
def toy_task():
    register(SPEC)
    yield SPEC
    unregister(NAME)


def test_a_registered_task_trains_and_evaluates_with_the_multitask_scripts(toy_task, tiny_model, tmp_path):
    run = tmp_path / "run"
    assert run_script("multitask", "qlora", tiny_model, run, tasks=f"summarization,{NAME}", max_steps=2,
                      eval_strategy="steps", eval_steps=2) == 0
    config = read_json(run / "run_config.json")
    assert config["arguments"]["tasks"] == ["summarization", NAME]
    assert set(config["counts"]["train"]) == {"summarization/java", "summarization/python", f"{NAME}/java",
                                              f"{NAME}/python"}
    losses = {k for h in read_json(run / "trainer_state.json")["log_history"] for k in h}
    assert {"eval_summarization_loss", f"eval_{NAME}_loss"} <= losses

    train = [json.loads(line) for line in (SAMPLES / "code_to_text" / "python" / "test.jsonl").read_text().splitlines()]
    out = tmp_path / "eval"
    assert load_script("multitask", "evaluate").main([  # the run's own tasks, from its run_config.json
        "--model_path", str(run), "--summarization_dataset", str(SAMPLES / "code_to_text"), "--num_samples", "2",
        "--max_new_tokens", "4", "--output_dir", str(out)]) == 0
    report = read_json(out / "metrics.json")
    assert set(report["metrics"]) == {"summarization", NAME}
    assert {"exact_match", "bleu"} <= set(report["metrics"][NAME]["overall"])
    names = [r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines()) if r["task"] == NAME]
    assert len(names) == 4 and all(r["reference"].isidentifier() for r in names)
    assert any(r["reference"] in row["code"] for row in train for r in names)


def test_an_unregistered_task_is_refused(tmp_path, capsys):
    assert load_script("multitask", "qlora").main(["--tasks", f"summarization,{NAME}", "--output_dir",
                                                   str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --tasks: unknown task function_name") and "summarization" in err

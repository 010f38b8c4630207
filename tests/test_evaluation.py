"""The evaluation entry points on a tiny trained run, predictions-file scoring, HumanEval by execution."""

from __future__ import annotations

import json

import pytest

from common import extraction
from common.tasks import get
from common.encoding import ChatFormat, encode_row, fit_prompt
from common.eval_args import parse_eval_args
from common.eval_items import build_items
from conftest import SAMPLES, TASKS, load_script, read_json, run_script

DATA = ["--summarization_dataset", str(SAMPLES / "code_to_text"),
        "--translation_dataset", str(SAMPLES / "code_to_code_trans")]


def _evaluate(task: str, *args: str) -> int:
    return load_script(task, "evaluate").main(list(args))


@pytest.fixture(scope="session")
def trained_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "multitask-qlora"
    assert run_script("multitask", "qlora", tiny_model, out, max_steps=2, eval_strategy="no") == 0
    return out


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("task", TASKS)
def test_entry_point_writes_three_outputs(task, trained_run, tmp_path):
    out = tmp_path / "eval"
    assert _evaluate(task, "--model_path", str(trained_run), *DATA, "--num_samples", "2",
                     "--max_new_tokens", "6", "--output_dir", str(out)) == 0
    metrics = read_json(out / "metrics.json")
    rows = _lines(out / "predictions.jsonl")
    expected = {"summarization": 4, "generation": 4, "translation": 4, "multitask": 12}[task]
    assert metrics["num_items"] == len(rows) == expected
    assert "4-bit + adapter" in metrics["system"]
    for row in rows:
        assert {"id", "task", "prompt", "prediction", "reference", "scores"} <= set(row)
        assert ("direction" in row) == (row["task"] == "translation")
        assert row["prompt"].endswith("<|im_start|>assistant\n")
        group = row.get("direction") or row["language"]
        assert row["id"].startswith(f"{group}:")
        for name, value in row["scores"].items():  # per-item scores use metrics.json's names
            assert name in metrics["metrics"][row["task"]][group], name
            assert isinstance(value, (int, float))
    if task in ("summarization", "multitask"):
        assert {"bleu", "chrf", "corpus_bleu", "corpus_chrf", "rouge1", "rouge2", "rougeL", "exact_match"} <= set(
            metrics["metrics"]["summarization"]["overall"])
    if task in ("translation", "multitask"):
        assert "codebleu" in metrics["metrics"]["translation"]["java-cs"]
        assert "cs" in {r.get("direction", "").split("-")[-1] for r in rows}
        assert set(metrics["quality"]["translation"]) == {"java-cs", "cs-java"}
    report = (out / "report.md").read_text()
    assert report.startswith(f"# Evaluation: {task}") and "| group |" in report


def test_rescoring_predictions_reproduces_metrics(tmp_path):
    """Hand-made, non-empty answers for every task (fenced code with imports, chatter, the summary frame), with the
    ids that summarization and generation share told apart by `task`; scoring, then re-scoring the written
    predictions.jsonl, gives the same metrics and per-item scores."""
    args = parse_eval_args("multitask", ["--predictions_file", "x", *DATA, "--num_samples", "2"])
    items = build_items("multitask", args)
    assert len({it["id"] for it in items}) < len(items)  # shared ids exist
    preds = tmp_path / "mine.jsonl"
    with open(preds, "w") as f:
        for k, it in enumerate(items):
            if it["task"] == "summarization":
                answer = f"SUMMARY: {it['reference'] if k % 2 else 'Does something.'} DONE"
            else:
                lang = get(it["task"]).answer_language(it["language"])
                head = "import os\n" if lang == "python" else "// translated\n"
                answer = f"Sure, here it is:\n```{lang}\n{head}{it['reference']}\n```\nHope this helps."
            f.write(json.dumps({"id": it["id"], "task": it["task"], "prediction": answer}) + "\n")
    first, second = tmp_path / "first", tmp_path / "second"
    assert _evaluate("multitask", "--predictions_file", str(preds), *DATA, "--num_samples", "2",
                     "--output_dir", str(first)) == 0
    assert _evaluate("multitask", "--predictions_file", str(first / "predictions.jsonl"), *DATA,
                     "--num_samples", "2", "--output_dir", str(second)) == 0
    a, b = read_json(first / "metrics.json"), read_json(second / "metrics.json")
    assert a["metrics"] == b["metrics"] and a["quality"] == b["quality"]
    rows_a, rows_b = _lines(first / "predictions.jsonl"), _lines(second / "predictions.jsonl")
    assert [r["scores"] for r in rows_a] == [r["scores"] for r in rows_b]
    summaries = [r for r in rows_a if r["task"] == "summarization"]
    assert sum(r["scores"]["exact_match"] for r in summaries) == len(summaries) // 2  # the right answer per task
    code = [r for r in rows_a if r["task"] != "summarization"]
    assert all(r["prediction"].endswith(r["reference"]) and "Hope" not in r["prediction"] for r in code)


def test_shared_ids_without_task_are_an_error(tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "python:0", "prediction": "x"}) + "\n")
    assert _evaluate("multitask", "--predictions_file", str(preds), *DATA, "--output_dir", str(tmp_path / "o")) == 2
    assert "add a `task` field" in capsys.readouterr().err


@pytest.mark.parametrize("row,needle", [
    ({"id": "python:0", "prediction": None}, "must be text"),
    ({"id": "python:0", "prediction": "a"}, "appears twice"),
])
def test_bad_prediction_rows(row, needle, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "python:0", "prediction": "a"}) + "\n" + json.dumps(row) + "\n")
    assert _evaluate("summarization", "--predictions_file", str(preds), *DATA, "--output_dir",
                     str(tmp_path / "o")) == 2
    assert needle in capsys.readouterr().err


def test_inference_prompt_equals_training_prompt(tokenizer):
    args = parse_eval_args("multitask", ["--predictions_file", "x", *DATA, "--split", "validation",
                                         "--num_samples", "3"])
    chat = ChatFormat.for_tokenizer(tokenizer)
    for item in build_items("multitask", args):
        trained = encode_row(item, tokenizer, chat, max_len=4096)
        n_prompt = trained["labels"].index(next(t for t in trained["labels"] if t != -100))
        assert fit_prompt(item, tokenizer, 4096)[1] == trained["input_ids"][:n_prompt]


def _humaneval_predictions(path, n, broken=False, body_only=False):
    from common.benchmarks import load_humaneval

    with open(path, "w") as f:
        for p in load_humaneval()[:n]:
            body = "    return None\n" if broken else p["canonical_solution"]
            # fenced, with the prompt (extraction must cope), or the bare indented body as HumanEval completions are
            answer = body if body_only else "```python\n" + p["prompt"] + body + "```"
            f.write(json.dumps({"id": p["task_id"], "prediction": answer}) + "\n")


@pytest.mark.parametrize("broken,body_only", [(False, False), (True, False), (False, True)])
def test_humaneval_pass_at_1_by_execution(broken, body_only, tmp_path):
    preds, out = tmp_path / "preds.jsonl", tmp_path / "eval"
    _humaneval_predictions(preds, 6, broken, body_only)
    assert _evaluate("generation", "--benchmark", "humaneval", "--predictions_file", str(preds),
                     "--num_samples", "6", "--output_dir", str(out), "--quality", "False") == 0
    metrics = read_json(out / "metrics.json")["metrics"]["generation"]["python"]
    assert metrics["pass@1"] == (0.0 if broken else 1.0)
    assert [r["scores"]["pass@1"] for r in _lines(out / "predictions.jsonl")] == [0 if broken else 1] * 6
    assert [r["id"] for r in _lines(out / "predictions.jsonl")] == [f"HumanEval/{i}" for i in range(6)]


def test_extract_answer_is_one_rule_for_all():
    assert extraction.extract_answer("summarization", "SUMMARY: Adds numbers. DONE") == "Adds numbers."
    assert extraction.extract_answer("summarization", "Adds numbers.") == "Adds numbers."
    fenced = "Here you go:\n```java\npublic int f() {\n    return 1;\n}\n```\nHope it helps."
    assert extraction.extract_answer("generation", fenced, "java") == "public int f() {\n    return 1;\n}"
    chatty = "Sure! The translation is:\npublic int F() { return 1; }\n\nThis method returns one."
    assert extraction.extract_answer("translation", chatty, "java-cs") == "public int F() { return 1; }"
    plain = "def f(x):\n    return x\n"
    assert extraction.extract_answer("generation", plain, "python") == "def f(x):\n    return x"


@pytest.mark.parametrize("args,needle", [
    ([], "give --model_path"),
    (["--predictions_file", "nope.jsonl"], "no such file"),
    (["--model_path", "m", "--benchmark", "mbpp"], "--benchmark mbpp"),
    (["--model_path", "m", "--num_samples", "0"], "--num_samples 0"),
])
def test_evaluation_errors(args, needle, capsys):
    assert _evaluate("generation", *DATA, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and needle in err[-1]


def test_unknown_prediction_ids_are_an_error(tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "python:99999", "prediction": "x"}) + "\n")
    assert _evaluate("summarization", "--predictions_file", str(preds), *DATA, "--output_dir",
                     str(tmp_path / "o")) == 2
    assert "not among the evaluated items" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_codereval_prompt_file(tmp_path):
    records = [
        {"_id": "62e4fb", "human_label": "Return the sum of a list. Ignores None values.",
         "code": 'def total(xs):\n    """Sum."""\n    return sum(x for x in xs if x is not None)',
         "test": "assert total([1, None, 2]) == 3\n"},
        {"_id": "62e4fc", "docstring": "Upper-case a string.", "code": "def shout(s):\n    return s.upper()"},
    ]
    source = tmp_path / "CoderEval4Python.json"
    source.write_text(json.dumps({"RECORDS": records}))
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": f"python:{r['_id']}", "prediction": p}) + "\n" for r, p in zip(
        records, ["def total(xs):\n    return sum(x for x in xs if x is not None)", "def shout(s):\n    return s"])))
    out = tmp_path / "eval"
    assert _evaluate("generation", "--benchmark", "codereval", "--test_dataset", str(source), "--languages", "python",
                     "--predictions_file", str(preds), "--output_dir", str(out), "--quality", "False") == 0
    rows = _lines(out / "predictions.jsonl")
    assert rows[0]["scores"]["pass@1"] == 1 and "pass@1" not in rows[1]["scores"]  # only the item with tests runs
    python = read_json(out / "metrics.json")["metrics"]["generation"]["python"]
    assert (python["pass@1"], python["executed"], python["n"]) == (1.0, 1, 2)  # over the executed items
    assert rows[0]["scores"]["exact_match"] == 1 and rows[1]["scores"]["exact_match"] == 0
    assert rows[0]["reference"] == records[0]["code"].replace('    """Sum."""\n', "")


def test_fft_run_and_merged_adapter(tiny_model, trained_run, tmp_path):
    fft = tmp_path / "fft"
    assert run_script("summarization", "fft", tiny_model, fft, max_steps=2, eval_strategy="no") == 0
    assert _evaluate("summarization", "--model_path", str(fft), *DATA, "--num_samples", "1", "--max_new_tokens", "4",
                     "--output_dir", str(tmp_path / "e1")) == 0
    assert read_json(tmp_path / "e1" / "metrics.json")["system"].startswith(str(fft))
    assert _evaluate("summarization", "--model_path", str(trained_run), "--merge_adapter", "True", *DATA,
                     "--num_samples", "1", "--max_new_tokens", "4", "--output_dir", str(tmp_path / "e2")) == 0
    assert "adapter merged" in read_json(tmp_path / "e2" / "metrics.json")["system"]


def test_missing_model_path_is_one_line(tmp_path, capsys):
    out = tmp_path / "o"
    assert _evaluate("translation", "--model_path", str(tmp_path / "nothing"), *DATA, "--num_samples", "1",
                     "--output_dir", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --model_path: no such directory") and not out.exists()


@pytest.mark.parametrize("task,text,language,expected", [
    ("generation", "def f(x):\n    return x\n```\n\nThis function returns x.", "python", "def f(x):\n    return x"),
    ("generation", "    if a:\n        return 1\n    return 2", "python", "    if a:\n        return 1\n    return 2"),
    ("generation", "Here is the method (in Java):\npublic int add(int a, int b) {\n    return a + b;\n}\nThis adds.",
     "java", "public int add(int a, int b) {\n    return a + b;\n}"),
    ("generation", "```python\n# helper\nimport math\nMAX = 10\ndef f():\n    return MAX\n```\nDone.", "python",
     "# helper\nimport math\nMAX = 10\ndef f():\n    return MAX"),
    ("generation", "def f():\n    x = 1\n\nResult = f()", "python", "def f():\n    x = 1\n\nResult = f()"),
    ("translation", "Sure! Here's the C# version:\n\n```csharp\nusing System;\npublic int F() { return 1; }\n```",
     "java-cs", "using System;\npublic int F() { return 1; }"),
    ("translation", "public int GetCount(){return count;}\nThis translation preserves semantics.", "java-cs",
     "public int GetCount(){return count;}"),
    ("summarization", "SUMMARY: Returns the DONE flag of the task. DONE", "", "Returns the DONE flag of the task."),
    ("summarization", "Sure. Summary: Adds two numbers. DONE\nextra", "", "Adds two numbers."),
])
def test_extract_answer_cases_and_idempotence(task, text, language, expected):
    answer = extraction.extract_answer(task, text, language)
    assert answer == expected
    assert extraction.extract_answer(task, answer, language) == answer

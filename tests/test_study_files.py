"""The study's own evaluation files, as they are: summarization *_v2.jsonl, CoderEval CE*HumanLabel.jsonl,
ids_to_discard.json, and the round trip through CoderEval's Docker harness (export, verdicts back)."""

from __future__ import annotations

import json
import logging

import pytest
import sacrebleu

from conftest import SAMPLES, load_script, read_json

# The shapes of the study's files (field names and layout as published; contents made up here).
SUMMARIZATION_V2 = [
    {"id": "6367676c1a6d9265ec018204", "code": "public static int twice(int x){\n  return 2 * x;\n}\n",
     "reference_summary": "Double a number."},
    {"id": "636767a51a6d9265ec01859d", "code": "public boolean isEmpty(String s){\n  return s.length() == 0;\n}\n",
     "reference_summary": "Return true if the string is empty."},
    {"id": "636767a51a6d9265ec0185a0", "code": "public int size(){\n  return count;\n}\n",
     "reference_summary": "Return the number of elements."},
]
PY_V2 = {"id": "62b45665d7d32e5b55cc8364",
         "code": "def add(a, b):\n    '''\n    Add two numbers and return the sum.\n    '''\n    return a + b\n",
         "reference_summary": "Add two numbers."}
HUMANLABEL = [
    {"question_id": "62e60f43d76274f8a4026e28",
     "input": "def hydrate_time(nanoseconds, tz=None):\n\t\"\"\"\n\tConvert nanoseconds to a time in fixed format.\n\t\"\"\"\n\t",
     "signature": "def hydrate_time(nanoseconds, tz=None):",
     "docstring": "Convert nanoseconds to a time in fixed format."},
    {"question_id": "62e60f3bd76274f8a4026e10",
     "input": "def dehydrate_timedelta(value):\n\t\"\"\"\n\tUse the value in timedelta to generate the Structure class.\n\t\"\"\"\n\t",
     "signature": "def dehydrate_timedelta(value):",
     "docstring": "Use the value in timedelta to generate the Structure class."},
    {"question_id": "62e60f37d76274f8a4026dfd",
     "input": "def dehydrate_time(value):\n\t\"\"\"\n\tUse ticks in the Time class to generate the Structure class.\n\t\"\"\"\n\t",
     "signature": "def dehydrate_time(value):",
     "docstring": "Use ticks in the Time class to generate the Structure class."},
]
JAVA_HUMANLABEL = [
    {"question_id": "6367676d1a6d9265ec018229",
     "input": "/**Trim each element in the given string array.**/\npublic static String[] trimArrayElements(String[] array){",
     "signature": "public static String[] trimArrayElements(String[] array){",
     "docstring": "Trim each element in the given string array."},
]
DISCARD = {"CoderEval Java Ids with Unreliable Tests": ["636766621a6d9265ec017395"],
           "CoderEval Python Ids with Unreliable Tests": ["62e60f3bd76274f8a4026e10"]}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _evaluate(task, *args):
    return load_script(task, "evaluate").main([str(a) for a in args])


def _python_answers(path, rows, body="    return None\n"):
    return _write_jsonl(path, [{"id": f"python:{r['question_id']}", "prediction": r["signature"] + "\n" + body}
                               for r in rows])


def test_summarization_v2_files_load_as_they_are(tmp_path):
    data = _write_jsonl(tmp_path / "cs_codereval_eval_dataset_java_v2.jsonl", SUMMARIZATION_V2)
    answers = ["Double a number.", "Returns whether the string is empty.", "Count."]
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"id": f"java:{r['id']}", "prediction": f"SUMMARY: {a} DONE"}
                                                for r, a in zip(SUMMARIZATION_V2, answers)])
    out = tmp_path / "eval"
    assert _evaluate("summarization", "--test_dataset", data, "--predictions_file", preds, "--output_dir", out) == 0
    rows = _lines(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == [f"java:{r['id']}" for r in SUMMARIZATION_V2]  # file order, language from name
    assert [r["reference"] for r in rows] == [r["reference_summary"] for r in SUMMARIZATION_V2]
    java = read_json(out / "metrics.json")["metrics"]["summarization"]["java"]
    refs = [r["reference_summary"] for r in SUMMARIZATION_V2]
    # the study's numbers: means of sentence scores; the pooled ones under their own names
    assert java["bleu"] == pytest.approx(sum(sacrebleu.sentence_bleu(a, [r]).score for a, r in zip(answers, refs)) / 3)
    assert java["chrf"] == pytest.approx(sum(sacrebleu.sentence_chrf(a, [r]).score for a, r in zip(answers, refs)) / 3)
    assert java["corpus_chrf"] == pytest.approx(sacrebleu.corpus_chrf(answers, [refs]).score)
    assert java["n"] == 3


@pytest.mark.parametrize("remove,leaks", [("True", False), ("False", True)])
def test_python_v2_inputs_keep_the_docstring_only_when_asked(remove, leaks, tmp_path):
    data = _write_jsonl(tmp_path / "cs_codereval_eval_dataset_py_v2.jsonl", [PY_V2])
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"id": f"python:{PY_V2['id']}", "prediction": "Adds."}])
    out = tmp_path / "eval"
    assert _evaluate("summarization", "--test_dataset", data, "--predictions_file", preds, "--output_dir", out,
                     "--remove_docstring", remove) == 0
    (row,) = _lines(out / "predictions.jsonl")
    assert row["language"] == "python"
    assert ("Add two numbers and return the sum." in row["prompt"]) is leaks
    assert "return a + b" in row["prompt"]


def test_language_flag_wins_and_a_nameless_file_needs_it(tmp_path, capsys):
    data = _write_jsonl(tmp_path / "eval_set.jsonl", SUMMARIZATION_V2)
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"id": f"java:{SUMMARIZATION_V2[0]['id']}", "prediction": "x"}])
    assert _evaluate("summarization", "--test_dataset", data, "--predictions_file", preds,
                     "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "--language java" in err and "eval_set.jsonl" in err
    assert not (tmp_path / "o").exists()
    assert _evaluate("summarization", "--test_dataset", data, "--language", "java", "--predictions_file", preds,
                     "--output_dir", tmp_path / "o") == 0


def test_a_missing_field_is_named(tmp_path, capsys):
    rows = [{k: v for k, v in r.items() if k != "reference_summary"} for r in SUMMARIZATION_V2]
    data = _write_jsonl(tmp_path / "cs_codereval_eval_dataset_java_v2.jsonl", rows)
    assert _evaluate("summarization", "--test_dataset", data, "--predictions_file", data,
                     "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "docstring (or reference_summary)" in err and "has: id, code" in err  # missing, and what it has
    bad = [{k: v for k, v in r.items() if k != "signature"} for r in HUMANLABEL]
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", bad)
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", ce, "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "`signature`" in err and "record 1" in err


@pytest.mark.parametrize("mode", ["training", "input"])
def test_codereval_humanlabel_prompts(mode, tmp_path):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL)
    out = tmp_path / "eval"
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--output_dir", out,
                     "--codereval_prompt", mode, "--quality", "False") == 0
    report = read_json(out / "metrics.json")
    assert report["benchmark"] == "codereval"  # told by the file itself
    rows = _lines(out / "predictions.jsonl")
    for row, record in zip(rows, HUMANLABEL):
        assert row["id"] == f"python:{record['question_id']}"
        expected = record["input"] if mode == "input" else \
            f"{record['docstring']}\n\nFunction to implement:\n{record['signature']}"
        assert row["prompt"] == expected
        assert row["reference"] == "" and "codebleu" not in row["scores"]  # no reference code in these files
    assert any("no reference" in note for note in report["notes"])


def test_codereval_prompt_input_needs_humanlabel_files(tmp_path, capsys):
    source = tmp_path / "CoderEval4Python.json"
    source.write_text(json.dumps({"RECORDS": [{"_id": "a1", "human_label": "Add.", "code": "def f(a):\n    return a"}]}))
    assert _evaluate("generation", "--benchmark", "codereval", "--test_dataset", source, "--predictions_file", source,
                     "--codereval_prompt", "input", "--output_dir", tmp_path / "o") == 2
    assert "CE*HumanLabel" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["study_json", "lines"])
def test_exclude_ids(kind, tmp_path, caplog):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL)  # still holds the dropped task: ignored
    ids = tmp_path / "ids"
    if kind == "study_json":
        ids.write_text(json.dumps(DISCARD))
    else:
        ids.write_text("# unreliable\npython:62e60f3bd76274f8a4026e10\n\n636766621a6d9265ec017395\n")
    out = tmp_path / "eval"
    with caplog.at_level(logging.INFO, logger="common"):
        assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--exclude_ids", ids,
                         "--output_dir", out, "--quality", "False") == 0
    assert [r["id"] for r in _lines(out / "predictions.jsonl")] == [
        f"python:{r['question_id']}" for r in HUMANLABEL if r["question_id"] != "62e60f3bd76274f8a4026e10"]
    report = read_json(out / "metrics.json")
    assert report["num_items"] == 2
    said = "dropped 1 items; 2 remain (generation/python 2)"
    assert said in caplog.text and any(said in note for note in report["notes"])
    if kind == "study_json":  # the Java key's ids do not apply to a Python run, and are not called unmatched
        assert "its java ids are not for this run's languages" in caplog.text and "match no item" not in caplog.text
    else:
        assert "1 of its 2 ids for the evaluated languages match no item" in caplog.text


def test_export_and_read_back_harness_verdicts(tmp_path, caplog):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL)
    export, first = tmp_path / "harness_input.jsonl", tmp_path / "first"
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--output_dir", first,
                     "--export_codereval", export, "--quality", "False") == 0
    exported = _lines(export)
    rows = _lines(first / "predictions.jsonl")
    assert exported == [{"_id": r["question_id"], "generate_results": [row["prediction"]]}
                        for r, row in zip(HUMANLABEL, rows)]
    assert "pass@1" not in read_json(first / "metrics.json")["metrics"]["generation"]["python"]

    # the harness's output: the input records, `generate_results` turned into verdicts; the last task is missing
    verdicts = [True, False]
    results = _write_jsonl(tmp_path / "harness_out.jsonl", [
        {"_id": e["_id"], "generate_results": [{"generate_code": e["generate_results"][0], "is_pass": v,
                                                "return_code": 0 if v else 1}]}
        for e, v in zip(exported, verdicts)])
    second = tmp_path / "second"
    with caplog.at_level(logging.WARNING, logger="common"):
        assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", first / "predictions.jsonl",
                         "--codereval_results", results, "--output_dir", second, "--quality", "False") == 0
    assert "differs" not in caplog.text
    report = read_json(second / "metrics.json")
    python = report["metrics"]["generation"]["python"]
    assert python["pass@1"] == pytest.approx(1 / 3)  # a task without a verdict is a fail, as the study counted
    assert (python["executed"], python["no_verdict"]) == (2, 1)
    assert [r["scores"]["pass@1"] for r in _lines(second / "predictions.jsonl")] == [1, 0, 0]
    assert any("62e60f37d76274f8a4026dfd" in n and "count as failed" in n for n in report["notes"])


def test_verdicts_for_other_code_are_flagged_and_the_input_file_is_refused(tmp_path, caplog, capsys):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL)
    results = _write_jsonl(tmp_path / "out.jsonl", [
        {"_id": r["question_id"], "generate_results": [{"generate_code": "def other(): pass", "is_pass": True,
                                                        "return_code": 0}]} for r in HUMANLABEL])
    with caplog.at_level(logging.WARNING, logger="common"):
        assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--codereval_results",
                         results, "--output_dir", tmp_path / "o", "--quality", "False") == 0
    assert "3 of the --codereval_results verdicts are for code other than the predictions" in caplog.text
    harness_input = _write_jsonl(tmp_path / "in.jsonl", [{"_id": r["question_id"], "generate_results": ["x"]}
                                                         for r in HUMANLABEL])
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--codereval_results",
                     harness_input, "--output_dir", tmp_path / "o2") == 2
    assert "pass the file the harness wrote" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_two_languages_export_one_file_each(tmp_path):
    folder = tmp_path / "codereval"
    folder.mkdir()
    _write_jsonl(folder / "CEPythonHumanLabel.jsonl", HUMANLABEL[:1])
    _write_jsonl(folder / "CEJavaHumanLabel.jsonl", JAVA_HUMANLABEL)
    preds = _write_jsonl(tmp_path / "p.jsonl", [
        {"id": f"python:{HUMANLABEL[0]['question_id']}", "prediction": "def hydrate_time(nanoseconds, tz=None):\n"
                                                                       "    return None"},
        {"id": f"java:{JAVA_HUMANLABEL[0]['question_id']}", "prediction": "public static String[] trimArrayElements("
                                                                          "String[] array){ return array; }"}])
    assert _evaluate("generation", "--benchmark", "codereval", "--test_dataset", folder, "--predictions_file", preds,
                     "--export_codereval", tmp_path / "export.jsonl", "--output_dir", tmp_path / "o",
                     "--quality", "False") == 0
    assert [r["_id"] for r in _lines(tmp_path / "export_java.jsonl")] == [JAVA_HUMANLABEL[0]["question_id"]]
    assert [r["_id"] for r in _lines(tmp_path / "export_python.jsonl")] == [HUMANLABEL[0]["question_id"]]
    assert not (tmp_path / "export.jsonl").exists()


@pytest.mark.parametrize("flag_args,needle", [
    (["--export_codereval", "{ce}"], "one of this run's inputs"),
    (["--export_codereval", "{tmp}"], "is a directory"),
    (["--exclude_ids", "{tmp}/nope.json"], "--exclude_ids: no such file"),
    (["--codereval_results", "{tmp}/nope.jsonl"], "--codereval_results: no such file"),
    (["--codereval_prompt", "verbatim"], "choose training or input"),
    (["--language", "go"], "--language go"),
])
def test_study_flag_errors(flag_args, needle, tmp_path, capsys):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    before = ce.read_text()
    flag_args = [a.format(ce=ce, tmp=tmp_path) for a in flag_args]
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", ce, *flag_args,
                     "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]
    assert ce.read_text() == before and not (tmp_path / "o").exists()


def test_language_flag_filters_a_folder_of_both_languages(tmp_path):
    from common.eval_args import parse_eval_args
    from common.eval_items import build_items

    folder = tmp_path / "codereval"
    folder.mkdir()
    _write_jsonl(folder / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    _write_jsonl(folder / "CEJavaHumanLabel.jsonl", JAVA_HUMANLABEL)
    common = ["--benchmark", "codereval", "--test_dataset", str(folder), "--predictions_file", "x"]
    both = build_items("generation", parse_eval_args("generation", common))
    assert sorted(it["language"] for it in both) == ["java", "python", "python", "python"]
    java = build_items("generation", parse_eval_args("generation", [*common, "--language", "java"]))
    assert [(it["id"], it["language"]) for it in java] == [(f"java:{JAVA_HUMANLABEL[0]['question_id']}", "java")]


def test_exclude_ids_in_a_multitask_run_drop_generation_items_only(tmp_path):
    """The study's summarization sets reuse CoderEval ids; its discard list is about generation tests."""
    from common.eval_args import parse_eval_args
    from common.eval_items import build_items

    shared = HUMANLABEL[1]["question_id"]
    v2 = [dict(SUMMARIZATION_V2[0], id=shared), *SUMMARIZATION_V2[1:]]
    summaries = _write_jsonl(tmp_path / "cs_codereval_eval_dataset_java_v2.jsonl", v2)
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"CoderEval Python Ids": [shared], "CoderEval Java Ids": [shared]}))
    args = parse_eval_args("multitask", ["--predictions_file", "x", "--summarization_dataset", str(summaries),
                                         "--generation_dataset", str(ce), "--translation_dataset",
                                         str(SAMPLES / "code_to_code_trans"), "--exclude_ids", str(ids)])
    items = build_items("multitask", args)
    assert sum(it["task"] == "summarization" for it in items) == 3
    assert [it["id"] for it in items if it["task"] == "generation"] == [
        f"python:{r['question_id']}" for r in HUMANLABEL if r["question_id"] != shared]


def test_export_never_replaces_outputs_or_inputs(tmp_path, capsys):
    folder = tmp_path / "codereval"
    folder.mkdir()
    python = _write_jsonl(folder / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    java = _write_jsonl(folder / "CE_java.jsonl", JAVA_HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL)
    out = tmp_path / "eval"
    before = {f: f.read_text() for f in (python, java, preds)}
    for target, extra in ((out / "predictions.jsonl", ["--language", "python"]),  # this run's own output
                          (python, ["--language", "python"]),                     # a file of the test folder
                          (folder / "CE.jsonl", []),                              # writes CE_java.jsonl too
                          (tmp_path / "p.jsonl", ["--language", "python"])):      # the predictions file
        code = _evaluate("generation", "--benchmark", "codereval", "--test_dataset", folder, "--predictions_file", preds,
                         "--export_codereval", target, "--output_dir", out, *extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith("error: --export_codereval") and "inputs or outputs" in err[-1]
        assert {f: f.read_text() for f in before} == before and not out.exists()


@pytest.mark.parametrize("name,rows,args,needle", [
    ("cs_codereval_eval_dataset_java_v2.jsonl", SUMMARIZATION_V2, ["--language", "python"],
     "holds java (by its name), not python"),
    ("CEJavaHumanLabel.jsonl", JAVA_HUMANLABEL, ["--language", "python"], "is a java task, not python"),
    ("cs_codereval_eval_dataset_java_v2.jsonl", [{k: v for k, v in r.items() if k != "id"} for r in SUMMARIZATION_V2],
     [], "lacks the column(s) id"),
    ("CEPythonHumanLabel.jsonl", [{k: v for k, v in r.items() if k != "question_id"} for r in HUMANLABEL], [],
     "lacks `question_id`"),
    ("cs_codereval_eval_dataset_java_v2.jsonl", [SUMMARIZATION_V2[0], SUMMARIZATION_V2[0]], [],
     "repeats the id(s) 'java:6367676c1a6d9265ec018204'"),
])
def test_files_that_contradict_the_flags_or_lack_fields(name, rows, args, needle, tmp_path, capsys):
    data = _write_jsonl(tmp_path / name, rows)
    task = "generation" if name.startswith("CE") else "summarization"
    assert _evaluate(task, "--test_dataset", data, "--predictions_file", data, *args,
                     "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and needle in err and not (tmp_path / "o").exists()


def test_record_language_field_tells_the_language(tmp_path):
    from common.eval_args import parse_eval_args
    from common.eval_items import build_items

    data = _write_jsonl(tmp_path / "tasks.jsonl", [dict(r, language="Python") for r in HUMANLABEL])
    items = build_items("generation", parse_eval_args("generation", ["--test_dataset", str(data),
                                                                     "--predictions_file", "x"]))
    assert {it["language"] for it in items} == {"python"} and len(items) == 3


def test_harness_output_must_cover_each_language_and_say_pass_or_fail(tmp_path, capsys):
    folder = tmp_path / "codereval"
    folder.mkdir()
    _write_jsonl(folder / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    _write_jsonl(folder / "CEJavaHumanLabel.jsonl", JAVA_HUMANLABEL)
    preds = _write_jsonl(tmp_path / "p.jsonl", [
        *[{"id": f"python:{r['question_id']}", "prediction": r["signature"] + " pass"} for r in HUMANLABEL],
        {"id": f"java:{JAVA_HUMANLABEL[0]['question_id']}", "prediction": "int f() { return 1; }"}])
    python_only = _write_jsonl(tmp_path / "out.jsonl", [
        {"_id": r["question_id"], "generate_results": [{"is_pass": True}]} for r in HUMANLABEL])
    common = ["--benchmark", "codereval", "--test_dataset", folder, "--predictions_file", preds,
              "--output_dir", tmp_path / "o", "--quality", "False"]
    assert _evaluate("generation", *common, "--codereval_results", python_only) == 2
    assert "no verdict for any of the java tasks" in capsys.readouterr().err
    odd = _write_jsonl(tmp_path / "odd.jsonl", [
        {"_id": HUMANLABEL[0]["question_id"], "generate_results": [{"is_pass": "error"}]}])
    assert _evaluate("generation", *common, "--codereval_results", odd) == 2
    assert "`is_pass` is 'error'" in capsys.readouterr().err


def test_a_partial_predictions_file_is_said_in_the_notes(tmp_path):
    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    preds = _python_answers(tmp_path / "p.jsonl", HUMANLABEL[:2])
    out = tmp_path / "eval"
    assert _evaluate("generation", "--test_dataset", ce, "--predictions_file", preds, "--output_dir", out,
                     "--quality", "False") == 0
    assert any("scored the 2 of 3 items" in note for note in read_json(out / "metrics.json")["notes"])


@pytest.mark.parametrize("task,args,needle", [
    ("summarization", ["--codereval_prompt", "input"], "--codereval_prompt is for the generation task"),
    ("translation", ["--language", "java"], "--language is for summarization and generation"),
    ("generation", ["--bertscore_model", "{tmp}"], "--bertscore_model is for the summarization task"),
    ("summarization", ["--bertscore_model", "{tmp}/nope"], "is not a directory"),
    ("summarization", ["--side_model", "{tmp}"], "has no config.json"),
    ("generation", ["--benchmark", "humaneval", "--test_dataset", "{tmp}/CE.jsonl"], "drop --test_dataset"),
])
def test_flags_that_do_not_apply_or_do_not_work_are_refused(task, args, needle, tmp_path, capsys):
    args = [a.format(tmp=tmp_path) for a in args]
    assert _evaluate(task, "--predictions_file", tmp_path / "p.jsonl", *args, "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


def test_overall_weights_each_value_by_the_items_behind_it():
    from common.scoring import overall

    groups = {  # java: every item has a reference; python: 2 of 5 have, and 3 of the 5 tasks got no verdict
        "java": {"codebleu": 60.0, "exact_match": 0.5, "pass@1": 0.5, "executed": 2, "n": 2},
        "python": {"codebleu": 30.0, "exact_match": 0.0, "scored": 2, "pass@1": 0.2, "executed": 2,
                   "no_verdict": 3, "n": 5},
    }
    combined = overall(groups)
    assert combined["n"] == 7 and combined["scored"] == 4 and combined["executed"] == 4 and combined["no_verdict"] == 3
    assert combined["codebleu"] == pytest.approx((2 * 60 + 2 * 30) / 4)
    assert combined["pass@1"] == pytest.approx((0.5 * 2 + 0.2 * 5) / 7)
    summaries = {"java": {"bertscore_f1": 65.1, "bertscore_pairs": 1, "bleu": 10.0, "exact_match": 0.0, "n": 12},
                 "python": {"bertscore_f1": 65.86, "bertscore_pairs": 12, "bleu": 20.0, "exact_match": 0.0, "n": 12}}
    combined = overall(summaries)
    assert combined["bertscore_f1"] == pytest.approx((65.1 + 12 * 65.86) / 13)
    assert combined["bleu"] == pytest.approx(15.0) and combined["bertscore_pairs"] == 13


def test_an_id_list_keyed_by_language_applies_to_that_language(tmp_path):
    from common.eval_args import parse_eval_args
    from common.eval_items import build_items

    ce = _write_jsonl(tmp_path / "CEPythonHumanLabel.jsonl", HUMANLABEL)
    ids = tmp_path / "ids.json"
    first, second = HUMANLABEL[0]["question_id"], HUMANLABEL[1]["question_id"]
    ids.write_text(json.dumps({"CoderEval Java Ids with Unreliable Tests": [first],
                               "CoderEval Python Ids with Unreliable Tests": [second]}))
    items = build_items("generation", parse_eval_args("generation", ["--test_dataset", str(ce), "--predictions_file",
                                                                     "x", "--exclude_ids", str(ids)]))
    assert [it["id"] for it in items] == [f"python:{first}", f"python:{HUMANLABEL[2]['question_id']}"]


def test_rescoring_never_overwrites_its_predictions_file_and_errors_name_test_dataset(tmp_path, capsys):
    data = _write_jsonl(tmp_path / "cs_codereval_eval_dataset_java_v2.jsonl", SUMMARIZATION_V2)
    out = tmp_path / "eval"
    out.mkdir()
    preds = _write_jsonl(out / "predictions.jsonl", [{"id": f"java:{SUMMARIZATION_V2[0]['id']}", "prediction": "x"}])
    before = preds.read_text()
    assert _evaluate("summarization", "--test_dataset", data, "--predictions_file", preds, "--output_dir", out) == 2
    assert "would overwrite the --predictions_file" in capsys.readouterr().err and preds.read_text() == before
    assert _evaluate("summarization", "--test_dataset", tmp_path / "missing.jsonl", "--predictions_file", preds,
                     "--output_dir", tmp_path / "o") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --test_dataset: no such file")

"""Bad training flags and bad data files, through a task script's `main(argv)`: each ends in one line.

The pattern of tests/test_user_errors.py: exit code 2; stderr's last line starts with "error: " and names the flag or
file at fault; no traceback; nothing written (--output_dir does not exist, every file under tmp_path unchanged).
Flag checks run in `parse_args`, so those cases need no model (the model path is never opened). The ids name what
is wrong.
"""

from __future__ import annotations

import importlib.util
import json

import datasets
import pytest
import torch

from conftest import SAMPLES, base_args, run_script, eval_case as _eval, expect_user_error, train_case as _train

DATA = ["--summarization_dataset", str(SAMPLES / "code_to_text"),
        "--translation_dataset", str(SAMPLES / "code_to_code_trans")]
PREDS = "{t}/preds.jsonl"
ROWS = [{"id": i, "code": f"def f{i}(a):\n    return a + {i}", "reference_summary": f"Add {i}."} for i in range(6)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _text(content):
    return lambda path, model=None: path.write_text(content)


def _bytes(content: bytes):
    return lambda path, model=None: path.write_bytes(content)


def _c2t_python(train: bytes, validation: bytes | None = None):
    """A code_to_text folder with python splits only (train, and validation when given)."""
    def write(path, model=None):
        (path / "python").mkdir(parents=True)
        (path / "python" / "train.jsonl").write_bytes(train)
        if validation is not None:
            (path / "python" / "validation.jsonl").write_bytes(validation)
    return write


def _saved_with_empty_test(path, model=None):
    """A DatasetDict saved the default way: its empty test split is saved with no data files."""
    full = datasets.Dataset.from_dict({"id": ["0"], "java": ["class A {}"], "cs": ["class A {}"]})
    datasets.DatasetDict({"train": full, "test": full.select([])}).save_to_disk(str(path))


SAMPLE_ROWS = (SAMPLES / "code_to_text" / "python" / "train.jsonl").read_bytes()
_lines = SAMPLE_ROWS.splitlines(keepends=True)
BAD_UTF8 = b"".join(_lines[:3]) + _lines[3].replace(b'"code": "', b'"code": "\xff\xfe', 1) + b"".join(_lines[4:])
BAD_JSON = b"".join(_lines[:2]) + b'{"id": 99, "code": "x" "docstring": "y"}\n' + b"".join(_lines[2:])

# Inputs, created only when a case's argv names them as {t}/NAME.
FILES = {
    "preds.jsonl": _text(_jsonl([{"id": "python:0", "prediction": "Add 0."}])),
    "bare_ids.jsonl": _text(_jsonl([{"id": 0, "prediction": "Add 0."}])),
    "typo.yaml": _text("script: summarization/fft_train.py\nlearning_rte: 0.001\n"),
    "bad_utf8_python.jsonl": _bytes(BAD_UTF8),
    "bad_json_python.jsonl": _bytes(BAD_JSON),
    "dup_python.jsonl": _text(_jsonl(dict(r, id=r["id"] % 2 if r["id"] < 4 else r["id"]) for r in ROWS)),
    "empty_test_saved": _saved_with_empty_test,
    "c2t_bad_json": _c2t_python(BAD_JSON, SAMPLE_ROWS),
    "c2t_train_only": _c2t_python(SAMPLE_ROWS),
    "records_number/CoderEval4Python.json": _text(json.dumps({"RECORDS": 5})),
    "records_not_objects/CoderEval4Python.json": _text(json.dumps({"RECORDS": [1, 2]})),
    "no_records/CoderEval4Python.json": _text(json.dumps({"tasks": []})),
}


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the check is for machines without a GPU")

# ----------------------------------------------------------------------------------- flags: before anything loads

FLAGS = [
    # 1. nothing to train
    pytest.param(_train("summarization", "fft", num_train_epochs=0, max_steps=-1),
                 ["--num_train_epochs 0", "--max_steps"], id="epochs-zero"),
    pytest.param(_train("multitask", "qlora", num_train_epochs=-2, max_steps=-1), ["--num_train_epochs -2"],
                 id="epochs-negative"),
    pytest.param(_train("summarization", "qlora", max_steps=0), ["--max_steps 0", "-1 (the default)"],
                 id="max_steps-zero"),
    # 2. values with no meaning
    pytest.param(_train("summarization", "fft", learning_rate=-1e-4), ["--learning_rate -0.0001"],
                 id="learning_rate-negative"),
    pytest.param(_train("generation", "qlora", gradient_accumulation_steps=0), ["--gradient_accumulation_steps 0"],
                 id="gradient_accumulation_steps-zero"),
    pytest.param(_train("translation", "fft", seed=-1), ["--seed -1", "4294967295"], id="seed-negative"),
    pytest.param(_train("translation", "fft", seed=2**32), ["--seed 4294967296"], id="seed-too_big"),
    pytest.param(_train("summarization", "qlora", eval_steps=0), ["--eval_steps 0"], id="eval_steps-zero"),
    pytest.param(_train("summarization", "qlora", save_steps=0), ["--save_steps 0"], id="save_steps-zero"),
    pytest.param(_train("multitask", "fft", warmup_steps=-1), ["warmup_steps"], id="warmup_steps-negative"),  # by HF
    # 3. a reporting integration that is not there
    pytest.param(_train("summarization", "fft", report_to="wandb"),
                 ["--report_to wandb needs the wandb package: pip install wandb, or --report_to none"],
                 id="report_to-not_installed"),
    pytest.param(_train("summarization", "fft", report_to="none,wandb"), ["--report_to none: choose from"],
                 id="report_to-none_in_a_list"),
    pytest.param(_train("summarization", "fft", report_to="tensorbord"), ["--report_to tensorbord: choose from",
                                                                          "tensorboard"],
                 id="report_to-unknown"),
    # 4. mixed precision this machine does not do
    pytest.param(_train("summarization", "fft", fp16="True"), ["--fp16 needs a GPU", "drop it on CPU"],
                 id="fp16-on_cpu", marks=NO_GPU),
    pytest.param(_train("summarization", "fft", bf16="True"), ["--bf16 needs a GPU", "--use_cpu True"],
                 id="bf16-on_cpu_without_use_cpu", marks=NO_GPU),
    # 5. early stopping or best-model loading asked for with evaluation off
    pytest.param(_train("generation", "qlora", eval_strategy="no", early_stopping_patience=2),
                 ["--early_stopping_patience", "--eval_strategy is no"], id="early_stopping-without_evaluation"),
    pytest.param(_train("summarization", "fft", eval_strategy="no", load_best_model_at_end="True"),
                 ["--load_best_model_at_end", "--eval_strategy is no"], id="load_best-without_evaluation"),
    pytest.param(_train("summarization", "fft", eval_strategy="no", metric_for_best_model="loss"),
                 ["--metric_for_best_model", "--eval_strategy is no"], id="metric_for_best_model-without_evaluation"),
    # 7. another task's data flag, the script's own not given: the run would read its default data instead
    pytest.param(_train("summarization", "fft", summarization_dataset=None, translation_dataset=None,
                        generation_dataset="{t}/gen"),
                 ["--generation_dataset is for the generation task; summarization/fft_train.py trains summarization"],
                 id="data_flag-other_task"),
    pytest.param(_train("generation", "qlora", summarization_dataset=None),
                 ["--translation_dataset is for the translation task; generation/qlora_train.py trains generation"],
                 id="data_flag-other_task-generation"),
    pytest.param(_train("multitask", "fft", tasks="summarization,generation", summarization_dataset=None),
                 ["--translation_dataset is for the translation task", "add translation to --tasks"],
                 id="data_flag-task_not_in_mixture"),
    # 8. a config file with an unknown key: the key and the file named
    pytest.param(_train("summarization", "fft", config="{t}/typo.yaml"),
                 ["unknown setting 'learning_rte'", "{t}/typo.yaml"], id="config-unknown_key"),
]


@pytest.mark.parametrize("case,needles", FLAGS)
def test_bad_flag(case, needles, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # whatever this machine has installed: wandb is missing
                        lambda name, *a, **k: None if name.split(".")[0] == "wandb" else real(name, *a, **k))
    expect_user_error(case, tmp_path / "no-model", tmp_path, capsys, FILES, *needles)


def _parse(task, strategy, tmp_path, **overrides):
    from common.run_args import parse_args

    return parse_args(task, strategy, base_args(tmp_path / "no-model", tmp_path / "out", **overrides))


def test_report_to_a_list_is_split(tmp_path, monkeypatch):
    from common import run_args

    monkeypatch.setitem(run_args.REPORT_TO_PACKAGES, "codecarbon", (("json",), "codecarbon"))  # "installed"
    monkeypatch.setitem(run_args.REPORT_TO_PACKAGES, "dvclive", (("os",), "dvclive"))
    run = _parse("summarization", "fft", tmp_path, report_to="codecarbon,dvclive")
    assert run.training.report_to == ["codecarbon", "dvclive"]


@NO_GPU
def test_bf16_with_use_cpu_is_kept_and_recorded(tmp_path):
    """bf16 autocast runs on a CPU with --use_cpu True, so it is allowed there, and recorded as given."""
    run = _parse("summarization", "fft", tmp_path, bf16="True", use_cpu="True")
    assert run.training.bf16 is True and run.to_dict()["training"]["bf16"] is True


def test_config_early_stopping_under_a_typed_eval_strategy_no_is_off_and_recorded_off(tmp_path):
    """The config asks for early stopping, the command line turns evaluation off: it wins, with a note, and the
    run records no early stopping (what ran)."""
    config = tmp_path / "es.yaml"
    config.write_text("early_stopping_patience: 3\nearly_stopping_threshold: 0.001\n")
    run = _parse("summarization", "fft", tmp_path, config=config, eval_strategy="no")
    assert run.data.early_stopping_patience is None and run.data.early_stopping_threshold is None
    assert run.to_dict()["data"]["early_stopping_patience"] is None
    assert any("--early_stopping_patience" in note and "off" in note for note in run.notes)


def test_other_task_data_flag_next_to_the_own_one_is_noted(tmp_path):
    run = _parse("summarization", "fft", tmp_path)  # base_args give the translation data too
    assert "--translation_dataset is not used: it is for the translation task, and summarization/fft_train.py " \
           "trains summarization" in run.notes


# ----------------------------------------------------------------------------------- data files

DATA_FILES = [
    # 9. bad UTF-8 / bad JSON lines: the file and the line
    pytest.param(_eval("summarization", "--test_dataset", "{t}/bad_utf8_python.jsonl", "--predictions_file", PREDS),
                 ["--test_dataset: cannot read {t}/bad_utf8_python.jsonl: line 4 is not UTF-8 text"],
                 id="jsonl-not_utf8"),
    pytest.param(_eval("summarization", "--test_dataset", "{t}/bad_json_python.jsonl", "--predictions_file", PREDS),
                 ["--test_dataset: cannot read {t}/bad_json_python.jsonl: line 3 is not valid JSON (Expecting ','"],
                 id="jsonl-not_json"),
    # 10. a save_to_disk split with no data files
    pytest.param(_eval("translation", "--translation_dataset", "{t}/empty_test_saved", "--predictions_file", PREDS),
                 ["--translation_dataset: the test split of {t}/empty_test_saved/test is empty"],
                 id="saved_split-no_shards"),
    # 11. CoderEval files of the wrong shape
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset",
                       "{t}/records_number/CoderEval4Python.json", "--predictions_file", PREDS),
                 ["--test_dataset", "records_number/CoderEval4Python.json", "`RECORDS` is a number",
                  "expected a list of records"], id="codereval-records_not_a_list"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset",
                       "{t}/records_not_objects/CoderEval4Python.json", "--predictions_file", PREDS),
                 ["--test_dataset: record 1 of", "records_not_objects/CoderEval4Python.json", "not a JSON object"],
                 id="codereval-records_not_objects"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset",
                       "{t}/no_records/CoderEval4Python.json", "--predictions_file", PREDS),
                 ["--test_dataset", "no_records/CoderEval4Python.json", "without `RECORDS`"],
                 id="codereval-no_records"),
    # 12. test data whose ids repeat: refused when it is read, before any model
    pytest.param(_eval("summarization", "--test_dataset", "{t}/dup_python.jsonl", "--predictions_file", PREDS),
                 ["--test_dataset {t}/dup_python.jsonl", "repeats the id(s) 'python:0', 'python:1'"],
                 id="test_data-duplicate_ids"),
    # 13. predictions whose ids lack the language prefix
    pytest.param(_eval("summarization", *DATA, "--languages", "python", "--predictions_file", "{t}/bare_ids.jsonl"),
                 ["--predictions_file: id '0' (line 1)", "`language:id`", "'python:0'"],
                 id="predictions-ids_without_prefix"),
]


@pytest.mark.parametrize("case,needles", DATA_FILES)
def test_bad_data_file(case, needles, tmp_path, capsys):
    expect_user_error(case, tmp_path / "no-model", tmp_path, capsys, FILES, *needles)


def test_bad_json_line_in_training_data(tiny_model, tmp_path, capsys):
    """Training reads its data through the same loader: the file and the line, before anything is written."""
    case = _train("summarization", "fft", summarization_dataset="{t}/c2t_bad_json", languages="python")
    expect_user_error(case, tiny_model, tmp_path, capsys, FILES,
                       "--summarization_dataset: cannot read {t}/c2t_bad_json/python/train.jsonl: line 3 is not "
                       "valid JSON")


def test_a_saved_dataset_dict_opens_its_split_even_when_another_is_empty(tmp_path):
    from common.sources import load_split

    _saved_with_empty_test(tmp_path / "saved")
    assert len(load_split(str(tmp_path / "saved"), None, "train", "--translation_dataset")) == 1


# 6. with --eval_strategy no, no validation split is read
def test_eval_strategy_no_needs_no_validation_split(tiny_model, tmp_path):
    out = tmp_path / "run"
    FILES["c2t_train_only"](tmp_path / "c2t_train_only")
    assert run_script("summarization", "fft", tiny_model, out, summarization_dataset=tmp_path / "c2t_train_only",
                      languages="python", translation_dataset=None, eval_strategy="no", max_steps=1) == 0
    recorded = json.loads((out / "run_config.json").read_text())
    assert "validation" not in recorded["counts"]

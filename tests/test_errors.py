"""Every user error: one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
import re

import pytest

from conftest import SAMPLES, run_script


PROGRESS = re.compile(r"\[\d\d:\d\d")  # datasets' progress bars, printed before the error


def _expect_error(capsys, out, code, *needles):
    assert code == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not PROGRESS.search(line)]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists(), "nothing may be written on a user error"


def test_unreachable_hub_model(capsys, tmp_path):
    out = tmp_path / "run"
    code = run_script("summarization", "qlora", "Qwen/Qwen2.5-Coder-0.5B-Instruct", out)
    _expect_error(capsys, out, code, "Qwen/Qwen2.5-Coder-0.5B-Instruct", "--base_model_name PATH", "HF_HUB_OFFLINE=1")


def test_unreachable_hub_dataset(capsys, tiny_model, tmp_path):
    out = tmp_path / "run"
    code = run_script("translation", "fft", tiny_model, out,
                      translation_dataset="google/code_x_glue_cc_code_to_code_trans")
    _expect_error(capsys, out, code, "google/code_x_glue_cc_code_to_code_trans", "--translation_dataset PATH")


def test_missing_data_path(capsys, tiny_model, tmp_path):
    out = tmp_path / "run"
    code = run_script("summarization", "qlora", tiny_model, out, summarization_dataset=tmp_path / "nowhere")
    _expect_error(capsys, out, code, "no such file or directory")


def test_missing_split_file(capsys, tiny_model, tmp_path):
    (tmp_path / "c2t" / "java").mkdir(parents=True)
    out = tmp_path / "run"
    code = run_script("summarization", "qlora", tiny_model, out, summarization_dataset=tmp_path / "c2t")
    _expect_error(capsys, out, code, "no train split of java", "train.jsonl")


def test_empty_data(capsys, tiny_model, tmp_path):
    root = tmp_path / "trans"
    root.mkdir()
    (root / "train.jsonl").write_text("")
    out = tmp_path / "run"
    code = run_script("translation", "qlora", tiny_model, out, translation_dataset=root)
    _expect_error(capsys, out, code, "empty")


def test_wrong_columns(capsys, tiny_model, tmp_path):
    root = tmp_path / "trans"
    root.mkdir()
    (root / "train.jsonl").write_text(json.dumps({"id": 0, "source": "a", "target": "b"}) + "\n")
    out = tmp_path / "run"
    code = run_script("translation", "qlora", tiny_model, out, translation_dataset=root)
    _expect_error(capsys, out, code, "lacks the column(s) java, cs")


@pytest.mark.parametrize("flag,value,needle", [
    ("languages", "java,rust", "--languages: unknown value rust"),
    ("directions", "java-py", "--directions: unknown value java-py"),
    ("save_processed_data", "yes", "expected True or False"),
    ("fp16", "True", "--fp16 is not supported with QLoRA"),
    ("bnb_4bit_compute_dtype", "float16", "use bfloat16 or float32"),
    ("early_stopping_threshold", "0.01", "needs --early_stopping_patience"),
    ("sample_size", "0", "--sample_size 0"),
    ("no_such_flag", "1", "unrecognized arguments"),
])
def test_invalid_flags(capsys, tiny_model, tmp_path, flag, value, needle):
    out = tmp_path / "run"
    code = run_script("multitask", "qlora", tiny_model, out, **{flag: value})
    _expect_error(capsys, out, code, needle)


def test_model_path_without_model(capsys, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    out = tmp_path / "run"
    code = run_script("generation", "fft", empty, out)
    _expect_error(capsys, out, code, "holds no model (no config.json)")


def test_model_path_missing(capsys, tmp_path):
    out = tmp_path / "run"
    code = run_script("generation", "qlora", tmp_path / "no-model-here", out)
    _expect_error(capsys, out, code, "no such directory")


def test_lora_flags_rejected_for_fft(capsys, tiny_model, tmp_path):
    out = tmp_path / "run"
    code = run_script("multitask", "fft", tiny_model, out, lora_r=4)
    _expect_error(capsys, out, code, "--lora_r")


def test_samples_are_real_hub_schema():
    """The shipped samples mirror the hub data sets' columns (and so double as error-free inputs above)."""
    row = json.loads((SAMPLES / "code_to_text" / "python" / "train.jsonl").read_text().splitlines()[0])
    assert set(row) == {"id", "repo", "path", "func_name", "original_string", "language", "code", "code_tokens",
                        "docstring", "docstring_tokens", "sha", "url"}
    pair = json.loads((SAMPLES / "code_to_code_trans" / "train.jsonl").read_text().splitlines()[0])
    assert set(pair) == {"id", "java", "cs"}

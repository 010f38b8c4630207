"""The study's runs as files: every shipped config is valid for its own script and gives the study's settings;
command-line flags override a config; a config for another script, or with an unknown setting, is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, load_script, read_json, run_script

# the run configs (configs/study.yaml is the grid of runs, read by python -m common.grid)
CONFIGS = sorted(c for c in (ROOT / "configs").glob("*.yaml") if "script" in yaml.safe_load(c.read_text()))
STUDY = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 16, "num_train_epochs": 5.0,
         "learning_rate": 1e-4, "lr_scheduler_type": "cosine", "metric_for_best_model": "eval_loss"}


def _parse(config: Path, *extra: str):
    from common.run_args import parse_args

    script = yaml.safe_load(config.read_text())["script"]
    task, strategy = script.removesuffix("_train.py").split("/")
    return parse_args(task, strategy, ["--config", str(config), *extra]), task, strategy


def test_the_study_grid_is_there():
    names = {c.stem for c in CONFIGS}
    assert {"mt-qlora", "mt-fft", "st-qlora-summarization", "st-qlora-generation", "st-qlora-translation"} <= names
    assert {"mt-qlora-cs-cg", "mt-qlora-cs-ct", "mt-qlora-cg-ct"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
@pytest.mark.parametrize("size", ["0.5B", "3B"])
def test_every_config_is_valid_for_its_script(config, size):
    run, task, strategy = _parse(config, "--model_size", size)
    assert run.model.base_model_name == f"Qwen/Qwen2.5-Coder-{size}-Instruct"
    assert {k: getattr(run.training, k) for k in STUDY} == STUDY
    assert run.data.eval_samples == 400 and run.data.sample_size == -1 and run.data.save_processed_data is True
    assert (run.data.early_stopping_patience, run.data.early_stopping_threshold) == (3, 0.001)
    assert run.training.warmup_steps == (100 if task == "translation" else 1000)
    assert run.strategy_args is None if strategy == "fft" else (run.strategy_args.lora_r, run.strategy_args.lora_alpha) == (8, 16)
    mixture = yaml.safe_load(config.read_text()).get("tasks")
    assert run.tasks == (mixture.split(",") if mixture else
                         ["summarization", "generation", "translation"] if task == "multitask" else [task])
    assert Path(run.training.output_dir).name.endswith(f"-{strategy}-Qwen2.5-Coder-{size}-Instruct")


def test_command_line_flags_override_the_config_and_the_run_records_both(tiny_model, tmp_path):
    config = tmp_path / "mine.json"
    config.write_text(json.dumps({"script": "summarization/qlora_train.py", "max_steps": 5, "learning_rate": 0.5,
                                  "lora_r": 4, "languages": ["python"]}))
    out = tmp_path / "run"
    assert run_script("summarization", "qlora", tiny_model, out, config=config, max_steps=1,
                      eval_strategy="no") == 0
    recorded = read_json(out / "run_config.json")
    training = recorded["arguments"]["training"]
    assert training["max_steps"] == 1  # given on the command line after --config: the command line wins
    assert training["learning_rate"] == 1e-2  # tests' base flags come after the config too
    assert recorded["arguments"]["qlora"]["lora_r"] == 4  # from the config
    assert recorded["arguments"]["data"]["languages"] == "python" and "--config" in recorded["arguments"]["argv"]
    assert read_json(out / "adapter_config.json")["r"] == 4


@pytest.mark.parametrize("content,needle", [
    ({"script": "multitask/fft_train.py"}, "is for multitask/fft_train.py, not summarization/qlora_train.py"),
    ({"learning_rte": 1e-4}, "unknown setting 'learning_rte'"),
    (["not", "a", "mapping"], "expected `flag: value` settings"),
    ({"base_model_name": "Qwen/Qwen2.5-Coder-{model_size}-Instruct"}, "needs --model_size"),
])
def test_bad_configs_are_one_line(content, needle, tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(content))
    assert load_script("summarization", "qlora").main(["--config", str(config), "--output_dir",
                                                       str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and needle in err and not (tmp_path / "o").exists()


def test_model_size_without_a_placeholder_is_refused(capsys, tmp_path):
    assert load_script("multitask", "qlora").main(["--model_size", "3B", "--output_dir", str(tmp_path / "o")]) == 2
    assert "has no {model_size} to fill" in capsys.readouterr().err


def test_a_configs_model_size_is_moot_when_the_command_line_names_the_model():
    run, _, _ = _parse(ROOT / "configs" / "mt-qlora.yaml", "--base_model_name", "/models/my-coder")
    assert run.model.base_model_name == "/models/my-coder" and run.model.config.endswith("mt-qlora.yaml")


def test_config_is_in_help(capsys):
    from common.run_args import build_parser

    assert "--config" in build_parser("qlora").format_help()


def test_the_order_of_tasks_changes_nothing():
    from common.run_args import parse_args

    a = parse_args("multitask", "qlora", ["--tasks", "translation,summarization"])
    b = parse_args("multitask", "qlora", ["--tasks", "summarization,translation"])
    assert a.tasks == b.tasks == ["summarization", "translation"]
    assert a.training.output_dir == b.training.output_dir and a.training.output_dir.split("/")[-1].startswith(
        "multitask-summarization+translation-qlora-")


def test_evaluations_of_different_task_subsets_get_their_own_folders(tmp_path):
    from conftest import SAMPLES

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "java-cs:0", "task": "translation", "prediction": "int F() { return 1; }"})
                     + "\n" + json.dumps({"id": "python:0", "task": "summarization", "prediction": "Adds."}) + "\n")
    data = ["--summarization_dataset", str(SAMPLES / "code_to_text"), "--translation_dataset",
            str(SAMPLES / "code_to_code_trans"), "--predictions_file", str(preds), "--quality", "False"]
    evaluate = load_script("multitask", "evaluate").main
    assert evaluate([*data, "--tasks", "translation"]) == 0
    assert evaluate([*data, "--tasks", "summarization"]) == 0
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["eval-multitask-summarization-test-rescored", "eval-multitask-translation-test-rescored"]

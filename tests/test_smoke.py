"""A few real processes: the README's demo command, --help, and a user error's exit code."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from conftest import run_process

pytestmark = pytest.mark.slow  # real processes: the scripts as a user runs them


def _run(*args, timeout=300):
    return run_process(*args, timeout=timeout)


def test_demo_command_trains_multitask_qlora(tmp_path):
    out = tmp_path / "demo"
    proc = _run("multitask/qlora_train.py", "--demo", "--output_dir", str(out), "--num_train_epochs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "run_config.json",
                 "trainer_state.json", "train_results.json", "eval_results.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "run_config.json").read_text())
    assert config["arguments"]["model"]["demo"] is True
    # the embedded default: every task and language of the shipped samples, all 40 training examples each
    # (minus those whose answer alone exceeds --max_seq_length, which are counted as dropped)
    kept, dropped = config["counts"]["train"], config["dropped"]["train"]
    assert {k: kept[k] + dropped.get(k, 0) for k in kept} == {f"{t}/{l}": 40 for t, l in [
        ("generation", "java"), ("generation", "python"), ("summarization", "java"), ("summarization", "python"),
        ("translation", "cs-java"), ("translation", "java-cs")]}
    assert sum(dropped.values()) <= 2
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses[-1] < losses[0], f"the demo should learn: {losses}"
    adapter = load_file(out / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)


def test_help_lists_study_flags():
    proc = _run("generation/fft_train.py", "--help", timeout=120)
    assert proc.returncode == 0
    for flag in ("--base_model_name", "--device_batch_size", "--gradient_accumulation_steps", "--save_processed_data",
                 "--sample_size", "--val_sample_size", "--eval_samples", "--early_stopping_patience",
                 "--early_stopping_threshold", "--num_train_epochs", "--learning_rate", "--max_seq_length"):
        assert flag in proc.stdout, flag
    assert "--lora_r" not in proc.stdout  # LoRA flags belong to the QLoRA scripts only


@pytest.mark.parametrize("args", [["--save_processed_data", "False", "--fp16", "True"]])
def test_user_error_exits_2_without_traceback(args, tmp_path):
    proc = _run("translation/qlora_train.py", "--output_dir", str(tmp_path / "x"), *args, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --fp16 is not supported with QLoRA")
    assert not (tmp_path / "x").exists()

"""Each of the eight task scripts trains end-to-end on the tiny model and the shipped samples."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, TASKS, read_json, run_script

EXPECTED_TASKS = {
    "summarization": {"summarization"},
    "generation": {"generation"},
    "translation": {"translation"},
    "multitask": {"summarization", "generation", "translation"},
}


def _common_artifacts(out, task):
    for name in ("run_config.json", "trainer_state.json", "train_results.json", "eval_results.json",
                 "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).exists(), name
    config = read_json(out / "run_config.json")
    assert config["arguments"]["task"] == task
    import subprocess

    import torch
    import transformers

    assert config["versions"]["torch"] == torch.__version__
    assert config["versions"]["transformers"] == transformers.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert config["git_revision"] in (head, f"{head}-dirty")
    seen = {key.split("/")[0] for key in config["counts"]["train"]}
    assert seen == EXPECTED_TASKS[task]
    # --sample_size 6 per source: 6 per code-to-text language, 6 pairs used in both directions
    assert all(n == 6 for n in config["counts"]["train"].values()), config["counts"]["train"]
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == 4
    eval_results = read_json(out / "eval_results.json")
    assert math.isfinite(eval_results["eval_loss"])
    for t in EXPECTED_TASKS[task]:
        assert math.isfinite(eval_results[f"eval_{t}_loss"])
    return config


@pytest.mark.parametrize("task", TASKS)
def test_qlora_script_trains_adapter(task, tiny_model, tmp_path):
    out = tmp_path / "run"
    assert run_script(task, "qlora", tiny_model, out) == 0
    config = _common_artifacts(out, task)
    assert config["arguments"]["qlora"]["bnb_4bit_quant_type"] == "nf4"
    assert (out / "adapter_config.json").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert len(lora_b) == 2 * 7  # 2 layers x 7 projections
    assert all(t.abs().sum() > 0 for t in lora_b), "lora_B starts at zero and must have been trained"
    assert not (out / "model.safetensors").exists(), "QLoRA saves the adapter, not the full model"


@pytest.mark.parametrize("task", TASKS)
def test_fft_script_updates_weights(task, tiny_model, tmp_path):
    out = tmp_path / "run"
    assert run_script(task, "fft", tiny_model, out) == 0
    _common_artifacts(out, task)
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k].float(), after[k].float())]
    assert len(changed) == len(before), f"unchanged: {sorted(set(before) - set(changed))}"

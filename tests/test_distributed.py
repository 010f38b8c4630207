"""Two processes on CPU (gloo), launched the way users launch them: torchrun and accelerate launch.

Training: both ranks finish; steps per epoch divide by the world size (the optimizer step count follows); evaluation
and checkpoints land at those steps, written once; the data is tokenized once and handed to the other rank; the
saved model or adapter loads and has learned. Evaluation: the ranks split the batches and the first one writes the
files a single process writes.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, SAMPLES, base_args, load_script, read_json, run_process

pytestmark = pytest.mark.slow  # real processes


def _torchrun(*args, **kwargs):
    return run_process("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args, **kwargs)


def _checkpoints(out):
    return sorted((p for p in out.glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[1]))


def _check_steps_and_checkpoints(out, examples: int, batch: int, accumulation: int, epochs: int):
    config = read_json(out / "run_config.json")
    assert config["world_size"] == 2
    per_epoch = math.ceil(examples / (batch * accumulation * 2))
    assert config["steps_per_epoch"] == per_epoch
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == per_epoch * epochs  # optimizer steps: the world-size-aware count
    evals = [h["step"] for h in state["log_history"] if "eval_loss" in h and "train_runtime" not in h]
    assert evals[:epochs] == [per_epoch * (e + 1) for e in range(epochs)]
    checkpoints = _checkpoints(out)
    assert [p.name for p in checkpoints] == [f"checkpoint-{per_epoch * (e + 1)}" for e in range(epochs)][-2:]
    for checkpoint in checkpoints:
        names = sorted(p.name for p in checkpoint.iterdir())
        assert "rng_state_0.pth" in names and "rng_state_1.pth" in names  # each rank's RNG, for an exact resume
        assert not any(name.endswith((".tmp", "-tmp")) for name in names)
    return config, state


def test_torchrun_multitask_qlora(tiny_model, tmp_path):
    """36 examples (6 per source), 4 per device, accumulation 2, 2 processes: 3 steps per epoch."""
    out = tmp_path / "qlora"
    cache = tmp_path / "datasets_cache"
    args = base_args(tiny_model, out, bnb_4bit_compute_dtype="float32", max_steps=None, num_train_epochs=2,
                     gradient_accumulation_steps=2, save_processed_data=False)
    proc = _torchrun("multitask/qlora_train.py", *args, env={"HF_DATASETS_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    config, state = _check_steps_and_checkpoints(out, examples=36, batch=4, accumulation=2, epochs=2)
    assert config["global_batch_size"] == 16
    assert "global batch 16 = 4 per device x 2 accumulation x 2 processes" in proc.stderr
    assert "--gradient_accumulation_steps 1 keeps 8" in proc.stderr
    # the data was tokenized by one process and read by the other; the hand-off is gone once the run is done
    assert len(re.findall(r"tokenize train: 100%", proc.stderr)) == 1, proc.stderr[-3000:]
    assert not list((cache / "code-llm-finetune-handoff").glob("*"))
    evals = [h for h in state["log_history"] if "eval_loss" in h]
    assert all(f"eval_{t}_loss" in evals[0] for t in ("summarization", "generation", "translation"))
    assert 4 < evals[0]["eval_loss"] < 9  # a mean over the ranks' examples, not their sum (about 2 x 6.9)
    assert (out / "run_complete.json").exists() and (out / "loss.png").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)  # it trained

    from common.modeling import load_for_inference

    model, tokenizer, how = load_for_inference(str(out))
    assert "4-bit" in how
    ids = tokenizer("def add(a, b):", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2


def test_torchrun_generation_fft(tiny_model, tmp_path):
    """12 examples (6 per language), 4 per device, 2 processes: 2 steps per epoch; the full model is saved once."""
    out = tmp_path / "fft"
    args = base_args(tiny_model, out, max_steps=None, num_train_epochs=2, save_processed_data=True)
    proc = _torchrun("generation/fft_train.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_steps_and_checkpoints(out, examples=12, batch=4, accumulation=1, epochs=2)
    assert (out / "processed_data" / "fingerprint.json").exists()
    trained = load_file(out / "model.safetensors")
    base = load_file(tiny_model / "model.safetensors")
    assert trained.keys() == base.keys()
    assert any(not torch.equal(trained[k], base[k]) for k in base)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(model.state_dict()["model.norm.weight"], trained["model.norm.weight"])


def test_torchrun_evaluation_equals_one_process(tiny_model, tmp_path):
    data = ["--summarization_dataset", str(SAMPLES / "code_to_text"), "--translation_dataset",
            str(SAMPLES / "code_to_code_trans"), "--num_samples", "2", "--batch_size", "2", "--max_new_tokens", "6",
            "--quality", "False", "--model_path", str(tiny_model)]
    single, split = tmp_path / "single", tmp_path / "split"
    assert load_script("multitask", "evaluate").main([*data, "--output_dir", str(single)]) == 0
    proc = _torchrun("multitask/evaluate.py", *data, "--output_dir", str(split))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "shard 0/2 done: 6 answers generated now" in proc.stderr
    assert "shard 1/2 done: 6 answers generated now" in proc.stderr
    assert (split / "predictions.jsonl").read_bytes() == (single / "predictions.jsonl").read_bytes()
    one, two = read_json(single / "metrics.json"), read_json(split / "metrics.json")
    for report in (one, two):
        report["arguments"].pop("output_dir")
    assert one == two
    assert sorted(p.name for p in split.iterdir()) == ["metrics.json", "predictions.jsonl", "report.md"]
    assert one["num_items"] == 12


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate(config: str, *args, **kwargs):
    """`accelerate launch` with a shipped config, two processes (without --cpu, which would launch only one)."""
    config = str(ROOT / "configs" / "accelerate" / config)
    return run_process("-m", "accelerate.commands.launch", "--config_file", config,
                       "--num_processes", "2", "--main_process_port", str(_free_port()), *args, **kwargs)


def test_accelerate_launch_ddp_config_trains_on_two_processes(tiny_model, tmp_path):
    out = tmp_path / "ddp"
    args = base_args(tiny_model, out, bnb_4bit_compute_dtype="float32", max_steps=None, num_train_epochs=1)
    proc = _accelerate("ddp.yaml", "multitask/qlora_train.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_steps_and_checkpoints(out, examples=36, batch=4, accumulation=1, epochs=1)
    assert (out / "run_complete.json").exists()


@pytest.mark.parametrize("config", ["deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_accelerate_launch_deepspeed_saves_a_loadable_model(config, tiny_model, tmp_path):
    """Runs where the optional deepspeed package is installed (it runs on CPUs, over gloo)."""
    pytest.importorskip("deepspeed")
    out = tmp_path / "zero"
    args = base_args(tiny_model, out, max_steps=None, num_train_epochs=1)
    proc = _accelerate(config, "--mixed_precision", "no", "generation/fft_train.py", *args,
                       timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_steps_and_checkpoints(out, examples=12, batch=4, accumulation=1, epochs=1)
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(out).state_dict()
    base = load_file(tiny_model / "model.safetensors")
    assert any(not torch.equal(trained[k], base[k]) for k in base)

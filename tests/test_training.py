"""Trainer behaviour: 4-bit model, steps per epoch, early stopping, train -> eval -> train, cache, resume."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import bitsandbytes as bnb
import pytest
import torch
from safetensors.torch import load_file

from common import data as data_module
from common.run_args import parse_args
from common.modeling import build_model, load_tokenizer
from common.training import steps_per_epoch
from conftest import base_args, read_json, run_script


def test_qlora_model_is_really_4bit(tiny_model, tmp_path):
    run = parse_args("multitask", "qlora", base_args(tiny_model, tmp_path, bnb_4bit_compute_dtype="float32"))
    model = build_model("qlora", run.model, run.strategy_args, run.training, load_tokenizer(run.model))
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert len(quantized) == 2 * 7
    for module in quantized.values():
        assert module.weight.dtype == torch.uint8  # two nf4 values per byte
        assert module.weight.numel() * 2 == module.in_features * module.out_features
        assert module.weight.quant_state.quant_type == "nf4"
        assert module.support_avx512bf16_for_cpu is False
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not isinstance(model.get_output_embeddings(), bnb.nn.Linear4bit)


def test_steps_per_epoch_formula():
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=16, world_size=4)
    assert steps_per_epoch(1000, args) == 8  # ceil(1000 / 128)
    assert steps_per_epoch(128, args) == 1
    assert steps_per_epoch(129, args) == 2


def test_eval_and_save_steps_default_to_steps_per_epoch(tiny_model, tmp_path):
    out = tmp_path / "run"
    # multitask, 6 per source: 12 summarization + 12 generation + 12 translation = 36; ceil(36 / (4 x 2)) = 5
    assert run_script("multitask", "qlora", tiny_model, out, gradient_accumulation_steps=2, max_steps=5) == 0
    config = read_json(out / "run_config.json")
    assert sum(config["counts"]["train"].values()) == 36
    assert config["steps_per_epoch"] == 5
    state = read_json(out / "trainer_state.json")
    assert state["eval_steps"] == 5 and state["save_steps"] == 5
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h] == [5]
    assert (out / "checkpoint-5").is_dir()
    assert state["best_model_checkpoint"].endswith("checkpoint-5")


def test_given_eval_steps_sets_save_steps(tiny_model, tmp_path):
    out = tmp_path / "run"
    assert run_script("summarization", "qlora", tiny_model, out, eval_steps=2) == 0
    state = read_json(out / "trainer_state.json")
    assert state["eval_steps"] == 2 and state["save_steps"] == 2
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h][:2] == [2, 4]


def test_early_stopping_stops_when_eval_loss_stops_improving(tiny_model, tmp_path):
    out = tmp_path / "run"
    # an improvement of 10 nats never happens: the first eval sets the best, two more without improvement stop it
    assert run_script("translation", "qlora", tiny_model, out, max_steps=20, eval_steps=1,
                      early_stopping_patience=2, early_stopping_threshold=10) == 0
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == 3
    evals = [h for h in state["log_history"] if "eval_loss" in h]
    assert len(evals) == 3


def test_train_eval_train_in_4bit(tiny_model, tmp_path):
    """bitsandbytes on AVX512-BF16 CPUs repacks 4-bit weights at eval: later training steps must still update the
    adapter."""
    out = tmp_path / "run"
    assert run_script("summarization", "qlora", tiny_model, out, max_steps=4, eval_steps=1,
                      lr_scheduler_type="constant", load_best_model_at_end=False, save_total_limit=10) == 0
    adapters = [load_file(out / f"checkpoint-{s}" / "adapter_model.safetensors") for s in (1, 2, 3, 4)]
    for before, after in zip(adapters, adapters[1:]):  # each step follows an evaluation
        assert any(not torch.equal(before[k], after[k]) for k in before)
    state = read_json(out / "trainer_state.json")
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert all(h["grad_norm"] > 0 for h in state["log_history"] if "grad_norm" in h)


def test_processed_data_saved_and_reused(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "run"
    flags = dict(save_processed_data=True, save_strategy="no", load_best_model_at_end=False, max_steps=1)
    assert run_script("summarization", "qlora", tiny_model, out, **flags) == 0
    folder = out / "processed_data"
    assert (folder / "fingerprint.json").exists()
    import datasets

    saved = datasets.load_from_disk(str(folder / "data"))
    assert {"input_ids", "labels", "task", "language", "id"} <= set(saved["train"].column_names)
    assert len(saved["train"]) == 12 and len(saved["validation"]) == 6

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the data was rebuilt although the data arguments are unchanged")

    monkeypatch.setattr(data_module, "build_split", no_rebuild)
    flags["overwrite_output_dir"] = True  # a finished run is not trained again otherwise; the cache stays
    assert run_script("summarization", "qlora", tiny_model, out, **flags) == 0
    assert read_json(out / "run_config.json")["reused_processed_data"] is True

    monkeypatch.undo()  # other data arguments: rebuilt and saved again
    assert run_script("summarization", "qlora", tiny_model, out, sample_size=4, **flags) == 0
    assert read_json(out / "run_config.json")["reused_processed_data"] is False
    assert len(datasets.load_from_disk(str(folder / "data"))["train"]) == 8


def test_eval_strategy_no_turns_evaluation_off(tiny_model, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert run_script("generation", "qlora", tiny_model, out, eval_strategy="no") == 0
    assert "no evaluation, no best-model loading, no early stopping" in caplog.text
    assert not (out / "eval_results.json").exists()
    state = read_json(out / "trainer_state.json")
    assert not any("eval_loss" in h for h in state["log_history"])
    assert read_json(out / "run_config.json")["arguments"]["training"]["load_best_model_at_end"] is False


@pytest.mark.parametrize("flag", ["True", "true", "1", "False", "false", "0"])
def test_boolean_flags(flag, tiny_model, tmp_path):
    run = parse_args("summarization", "qlora", base_args(tiny_model, tmp_path, save_processed_data=flag))
    assert run.data.save_processed_data is (flag in ("True", "true", "1"))


@pytest.mark.parametrize("flags", [
    {"eval_steps": 3},
    {"logging_steps": 3},
    {"save_steps": 3},
    {"eval_strategy": "epoch", "max_steps": 6},
])
def test_step_flags_that_do_not_divide_the_defaults(flags, tiny_model, tmp_path):
    out = tmp_path / "run"
    flags.setdefault("max_steps", 4)
    assert run_script("summarization", "qlora", tiny_model, out, **flags) == 0
    state = read_json(out / "trainer_state.json")
    assert state["best_model_checkpoint"] is not None  # evaluations and checkpoints lined up
    if "eval_steps" in flags or "save_steps" in flags:
        assert state["eval_steps"] == state["save_steps"] == 3


def test_save_strategy_no_turns_best_model_loading_off(tiny_model, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert run_script("summarization", "qlora", tiny_model, out, save_strategy="no", eval_steps=2) == 0
    assert "the best model is not loaded at the end" in caplog.text
    assert not list(out.glob("checkpoint-*"))
    assert (out / "eval_results.json").exists()


def test_rows_with_missing_values_are_skipped(tiny_model, tmp_path, caplog):
    import json

    from conftest import SAMPLES

    root = tmp_path / "trans"
    root.mkdir()
    for split in ("train", "validation"):
        rows = [json.loads(x) for x in (SAMPLES / "code_to_code_trans" / f"{split}.jsonl").read_text().splitlines()]
        rows[0]["cs"], rows[1]["java"] = None, "   "
        (root / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert run_script("translation", "qlora", tiny_model, out, translation_dataset=root, sample_size=-1) == 0
    assert "skipped 2 of 40 rows with an empty or missing java/cs" in caplog.text
    assert read_json(out / "run_config.json")["counts"]["train"] == {"translation/cs-java": 38,
                                                                      "translation/java-cs": 38}


def test_error_after_data_preparation_writes_nothing(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_script("summarization", "qlora", tiny_model, out, save_processed_data=True,
                      lora_target_modules="foo_proj")
    assert code == 2 and "foo_proj not found" in capsys.readouterr().err
    assert not out.exists()


def test_a_cache_without_validation_never_serves_a_run_that_evaluates(tiny_model, tmp_path, caplog):
    """--eval_strategy no caches the train split only; a later run that evaluates builds both, without calling the
    cache damaged."""
    out = tmp_path / "run"
    flags = dict(save_processed_data=True, save_strategy="no", max_steps=1, load_best_model_at_end=False)
    assert run_script("summarization", "qlora", tiny_model, out, eval_strategy="no", **flags) == 0
    assert "validation" not in read_json(out / "run_config.json")["counts"]
    assert read_json(out / "run_config.json")["system_role_merged"] is False  # ChatML takes a system message
    with caplog.at_level(logging.INFO):
        assert run_script("summarization", "qlora", tiny_model, out, overwrite_output_dir=True, **flags) == 0
    assert "other data arguments" in caplog.text and "damaged" not in caplog.text
    recorded = read_json(out / "run_config.json")
    assert recorded["reused_processed_data"] is False and recorded["counts"]["validation"]

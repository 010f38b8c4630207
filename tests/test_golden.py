"""Golden numbers: the recipe's data, labels and losses, pinned to the values the code gave when they were recorded.

A refactor must not change what the study's flags do. For the tiny model (seed 0) and a fixed seed, one multi-task
step on the shipped samples pins: the first training loss (QLoRA and FFT), the per-task eval losses after it, and, per
task and language or direction, one example's length, number of masked (prompt) tokens and a hash of its input ids
and labels. If a change is meant to alter these, it changes the recipe: say so and record the new values.
"""

from __future__ import annotations

import hashlib
import json

import datasets
import pytest

from conftest import read_json, run_script

LOSSES = {  # first logged training loss, then the evaluation after that step
    "qlora": {"loss": 6.921621799468994, "eval_loss": 6.897861003875732,
              "eval_summarization_loss": 6.890034395105698, "eval_generation_loss": 6.8926291870915035,
              "eval_translation_loss": 6.912060472592863},
    "fft": {"loss": 6.921127796173096, "eval_loss": 6.752810955047607,
            "eval_summarization_loss": 6.730973601880656, "eval_generation_loss": 6.73472091575074,
            "eval_translation_loss": 6.786570086682302},
}
EXAMPLES = {  # the training example with the smallest id of each group: id, length, masked tokens, hash
    "generation/java": ("java:11", 237, 126, "4e843a533798c8c4"),
    "generation/python": ("python:11", 253, 125, "bfc54e97f363a58b"),
    "summarization/java": ("java:11", 261, 196, "012c5608824609f2"),
    "summarization/python": ("python:11", 325, 210, "a402812a8246a18a"),
    "translation/cs-java": ("cs-java:11", 215, 165, "efbfdfb218b40e9b"),
    "translation/java-cs": ("java-cs:11", 215, 175, "f5372784559150cd"),
}


@pytest.fixture(scope="module")
def golden_runs(tiny_model, tmp_path_factory):
    runs = {}
    for strategy in ("qlora", "fft"):
        out = tmp_path_factory.mktemp("golden") / strategy
        # random order, padded batches: the study's batching (the default groups by length, tests/test_batching.py)
        assert run_script("multitask", strategy, tiny_model, out, max_steps=1, eval_strategy="steps",
                          eval_steps=1, save_processed_data=True, train_sampling_strategy="random") == 0
        runs[strategy] = out
    return runs


@pytest.mark.parametrize("strategy", ["qlora", "fft"])
def test_first_step_and_per_task_eval_losses(golden_runs, strategy):
    history = read_json(golden_runs[strategy] / "trainer_state.json")["log_history"]
    logged = {k: v for entry in history for k, v in entry.items() if k in LOSSES[strategy]}
    assert logged == pytest.approx(LOSSES[strategy], abs=2e-5)


def test_one_example_per_task_and_direction(golden_runs):
    train = datasets.load_from_disk(str(golden_runs["qlora"] / "processed_data" / "data"))["train"]
    first: dict[str, dict] = {}
    for row in train:
        key = f"{row['task']}/{row['language']}"
        if key not in first or row["id"] < first[key]["id"]:
            first[key] = row
    found = {}
    for key, row in sorted(first.items()):
        digest = hashlib.sha256(json.dumps([row["input_ids"], row["labels"]]).encode()).hexdigest()[:16]
        masked = sum(label == -100 for label in row["labels"])
        assert row["labels"][masked:] == row["input_ids"][masked:]  # the answer and end-of-turn are trained
        found[key] = (row["id"], len(row["input_ids"]), masked, digest)
    assert found == EXAMPLES

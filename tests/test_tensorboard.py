"""--report_to tensorboard: the Trainer's event files land inside the run's output folder, with the training loss."""

from __future__ import annotations

import logging

import pytest

from conftest import read_json, run_script


def test_report_to_tensorboard_logs_inside_the_run(tiny_model, tmp_path, monkeypatch, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # it would move the logs out of the run
    out = tmp_path / "run"
    assert run_script("summarization", "qlora", tiny_model, out, report_to="tensorboard", eval_steps=2) == 0
    assert read_json(out / "run_config.json")["arguments"]["training"]["report_to"] == ["tensorboard"]
    events = sorted(out.rglob("events.out.tfevents.*"))
    assert events and all(p.parent.parent == out / "runs" for p in events), events  # runs/<date>_<host>/
    logs = EventAccumulator(str(events[0].parent))
    logs.Reload()
    scalars = logs.Tags()["scalars"]
    assert "train/loss" in scalars and "eval/loss" in scalars, scalars
    assert [e.step for e in logs.Scalars("train/loss")] == [1, 2, 3, 4]
    losses = [h["loss"] for h in read_json(out / "trainer_state.json")["log_history"] if "loss" in h]
    assert [e.value for e in logs.Scalars("train/loss")] == pytest.approx(losses, rel=1e-6)  # stored as float32

    # reporting cannot change the result: the finished run is returned, not refused or trained again
    with caplog.at_level(logging.INFO):
        assert run_script("summarization", "qlora", tiny_model, out, report_to="none", eval_steps=2) == 0
    assert "already complete" in caplog.text

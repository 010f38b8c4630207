"""Resuming: a run stopped by Ctrl-C after a checkpoint, rerun with the same command, ends where an uninterrupted run
ends; a checkpoint whose save was cut short is never loaded; a bad --resume_from_checkpoint fails before loading."""

from __future__ import annotations

import shutil

import datasets  # noqa: F401 - imported here, their log handlers bind to the session's stderr, not a test's capture
import pytest
import transformers
from safetensors.torch import load_file

from common import training as training_module
from conftest import read_json, run_script

# multitask QLoRA, 6 steps, evaluation and a checkpoint every 2 steps, the final weights those of step 6
FLAGS = dict(max_steps=6, eval_steps=2, save_steps=2, load_best_model_at_end=False)


class _CtrlC(transformers.TrainerCallback):
    """Ctrl-C as step 5 begins, after checkpoint-4 was saved."""

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 4:
            raise KeyboardInterrupt


def _interrupted(build):
    """build_trainer, with Ctrl-C as step 5 begins."""
    def build_interrupted(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.add_callback(_CtrlC())
        return trainer
    return build_interrupted


def _max_difference(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_interrupted_run_resumes_from_the_last_complete_checkpoint(tiny_model, tmp_path, monkeypatch, capsys, caplog):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_script("multitask", "qlora", tiny_model, straight, **FLAGS) == 0

    with monkeypatch.context() as patch:
        patch.setattr(training_module, "build_trainer", _interrupted(training_module.build_trainer))
        capsys.readouterr()
        assert run_script("multitask", "qlora", tiny_model, resumed, **FLAGS) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"interrupted: rerun the same command to resume from the last complete "
                                            f"checkpoint in {resumed}")
    assert "Traceback" not in err
    assert not (resumed / ".lock").exists(), "Ctrl-C releases the lock"
    assert not (resumed / "run_complete.json").exists()
    assert (resumed / "checkpoint-4" / "checkpoint_complete").exists()
    assert not (resumed / "checkpoint-6").exists()

    # a save of step 6 cut short: weights and state written, no optimizer, no scheduler, no marker
    partial = resumed / "checkpoint-6"
    partial.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json", "trainer_state.json"):
        shutil.copy(resumed / "checkpoint-4" / name, partial / name)
    (partial / "optimizer.pt.partial").write_bytes(b"cut short")

    with caplog.at_level("INFO"):
        assert run_script("multitask", "qlora", tiny_model, resumed, **FLAGS) == 0
    assert f"resuming from {resumed / 'checkpoint-4'}" in caplog.text
    assert "skipping incomplete checkpoint(s)" in caplog.text and "checkpoint-6" in caplog.text
    assert read_json(resumed / "trainer_state.json")["global_step"] == 6
    assert (resumed / "checkpoint-6" / "checkpoint_complete").exists() and (resumed / "run_complete.json").exists()
    assert not (partial / "optimizer.pt.partial").exists(), "the cut-short save was deleted, then saved anew"
    a = load_file(straight / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert _max_difference(a, b) <= 1e-6
    step4 = load_file(resumed / "checkpoint-4" / "adapter_model.safetensors")
    assert _max_difference(a, step4) > 1e-6  # steps 5 and 6 did change the weights


@pytest.mark.parametrize("checkpoint", ["missing", "incomplete"])
def test_bad_resume_from_checkpoint_fails_before_loading(checkpoint, tiny_model, tmp_path, capsys):
    path = tmp_path / "checkpoint-4"
    if checkpoint == "incomplete":
        path.mkdir()
        (path / "adapter_model.safetensors").write_bytes(b"x")
    out = tmp_path / "run"
    capsys.readouterr()
    code = run_script("multitask", "qlora", tiny_model, out, resume_from_checkpoint=path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "\n".join(err)
    needle = "no such checkpoint folder" if checkpoint == "missing" else "is not a complete checkpoint (no "
    assert err[-1].startswith(f"error: --resume_from_checkpoint {path}") and needle in err[-1], err[-1]
    assert not out.exists(), "nothing written"


def test_ctrl_c_closes_progress_bars_before_its_line(capsys):
    """An open progress bar would redraw itself at exit, after the hint; it is closed first."""
    import sys

    from tqdm import tqdm

    from common import cli

    bars = []

    def main():
        bars.append(tqdm(total=3, file=sys.stderr))
        bars[0].update(1)
        raise KeyboardInterrupt

    assert cli.run(main, lambda: "rerun the same command") == 130
    assert bars[0].disable  # closed: tqdm sets it on close
    assert capsys.readouterr().err.rstrip().splitlines()[-1] == "interrupted: rerun the same command"


def test_resume_keeps_the_early_stopping_count(tiny_model, tmp_path, monkeypatch):
    """Evaluations at steps 2, 4, 6, ...; none after the first improves by the threshold; patience 2: an
    uninterrupted run stops at step 6. Interrupted at step 5 (one evaluation without improvement counted), the
    resumed run must count on from there and stop at step 6 too, not start counting again and stop at step 8."""
    flags = dict(max_steps=12, eval_steps=2, save_steps=2, early_stopping_patience=2, early_stopping_threshold=10)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_script("multitask", "qlora", tiny_model, straight, **flags) == 0
    assert read_json(straight / "trainer_state.json")["global_step"] == 6

    with monkeypatch.context() as patch:
        patch.setattr(training_module, "build_trainer", _interrupted(training_module.build_trainer))
        assert run_script("multitask", "qlora", tiny_model, resumed, **flags) == 130
    assert run_script("multitask", "qlora", tiny_model, resumed, **flags) == 0
    assert read_json(resumed / "trainer_state.json")["global_step"] == 6
    a = load_file(straight / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert _max_difference(a, b) <= 1e-6

"""The output folder of a training run: never an input, one run at a time, reused only by the same run.

Every refusal is one line on stderr (`error: ...`), exit code 2, no traceback, and leaves every file as it was.
One finished run (`finished`, module-scoped) serves the rerun cases; each of them leaves it as it found it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import datasets  # noqa: F401 - imported here, their log handlers bind to the session's stderr, not a test's capture
import pytest
import transformers  # noqa: F401

from common import checkpoints, run_dir
from common.errors import UserError
from conftest import SAMPLES, base_args, read_json, run_script

PROGRESS = re.compile(r"\[\d\d:\d\d")  # datasets' progress bars


def _snapshot(root):
    """Every file under root: bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None for p in sorted(root.rglob("*"))}


def _one_line_error(capsys, code, *needles) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)
             and "kernels-community" not in line]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err[-2000:]
    assert sum("error" in line.lower() for line in lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert run_script("summarization", "qlora", tiny_model, out, max_steps=2) == 0
    return out


# -------------------------------------------------------------------------------------- the output folder and inputs

@pytest.mark.parametrize("where", ["is", "inside", "contains"])
def test_output_dir_and_the_base_model_are_kept_apart(where, tiny_model, capsys):
    out = {"is": tiny_model, "inside": tiny_model / "run", "contains": tiny_model.parent}[where]
    before = _snapshot(tiny_model.parent)
    code = run_script("summarization", "qlora", tiny_model, out)
    how = {"is": "is", "inside": "lies inside", "contains": "contains"}[where]
    _one_line_error(capsys, code, f"--output_dir {out} {how} --base_model_name", "overwrite the model",
                    "pick another --output_dir")
    assert _snapshot(tiny_model.parent) == before, "the model's files must stay byte-identical"


def test_output_dir_inside_a_data_folder_is_refused(tiny_model, tmp_path, capsys):
    data = tmp_path / "c2t"
    shutil.copytree(SAMPLES / "code_to_text", data)
    before = _snapshot(tmp_path)
    code = run_script("summarization", "qlora", tiny_model, data / "run", summarization_dataset=data)
    _one_line_error(capsys, code, "lies inside --summarization_dataset", "overwrite the data")
    assert _snapshot(tmp_path) == before


def test_output_dir_through_a_symlink_to_the_model_is_refused(tiny_model, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(tiny_model, target_is_directory=True)
    before = _snapshot(tiny_model)
    _one_line_error(capsys, run_script("summarization", "qlora", tiny_model, link), "is --base_model_name")
    assert _snapshot(tiny_model) == before


@pytest.mark.parametrize("case", ["file", "under_a_file", "empty"])
def test_unusable_output_dir(case, tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty --output_dir would mean the current folder
    (tmp_path / "notes.txt").write_text("mine")
    out = {"file": tmp_path / "notes.txt", "under_a_file": tmp_path / "notes.txt" / "run", "empty": ""}[case]
    needle = {"file": "is a file, not a folder", "under_a_file": f"cannot be created: {tmp_path}/notes.txt is a file",
              "empty": "--output_dir is empty"}
    before = _snapshot(tmp_path)
    _one_line_error(capsys, run_script("summarization", "qlora", tiny_model, out), needle[case])
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder, so os.access says writable")
def test_read_only_output_dir(tiny_model, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        _one_line_error(capsys, run_script("summarization", "qlora", tiny_model, out), "is not writable")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def test_a_failing_run_leaves_no_folder_behind(tiny_model, tmp_path, capsys):
    """The lock needs the folder; a run that fails after taking it removes the folders it created."""
    out = tmp_path / "a" / "b" / "run"
    code = run_script("summarization", "qlora", tiny_model, out, lora_target_modules="foo_proj")
    _one_line_error(capsys, code, "foo_proj")
    assert not (tmp_path / "a").exists()


def test_non_empty_folder_that_is_not_a_run_is_refused(tiny_model, tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("text")
    before = _snapshot(tmp_path)
    _one_line_error(capsys, run_script("summarization", "qlora", tiny_model, out),
                    "is not empty and not a run of this toolkit", "chapter1.tex")
    assert _snapshot(tmp_path) == before


def test_folder_with_only_the_cache_and_lock_counts_as_empty(tmp_path):
    (tmp_path / "processed_data").mkdir()
    (tmp_path / ".lock").write_text("{}")
    assert run_dir.check_run_dir(tmp_path) is False
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(UserError, match="not a run of this toolkit"):
        run_dir.check_run_dir(tmp_path)


# --------------------------------------------------------------------------------------------------------- the lock

def _write_lock(folder, pid, host=None):
    folder.mkdir(exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                              "started": "2026-01-01T00:00:00", "what": "a training run (x)",
                                              "token": "t"}))


def test_second_run_into_a_locked_folder_is_refused(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_lock(out, sleeper.pid)
        before = _snapshot(tmp_path)
        _one_line_error(capsys, run_script("summarization", "qlora", tiny_model, out),
                        f"--output_dir {out} is in use by a training run (x) (pid {sleeper.pid} on host",
                        "wait for it or pick another --output_dir")
        assert _snapshot(tmp_path) == before
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_of_another_host_is_refused(tmp_path):
    _write_lock(tmp_path, os.getpid(), host="elsewhere.invalid")
    with pytest.raises(UserError, match=r"on another host .*if that run is gone, delete .*\.lock"):
        with run_dir.locked(tmp_path, "x"):
            pass
    assert (tmp_path / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(finished, tiny_model, capsys, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(finished, dead.pid)
    with caplog.at_level("WARNING"):
        assert run_script("summarization", "qlora", tiny_model, finished, max_steps=2) == 0
    assert f"taking over the lock of a training run (x) in {finished}: its process is gone (pid {dead.pid}" \
        in caplog.text
    assert not (finished / ".lock").exists()


def test_lock_is_released_and_created_folders_removed_on_interrupt(tmp_path):
    out = tmp_path / "a" / "run"
    with pytest.raises(KeyboardInterrupt):
        with run_dir.locked(out, "x"):
            holder = read_json(out / ".lock")
            assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
            raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()
    out.mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with run_dir.locked(out, "x"):
            (out / "kept.txt").write_text("")
            raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]  # only the lock goes; a folder it did not create stays


# ------------------------------------------------------------------------------------------ rerunning into a run

@pytest.mark.parametrize("script,flags,needles", [
    pytest.param("qlora", {"learning_rate": 0.02}, ["--learning_rate 0.01 -> 0.02"], id="learning_rate"),
    pytest.param("qlora", {"lora_r": 4}, ["--lora_r 8 -> 4"], id="lora_r"),
    pytest.param("fft", {}, ['strategy "qlora" -> "fft"'], id="fft_into_qlora"),
    # eval_loss, which picks the best checkpoint, is a mean over evaluation batches
    pytest.param("qlora", {"per_device_eval_batch_size": 3}, ["--per_device_eval_batch_size 4 -> 3"],
                 id="eval_batch_size"),
])
def test_rerun_with_other_arguments_is_refused(script, flags, needles, finished, tiny_model, capsys):
    before = _snapshot(finished.parent)
    code = run_script("summarization", script, tiny_model, finished, max_steps=2, **flags)
    _one_line_error(capsys, code, f"--output_dir {finished} holds a run with other arguments", *needles,
                    "pick another --output_dir")
    assert _snapshot(finished.parent) == before, "run_config.json and every other file stay byte-identical"


def test_rerun_of_a_finished_run_does_not_train(finished, tiny_model, caplog, monkeypatch):
    before = _snapshot(finished.parent)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(transformers.Trainer, "train", no_training)
    with caplog.at_level("INFO"):  # other logging and progress flags do not make it another run
        code = run_script("summarization", "qlora", tiny_model, finished, max_steps=2, logging_steps=5,
                          disable_tqdm=False, dataloader_num_workers=0, save_total_limit=3)
    assert code == 0
    assert f"already complete: {finished}" in caplog.text
    assert _snapshot(finished.parent) == before, "nothing written: same files, same modification times"
    from common.recipe import finetune

    argv = base_args(tiny_model, finished, max_steps=2, bnb_4bit_compute_dtype="float32")
    assert finetune("summarization", "qlora", argv) == read_json(finished / "run_complete.json")["metrics"]


def test_overwrite_output_dir_starts_fresh(finished, tiny_model, tmp_path, caplog):
    """--overwrite_output_dir True replaces a run (other arguments allowed), keeping nothing of it."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "left_over.txt").write_text("from the previous run")
    old_checkpoint = (out / "checkpoint-2" / "adapter_model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert run_script("summarization", "qlora", tiny_model, out, max_steps=2, learning_rate=0.02,
                          overwrite_output_dir=True) == 0
    assert "removed the previous run" in caplog.text
    assert not (out / "left_over.txt").exists()
    assert read_json(out / "run_config.json")["arguments"]["training"]["learning_rate"] == 0.02
    assert (out / "checkpoint-2" / "adapter_model.safetensors").stat().st_mtime_ns != old_checkpoint
    assert (out / "run_complete.json").exists() and not (out / ".lock").exists()


# ---------------------------------------------------------------------------------------------------- checkpoints

def _checkpoint(folder, files=("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt"),
                marked=False):
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("{}" if name.endswith(".json") else "x")
    if marked:
        (folder / "checkpoint_complete").write_text("{}")


def test_last_complete_checkpoint_skips_and_removes_incomplete_ones(tmp_path, caplog):
    _checkpoint(tmp_path / "checkpoint-2")  # saved before markers existed: judged by its files
    _checkpoint(tmp_path / "checkpoint-3", files=("trainer_state.json", "adapter_model.safetensors"))
    assert checkpoints.last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    _checkpoint(tmp_path / "checkpoint-4", marked=True)
    _checkpoint(tmp_path / "checkpoint-10")  # all files but no marker after a marked one: its save was cut short
    with caplog.at_level("WARNING"):
        assert checkpoints.last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert "checkpoint-3, checkpoint-10" in caplog.text
    assert checkpoints.remove_incomplete_checkpoints(tmp_path) == ["checkpoint-3", "checkpoint-10"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_finished_run_checkpoints_are_marked(finished):
    assert read_json(finished / "checkpoint-2" / "checkpoint_complete")["step"] == 2
    assert read_json(finished / "run_complete.json")["metrics"]["eval_loss"] > 0


def test_settings_inside_a_neutral_argument_are_neutral(tmp_path):
    """activation_checkpointing_kwargs is result-neutral as a whole, so its use_reentrant may change."""
    saved = {"training": {"learning_rate": 0.01, "activation_checkpointing_kwargs": {"use_reentrant": False}}}
    (tmp_path / "run_config.json").write_text(json.dumps({"arguments": saved}))
    new = {"training": {"learning_rate": 0.01, "activation_checkpointing_kwargs": {"use_reentrant": True}}}
    assert run_dir.check_compatible(tmp_path, new, run_dir.RESULT_NEUTRAL) is True
    # runs from before callback states were restored on resume are still the same runs
    restored = {"training": dict(new["training"], restore_callback_states_from_checkpoint=True)}
    assert run_dir.check_compatible(tmp_path, restored, run_dir.RESULT_NEUTRAL) is True
    with pytest.raises(UserError, match="--learning_rate 0.01 -> 0.02"):
        run_dir.check_compatible(tmp_path, dict(new, training=dict(new["training"], learning_rate=0.02)),
                                 run_dir.RESULT_NEUTRAL)


def test_a_run_from_before_packing_existed_trained_padded(tmp_path):
    """Runs recorded before --packing existed trained on padded batches: the same run as --packing False."""
    (tmp_path / "run_config.json").write_text(json.dumps({"arguments": {"data": {"sample_size": 6}}}))
    assert run_dir.check_compatible(tmp_path, {"data": {"sample_size": 6, "packing": False}}, set()) is True
    with pytest.raises(UserError, match="--packing false -> true"):
        run_dir.check_compatible(tmp_path, {"data": {"sample_size": 6, "packing": True}}, set())


def test_another_number_of_processes_is_another_run(finished, tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "run_complete.json").unlink()  # an unfinished run, as if killed: it would resume
    record = read_json(out / "run_config.json")
    (out / "run_config.json").write_text(json.dumps(dict(record, world_size=2)))
    before = _snapshot(tmp_path)
    code = run_script("summarization", "qlora", tiny_model, out, max_steps=2)
    _one_line_error(capsys, code, "trained by 2 processes, this one has 1", "rerun it with 2")
    assert _snapshot(tmp_path) == before


def test_overwrite_never_deletes_an_evaluation_at_work(finished, tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "eval-summarization-test").mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_lock(out / "eval-summarization-test", sleeper.pid)
        before = _snapshot(tmp_path)
        code = run_script("summarization", "qlora", tiny_model, out, max_steps=2, learning_rate=0.02,
                          overwrite_output_dir=True)
        _one_line_error(capsys, code, "--overwrite_output_dir would delete", "eval-summarization-test",
                        f"pid {sleeper.pid}")
        assert _snapshot(tmp_path) == before
    finally:
        sleeper.kill()
        sleeper.wait()

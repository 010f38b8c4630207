"""Shared fixtures: offline environment, a tiny model built once per session, and a call into the task scripts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "data" / "samples"
TASKS = ("summarization", "generation", "translation", "multitask")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from common.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def load_script(task: str, name: str):
    """Import a task's entry point under a unique module name: `fft`/`qlora` (the *_train.py scripts) or `evaluate`."""
    stem = name if name == "evaluate" else f"{name}_train"
    spec = importlib.util.spec_from_file_location(f"{task}_{stem}", ROOT / task / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_args(model: Path, out: Path, **overrides) -> list[str]:
    """Flags for a few-second run on the tiny model and the shipped samples."""
    flags = {
        "base_model_name": model, "summarization_dataset": SAMPLES / "code_to_text",
        "translation_dataset": SAMPLES / "code_to_code_trans", "output_dir": out, "max_steps": 4,
        "device_batch_size": 4, "gradient_accumulation_steps": 1, "sample_size": 6, "val_sample_size": 3,
        "learning_rate": 1e-2, "warmup_steps": 0, "logging_steps": 1, "disable_tqdm": True, "seed": 0,
    }
    flags.update(overrides)
    argv = []
    for key, value in flags.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def run_script(task: str, strategy: str, model: Path, out: Path, **overrides) -> int:
    if strategy == "qlora":
        overrides.setdefault("bnb_4bit_compute_dtype", "float32")
    return load_script(task, strategy).main(base_args(model, out, **overrides))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------ user-error cases (one line, exit 2)

def train_case(task: str, strategy: str, **overrides):
    """A training command: the flags above on the shipped samples, {model} and {out} filled in per test."""
    if strategy == "qlora":
        overrides.setdefault("bnb_4bit_compute_dtype", "float32")
    return task, strategy, base_args("{model}", "{out}", **overrides)


def eval_case(task: str, *args: str):
    return task, "evaluate", [*args, "--output_dir", "{out}"]


def snapshot(root: Path) -> dict:
    """Every file under root, by content."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def expect_user_error(case, model, tmp_path, capsys, files: dict, *needles) -> str:
    """Run a case whose argv names inputs {t}/NAME (each written by files[NAME](path, model) first): exit code 2,
    the last stderr line "error: ..." holding every needle, no traceback, nothing written, inputs unchanged."""
    task, script, argv = case
    out = tmp_path / "out"
    argv = [a.replace("{t}", str(tmp_path)).replace("{out}", str(out)).replace("{model}", str(model)) for a in argv]
    for name, write in files.items():
        target = tmp_path / name
        if str(target) in argv:
            target.parent.mkdir(parents=True, exist_ok=True)
            write(target, model)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = load_script(task, script).main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err[-5:]
    assert err and err[-1].startswith("error: "), err[-5:]
    assert not any("Traceback" in line for line in err), "\n".join(err)[-2000:]
    for needle in needles:
        assert needle.replace("{t}", str(tmp_path)) in err[-1], err[-1]
    assert not out.exists(), "nothing may be written on a user error"
    assert snapshot(tmp_path) == before, "inputs must stay as they were"
    return err[-1]


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (zombies waiting for their reaper count as dead)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.fixture
def generate_calls(monkeypatch):
    """The number of prompts of each `model.generate` call."""
    from transformers import GenerationMixin

    calls: list[int] = []
    real = GenerationMixin.generate

    def counting(self, *args, **kwargs):
        calls.append(len(kwargs["input_ids"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", counting)
    return calls


def run_process(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python ARGS` in the project root, offline, as a user runs it; output captured."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)

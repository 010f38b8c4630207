"""Unusable models, tokenizers and model flags, provoked through a task script's `main(argv)`.

Refusals follow the house pattern of test_user_errors.py: exit code 2; stderr's last line starts with "error: " and
names the flag or file at fault; no traceback; nothing written; every file under tmp_path byte-identical. Checks that
need only config or tokenizer files also run before any data is prepared and before any weights load (both are made
to fail the test if reached). Bad model folders are damaged copies of the `tiny_model` fixture.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import datasets  # noqa: F401 - imported here, their log handlers bind to the session's stderr, not a test's capture
import pytest
import transformers  # noqa: F401

from conftest import ROOT, SAMPLES, base_args, load_script, read_json, snapshot

DATA = ["--summarization_dataset", str(SAMPLES / "code_to_text"),
        "--translation_dataset", str(SAMPLES / "code_to_code_trans")]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json")
# Gemma's way of refusing a system message, on the tiny tokenizer's ChatML markers (assistant turns named "model")
GEMMA_LIKE_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
    "{{- '<|im_start|>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>model\\n' }}{%- endif %}"
)


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if data is prepared or weights load (a check that needs neither must come first)."""
    import common.data
    import common.modeling

    def weights(*args, **kwargs):
        raise AssertionError("the model weights were loaded before the check")

    def data(*args, **kwargs):
        raise AssertionError("the data was prepared before the check")

    monkeypatch.setattr(common.modeling, "_load", weights)
    monkeypatch.setattr(common.data, "build_split", data)


@pytest.fixture
def no_weights(monkeypatch):
    import common.modeling

    def weights(*args, **kwargs):
        raise AssertionError("the model weights were loaded before the check")

    monkeypatch.setattr(common.modeling, "_load", weights)


def _refused(task, script, argv, tmp_path, capsys, *needles):
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = load_script(task, script).main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err[-5:]
    assert err and err[-1].startswith("error: "), err[-5:]
    assert not any("Traceback" in line for line in err), "\n".join(err)[-2000:]
    for needle in needles:
        assert str(needle) in err[-1], err[-1]
    assert not (tmp_path / "out").exists(), "nothing may be written on a user error"
    assert snapshot(tmp_path) == before, "inputs must stay as they were"
    return err[-1]


def _copy(tiny_model, tmp_path, name="model"):
    target = tmp_path / name
    shutil.copytree(tiny_model, target)
    return target


def _train(model, tmp_path, strategy="qlora", **overrides):
    if strategy == "qlora":
        overrides.setdefault("bnb_4bit_compute_dtype", "float32")
    return base_args(model, tmp_path / "out", **overrides)


def _eval(model_path, tmp_path, *extra):
    return [*DATA, "--model_path", model_path, "--num_samples", "1", "--output_dir", tmp_path / "out", *extra]


# ------------------------------------------------------------------------------------------- 1. no tokenizer files

def _without_tokenizer(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    for name in TOKENIZER_FILES:
        (model / name).unlink(missing_ok=True)
    return model


@pytest.mark.parametrize("strategy", ["qlora", "fft"])
def test_training_refuses_a_model_without_tokenizer_files(strategy, tiny_model, tmp_path, capsys, no_loading):
    model = _without_tokenizer(tiny_model, tmp_path)
    _refused("summarization", strategy, _train(model, tmp_path, strategy), tmp_path, capsys,
             f"--base_model_name {model} has no tokenizer files (tokenizer.json / tokenizer_config.json)",
             "copy them from the base model")


@pytest.mark.parametrize("strategy", ["qlora", "fft"])
def test_training_refuses_a_tokenizer_config_without_its_vocabulary(strategy, tiny_model, tmp_path, capsys,
                                                                     no_loading):
    """tokenizer_config.json alone loads as a tokenizer of the special tokens only, encoding any text to nothing."""
    model = _copy(tiny_model, tmp_path)
    (model / "tokenizer.json").unlink()
    _refused("summarization", strategy, _train(model, tmp_path, strategy), tmp_path, capsys,
             f"--base_model_name {model}: its tokenizer encodes text to nothing", "copy the tokenizer files")


def test_evaluation_refuses_a_model_without_tokenizer_files(tiny_model, tmp_path, capsys, no_weights):
    model = _without_tokenizer(tiny_model, tmp_path)
    _refused("summarization", "evaluate", _eval(model, tmp_path), tmp_path, capsys,
             f"--model_path {model} has no tokenizer files", "copy them from the base model")


# --------------------------------------------------------------------- 2. a chat template that refuses a system role

def _gemma_like(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = GEMMA_LIKE_TEMPLATE
    (model / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return model


def test_system_role_refused_by_the_template_is_merged_into_the_user_turn(tiny_model, tmp_path, caplog):
    from transformers import AutoTokenizer

    from common import prompts
    from common.encoding import IGNORE_INDEX, ChatFormat, fit_prompt, render_prompt, system_role_merged

    model = _gemma_like(tiny_model, tmp_path)
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="common"):
        code = load_script("summarization", "fft").main(
            [str(a) for a in _train(model, tmp_path, "fft", save_processed_data=True, max_steps=1)])
    assert code == 0
    assert "refuses a system message" in caplog.text
    assert read_json(out / "run_config.json")["system_role_merged"] is True  # the record says what ran
    tokenizer = AutoTokenizer.from_pretrained(out)  # saved with the run: what inference will use
    assert system_role_merged(tokenizer) and ChatFormat.for_tokenizer(tokenizer).system_role_merged

    train = datasets.load_from_disk(str(out / "processed_data" / "data"))["train"]
    example = train[0]
    labels, ids = example["labels"], example["input_ids"]
    n_prompt = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]
    prompt = tokenizer.decode(ids[:n_prompt])
    answer = tokenizer.decode(ids[n_prompt:])
    assert prompt.startswith("<|im_start|>user\n") and "<|im_start|>system" not in prompt
    assert prompt.endswith("<|im_end|>\n<|im_start|>model\n")
    assert prompt.count("<|im_start|>") == 2  # one user turn, then the model's
    assert answer.endswith("<|im_end|>") and answer.strip()

    # the system text opens the user turn, a blank line before the user text; inference renders the same prompt
    item = {"task": "summarization", "language": example["language"], "id": example["id"], "source": "def f(): pass",
            "summary": "", "signature": "", "reference": "Do nothing."}
    system, user = prompts.build_messages(item)
    messages, prompt_ids, _ = fit_prompt(item, tokenizer, 1024)
    assert render_prompt(tokenizer, messages) == (
        f"<|im_start|>user\n{system['content']}\n\n{user['content']}<|im_end|>\n<|im_start|>model\n")
    assert tokenizer.decode(prompt_ids) == render_prompt(tokenizer, messages)


# ------------------------------------------------------------------ 3. a tokenizer larger than the model's vocabulary

def test_training_refuses_a_tokenizer_larger_than_the_vocabulary(tiny_model, tmp_path, capsys, no_loading):
    from transformers import AutoTokenizer

    model = _copy(tiny_model, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model)
    vocab_size = read_json(model / "config.json")["vocab_size"]
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(5)])
    tokenizer.save_pretrained(model)
    _refused("summarization", "qlora", _train(model, tmp_path), tmp_path, capsys,
             f"the tokenizer of {model} has {vocab_size + 5} tokens but the model's vocab_size is {vocab_size}",
             "use the model's own tokenizer")


# ------------------------------------------------------------------------------------------------- 4. LoRA flags

@pytest.mark.parametrize("flag,value", [("lora_r", 0), ("lora_r", -4), ("lora_alpha", -16), ("lora_alpha", 0),
                                        ("lora_dropout", 1.5), ("lora_dropout", 1.0), ("lora_dropout", -0.1)])
def test_bad_lora_flags_are_refused_at_parse_time(flag, value, tmp_path, capsys):
    _refused("multitask", "qlora", _train(tmp_path / "no-model", tmp_path, **{flag: value}), tmp_path, capsys,
             f"--{flag} {value}")


# ----------------------------------------------------------------------------------------- 5. --attn_implementation

@pytest.mark.parametrize("strategy", ["qlora", "fft"])
@pytest.mark.parametrize("value", ["flash_attention_2", "foo"])
def test_unusable_attn_implementation_is_refused_at_parse_time(value, strategy, tmp_path, capsys):
    from common.model_files import attn_implementations

    if value in attn_implementations():
        pytest.skip(f"{value} is usable here")
    message = _refused("generation", strategy, _train(tmp_path / "no-model", tmp_path, strategy,
                                                      attn_implementation=value),
                       tmp_path, capsys, f"--attn_implementation {value}", "eager, sdpa")
    if value.startswith("flash"):
        assert "flash-attn" in message


# ------------------------------------------------------------------------------------------------ 6. config.json

@pytest.mark.parametrize("damage,needle", [
    (lambda config: json.dumps({k: v for k, v in json.loads(config).items() if k != "model_type"}), "has no model_type"),
    (lambda config: config[: len(config) // 2], "is not readable JSON"),
], ids=["no_model_type", "truncated"])
def test_a_broken_config_json_is_named(damage, needle, tiny_model, tmp_path, capsys, no_loading):
    model = _copy(tiny_model, tmp_path)
    config = model / "config.json"
    config.write_text(damage(config.read_text()))
    _refused("translation", "fft", _train(model, tmp_path, "fft"), tmp_path, capsys,
             "--base_model_name", f"{config} {needle}")


# ---------------------------------------------------------------------- 7. missing weights, paths that are not there

def test_evaluation_refuses_a_run_without_its_adapter_weights(tiny_model, tmp_path, capsys, no_weights):
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": str(tiny_model), "peft_type": "LORA", "r": 4, "lora_alpha": 8,
        "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
    (run / "run_config.json").write_text(json.dumps({"arguments": {"tasks": ["summarization"], "model": {
        "base_model_name": str(tiny_model)}, "qlora": {"bnb_4bit_compute_dtype": "float32"}}}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model / name, run / name)
    for step in (2, 10):  # the latest checkpoint is named, by step, not by name order
        (run / f"checkpoint-{step}").mkdir()
        (run / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"")
    _refused("summarization", "evaluate", _eval(run, tmp_path), tmp_path, capsys,
             f"--model_path: cannot load the adapter in {run}: it holds no adapter_model.safetensors",
             f"{run / 'checkpoint-10'}")


def _weightless(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    for path in model.glob("*.safetensors"):
        path.unlink()
    return model


def test_training_refuses_a_model_directory_without_weights(tiny_model, tmp_path, capsys, no_loading):
    model = _weightless(tiny_model, tmp_path)
    _refused("multitask", "qlora", _train(model, tmp_path), tmp_path, capsys,
             f"--base_model_name: {model} holds no model weights (*.safetensors)")


def test_evaluation_refuses_a_model_directory_without_weights(tiny_model, tmp_path, capsys, no_weights):
    model = _weightless(tiny_model, tmp_path)
    _refused("summarization", "evaluate", _eval(model, tmp_path), tmp_path, capsys,
             f"--model_path: {model} holds no model weights (*.safetensors)")


TYPO = "runs/no-such-run-typo"  # relative, one slash: also the form of a hub id


def test_training_names_both_readings_of_a_mistyped_path(tmp_path, capsys, no_loading):
    assert not (ROOT / TYPO).exists()
    _refused("generation", "fft", _train(TYPO, tmp_path, "fft"), tmp_path, capsys,
             f"--base_model_name {TYPO} is neither a local directory nor a model available offline")


def test_evaluation_names_both_readings_of_a_mistyped_path(tmp_path, capsys, no_weights):
    _refused("summarization", "evaluate", _eval(TYPO, tmp_path), tmp_path, capsys,
             f"--model_path {TYPO} is neither a local directory nor a model available offline", "--model_path PATH")


# -------------------------------------------------------------------------------------------------------- 8. GGUF

@pytest.mark.parametrize("name,needle", [("missing.gguf", "no such GGUF file"), ("bad.gguf", "cannot read GGUF file")])
def test_gguf_errors_name_the_flag_of_training(name, needle, tmp_path, capsys):
    (tmp_path / "bad.gguf").write_text("not a GGUF file")
    _refused("summarization", "fft", _train(tmp_path / name, tmp_path, "fft"), tmp_path, capsys,
             f"--base_model_name: {needle}", tmp_path / name)


@pytest.mark.parametrize("name,needle", [("missing.gguf", "no such GGUF file"), ("bad.gguf", "cannot read GGUF file")])
def test_gguf_errors_name_the_flag_of_evaluation(name, needle, tmp_path, capsys):
    (tmp_path / "bad.gguf").write_text("not a GGUF file")
    _refused("summarization", "evaluate", _eval(tmp_path / name, tmp_path), tmp_path, capsys,
             f"--model_path: {needle}", tmp_path / name)


# ------------------------------------------------------------------------------------------ 9. --max_seq_length

def test_max_seq_length_beyond_the_context_is_refused(tiny_model, tmp_path, capsys, no_weights):
    context = read_json(tiny_model / "config.json")["max_position_embeddings"]
    _refused("summarization", "qlora", _train(tiny_model, tmp_path, max_seq_length=context + 1), tmp_path, capsys,
             f"--max_seq_length {context + 1} exceeds the model's context of {context} tokens")


# ------------------------------------------------------------------------------------------------ 10. library noise

@pytest.mark.slow
def test_a_qlora_run_prints_no_bitsandbytes_kernels_notice(tiny_model, tmp_path):
    argv = _train(tiny_model, tmp_path, max_steps=1, eval_strategy="no")
    done = subprocess.run([sys.executable, str(ROOT / "summarization" / "qlora_train.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
    assert "pip install kernels" not in done.stderr and "kernels-community" not in done.stderr
    for script in ("generation/evaluate.py", "multitask/evaluate.py"):  # these import bitsandbytes by another path
        shown = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                               timeout=300)
        assert shown.returncode == 0 and "kernels" not in shown.stderr, shown.stderr[-2000:]


# --------------------------------------------------------------------------------- 11. a damaged processed-data cache

def _arrow_files(out):
    return sorted((out / "processed_data" / "data").rglob("*.arrow"))


def _keep_only_the_cache(out):
    """The run's folder as if only the cache had been left: the next run trains again and reads the cache."""
    for entry in out.iterdir():
        if entry.name != "processed_data":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@pytest.mark.parametrize("damage", ["deleted", "truncated", "no_fingerprint"])
def test_a_damaged_processed_data_cache_is_rebuilt(damage, tiny_model, tmp_path, caplog):
    out = tmp_path / "out"
    argv = [str(a) for a in _train(tiny_model, tmp_path, "fft", save_processed_data=True, max_steps=1,
                                   eval_strategy="no")]
    assert load_script("translation", "fft").main(argv) == 0
    files = _arrow_files(out)
    assert files
    if damage == "deleted":
        for path in files:
            path.unlink()
    elif damage == "truncated":
        for path in files:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        (out / "processed_data" / "fingerprint.json").unlink()
    _keep_only_the_cache(out)
    with caplog.at_level("WARNING", logger="common"):
        assert load_script("translation", "fft").main(argv) == 0
    assert "damaged" in caplog.text and "rebuilding it" in caplog.text
    assert read_json(out / "run_config.json")["reused_processed_data"] is False
    assert _arrow_files(out) and (out / "processed_data" / "fingerprint.json").exists()
    _keep_only_the_cache(out)
    assert load_script("translation", "fft").main(argv) == 0  # the rebuilt cache is whole again: reused
    assert read_json(out / "run_config.json")["reused_processed_data"] is True

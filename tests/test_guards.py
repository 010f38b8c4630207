"""Guards: each test states one intended behaviour exactly, so that a change which breaks it fails here by name.

Covered: 4-bit double quantization and the asked compute dtype in the model that trains (and the one loaded for
inference); LoRA rank and alpha as given; the per-task eval loss as a shifted, token-weighted cross-entropy recomputed
here from the model's logits; --eval_samples sizing the eval set; the seeded sample of each data source; the study's
warm-up defaults; the git revision in run_config.json; pass@1 over the executed items; `overall` as the item-weighted
mean of the groups; left-padded batched generation equal to one prompt at a time; the cut at a stop token.
Only public paths: the task scripts' main(argv), the files a run writes, common.run_args.parse_args,
common.inference.generate and load_for_inference (imported inside the tests).
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict

import datasets
import pytest
import torch

from conftest import ROOT, SAMPLES, load_script, read_json, run_script

IGNORE = -100
LOSS_TOL = 1e-4  # a loss recomputed here vs the Trainer's (batched, padded): seen within 3e-5
SAMPLE_SIZE = 6  # conftest.base_args: --sample_size 6, --val_sample_size 3, --seed 0
SEED = 0


def _quant_layers(model) -> list[dict]:
    import bitsandbytes as bnb

    return [{"nested": m.weight.quant_state.nested, "quant_type": m.weight.quant_state.quant_type,
             "compute_dtype": m.compute_dtype}
            for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """Two one-step QLoRA runs; the model each one trains is inspected as Trainer.train receives it.

    multitask: the defaults (double quantization, r 8, alpha 16, every validation example evaluated, no warm-up
    given); translation: double quantization off, r 4, alpha 12, --eval_samples 1, no warm-up given.
    """
    import transformers

    original = transformers.Trainer.train
    seen: dict[str, list[dict]] = {}

    def train(self, *args, **kwargs):
        seen[str(self.args.output_dir)] = _quant_layers(self.model)
        return original(self, *args, **kwargs)

    root = tmp_path_factory.mktemp("guards")
    flags = dict(max_steps=1, eval_steps=1, save_processed_data=True, warmup_steps=None)
    out = {"multitask": root / "multitask", "translation": root / "translation"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformers.Trainer, "train", train)
        assert run_script("multitask", "qlora", tiny_model, out["multitask"], **flags) == 0
        assert run_script("translation", "qlora", tiny_model, out["translation"], eval_samples=1, lora_r=4,
                          lora_alpha=12, bnb_4bit_use_double_quant=False, **flags) == 0
    return {name: {"dir": path, "layers": seen[str(path)]} for name, path in out.items()}


def _processed(run_dir, split):
    return datasets.load_from_disk(str(run_dir / "processed_data" / "data"))[split]


@torch.no_grad()
def _example_losses(model, rows) -> list[tuple[str, float, int, float]]:
    """(task, summed next-token loss, trained tokens, unshifted summed loss) per example, from the logits."""
    import torch.nn.functional as F

    out = []
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        labels = torch.tensor(row["labels"])
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float()
        shifted = F.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="sum").item()
        unshifted = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum").item()
        out.append((row["task"], shifted, int((labels[1:] != IGNORE).sum()), unshifted))
    return out


def test_qlora_trains_on_double_quantized_nf4_with_the_asked_compute_dtype(runs):
    from common.modeling import load_for_inference

    for name, nested in (("multitask", True), ("translation", False)):  # default on; --..._double_quant False
        layers = runs[name]["layers"]
        assert len(layers) == 2 * 7  # 2 layers x 7 projections, all quantized
        assert all(layer == {"nested": nested, "quant_type": "nf4", "compute_dtype": torch.float32}
                   for layer in layers), (name, layers[0])
        config = read_json(runs[name]["dir"] / "run_config.json")["arguments"]["qlora"]
        assert config["bnb_4bit_use_double_quant"] is nested and config["bnb_4bit_compute_dtype"] == "float32"
    model, _, how = load_for_inference(str(runs["multitask"]["dir"]))  # loaded back as it was trained
    assert "4-bit" in how
    layers = _quant_layers(model)
    assert len(layers) == 2 * 7
    assert all(layer == {"nested": True, "quant_type": "nf4", "compute_dtype": torch.float32} for layer in layers)


def test_lora_rank_and_alpha_are_the_given_ones(runs):
    default = read_json(runs["multitask"]["dir"] / "adapter_config.json")
    assert (default["r"], default["lora_alpha"]) == (8, 16)  # the study's defaults
    given = read_json(runs["translation"]["dir"] / "adapter_config.json")
    assert (given["r"], given["lora_alpha"]) == (4, 12)  # --lora_r 4 --lora_alpha 12


def test_per_task_eval_loss_is_the_shifted_token_weighted_cross_entropy(runs):
    """Recomputed here from the trained model's logits on every validation example: the loss of predicting token t+1
    from tokens <= t, summed over each task's trained tokens and divided by their number."""
    from common.modeling import load_for_inference

    run = runs["multitask"]["dir"]
    model, _, _ = load_for_inference(str(run))
    validation = _processed(run, "validation")
    assert sum(read_json(run / "run_config.json")["counts"]["eval"].values()) == len(validation) == 18
    losses = _example_losses(model, validation)
    reported = read_json(run / "eval_results.json")
    for task in ("summarization", "generation", "translation"):
        mine = [(s, n, u) for t, s, n, u in losses if t == task]
        token_weighted = sum(s for s, _, _ in mine) / sum(n for _, n, _ in mine)
        per_example = sum(s / n for s, n, _ in mine) / len(mine)
        unshifted = sum(u for _, _, u in mine) / sum(n + 1 for _, n, _ in mine)
        # the alternatives differ from the intended value by more than the tolerance, so the check can fail
        assert abs(per_example - token_weighted) > 2 * LOSS_TOL and abs(unshifted - token_weighted) > 0.1
        assert reported[f"eval_{task}_loss"] == pytest.approx(token_weighted, abs=LOSS_TOL), task


def test_eval_samples_sets_the_eval_set_size(runs):
    run = runs["translation"]["dir"]
    config = read_json(run / "run_config.json")
    assert sum(config["counts"]["validation"].values()) == 6  # 3 pairs, both directions
    assert sum(config["counts"]["eval"].values()) == 1  # --eval_samples 1
    from common.modeling import load_for_inference

    model, _, _ = load_for_inference(str(run))
    losses = [s / n for _, s, n, _ in _example_losses(model, _processed(run, "validation"))]
    reported = read_json(run / "eval_results.json")["eval_translation_loss"]
    assert any(reported == pytest.approx(loss, abs=LOSS_TOL) for loss in losses)  # one example's, not a mean


def _source_ids(path) -> list:
    return datasets.load_dataset("json", data_files=str(path), split="train")["id"]


def test_each_source_is_sampled_by_a_seeded_shuffle(runs):
    train = _processed(runs["multitask"]["dir"], "train")
    found = defaultdict(set)
    for task, group, rid in zip(train["task"], train["language"], train["id"]):
        found[f"{task}/{group}"].add(rid.split(":", 1)[1])
    sources = {"java": SAMPLES / "code_to_text" / "java" / "train.jsonl",
               "python": SAMPLES / "code_to_text" / "python" / "train.jsonl",
               "pairs": SAMPLES / "code_to_code_trans" / "train.jsonl"}
    for key, ids in sorted(found.items()):
        source = sources[key.split("/")[1] if key.startswith(("summarization", "generation")) else "pairs"]
        table = datasets.load_dataset("json", data_files=str(source), split="train")
        expected = {str(i) for i in table.shuffle(seed=SEED).select(range(SAMPLE_SIZE))["id"]}
        first = {str(i) for i in table.select(range(SAMPLE_SIZE))["id"]}
        assert expected != first  # the check can tell a shuffle from the first rows
        assert ids == expected, key


@pytest.mark.parametrize("task,warmup", [("summarization", 1000), ("generation", 1000), ("translation", 100),
                                         ("multitask", 1000)])
def test_study_warmup_defaults(task, warmup, tiny_model, tmp_path):
    from common.run_args import parse_args

    from conftest import base_args

    argv = base_args(tiny_model, tmp_path, warmup_steps=None)
    assert parse_args(task, "qlora", argv).training.warmup_steps == warmup
    assert parse_args(task, "fft", argv + ["--warmup_steps", "7"]).training.warmup_steps == 7


def test_runs_record_the_warmup_they_used(runs):
    for name, warmup in (("multitask", 1000), ("translation", 100)):
        assert read_json(runs[name]["dir"] / "run_config.json")["arguments"]["training"]["warmup_steps"] == warmup


def test_run_config_records_the_git_revision(runs):
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except OSError:
        pytest.skip("git is not installed")
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    recorded = read_json(runs["multitask"]["dir"] / "run_config.json")["git_revision"]
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    assert recorded == head.stdout.strip() + ("-dirty" if dirty else "")


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pass_at_1_is_over_the_executed_items(tmp_path):
    """CoderEval-style file: two records have a test (one passes, one fails), one has none and is not executed."""
    records = [
        {"_id": "a1", "docstring": "Sum a list, ignoring None.",
         "code": "def total(xs):\n    return sum(x for x in xs if x is not None)",
         "test": "assert total([1, None, 2]) == 3\n"},
        {"_id": "a2", "docstring": "Upper-case a string.", "code": "def shout(s):\n    return s.upper()",
         "test": "assert shout('a') == 'A'\n"},
        {"_id": "a3", "docstring": "Negate a number.", "code": "def neg(x):\n    return -x"},
    ]
    answers = ["def total(xs):\n    return sum(x for x in xs if x is not None)", "def shout(s):\n    return s",
               "def neg(x):\n    return -x"]
    source = tmp_path / "CoderEval4Python.json"
    source.write_text(json.dumps({"RECORDS": records}))
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": f"python:{r['_id']}", "prediction": a}) + "\n"
                             for r, a in zip(records, answers)))
    out = tmp_path / "eval"
    assert load_script("generation", "evaluate").main([
        "--benchmark", "codereval", "--test_dataset", str(source), "--languages", "python", "--predictions_file",
        str(preds), "--output_dir", str(out), "--quality", "False"]) == 0
    scores = {r["id"]: r["scores"] for r in _lines(out / "predictions.jsonl")}
    assert scores["python:a1"]["pass@1"] == 1 and scores["python:a2"]["pass@1"] == 0
    assert "pass@1" not in scores["python:a3"]
    group = read_json(out / "metrics.json")["metrics"]["generation"]["python"]
    assert group["executed"] == 2 and group["n"] == 3
    assert group["pass@1"] == 0.5  # 1 passed / 2 executed (not / 3 items)


def test_overall_is_the_item_weighted_mean_of_the_groups(tmp_path):
    """One Java item answered exactly and three Python items answered wrongly: exact_match overall is 1/4, not the
    mean 1/2 of the groups; every other averaged metric is weighted by the groups' item counts too."""
    data = ["--summarization_dataset", str(SAMPLES / "code_to_text"), "--quality", "False"]
    evaluate = load_script("summarization", "evaluate").main
    chosen = {lang: [f"{lang}:{i}" for i in _source_ids(SAMPLES / "code_to_text" / lang / "test.jsonl")[:count]]
              for lang, count in (("java", 1), ("python", 3))}
    wrong = "SUMMARY: Does something else entirely. DONE"
    first = tmp_path / "first.jsonl"  # a file with predictions for these four items only: scores just them
    first.write_text("".join(json.dumps({"id": i, "prediction": wrong}) + "\n" for ids in chosen.values() for i in ids))
    assert evaluate(["--predictions_file", str(first), *data, "--output_dir", str(tmp_path / "first")]) == 0
    references = {r["id"]: r["reference"] for r in _lines(tmp_path / "first" / "predictions.jsonl")}
    assert sorted(references) == sorted(chosen["java"] + chosen["python"])
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "prediction": f"SUMMARY: {references[i]} DONE" if i in chosen["java"]
                                         else wrong}) + "\n" for i in references))
    out = tmp_path / "eval"
    assert evaluate(["--predictions_file", str(preds), *data, "--output_dir", str(out)]) == 0
    metrics = read_json(out / "metrics.json")["metrics"]["summarization"]
    assert (metrics["java"]["n"], metrics["python"]["n"], metrics["overall"]["n"]) == (1, 3, 4)
    assert (metrics["java"]["exact_match"], metrics["python"]["exact_match"]) == (1.0, 0.0)
    assert metrics["overall"]["exact_match"] == 0.25
    averaged = {k for k in set(metrics["java"]) & set(metrics["python"]) - {"n", "scored"}
                if not k.startswith("bertscore")}
    assert {"exact_match", "bleu", "chrf"} <= averaged
    for key in averaged:
        expected = (metrics["java"][key] * 1 + metrics["python"][key] * 3) / 4
        assert metrics["overall"][key] == pytest.approx(expected, abs=1e-12), key


@pytest.fixture(scope="module")
def base(tiny_model):
    """The tiny model as load_for_inference gives it, its weights redrawn (seeded, std 0.2) so that greedy text
    changes from token to token (the random init repeats one token), and four prompts of different lengths."""
    from common.modeling import load_for_inference

    model, tokenizer, _ = load_for_inference(str(tiny_model))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    texts = ["def add(a, b):", "public static int clamp(int value, int min, int max) { return value; }",
             "Summarize", "class Pair { private final Object first; private final Object second; }"]
    prompts = [tokenizer(t)["input_ids"] for t in texts]
    assert len({len(p) for p in prompts}) == len(prompts)  # all lengths differ: the batch needs padding
    return model, tokenizer, prompts


@torch.no_grad()
def _greedy(model, prompt: list[int], steps: int) -> list[int]:
    """Greedy continuation by repeated forward passes, no generate(): the reference for the tests below."""
    ids = list(prompt)
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(prompt):]


def test_batched_generation_equals_one_prompt_at_a_time(base):
    """Left padding: in a batch of prompts of four lengths each gets the text it gets alone, the greedy one."""
    from common.inference import generate

    model, tokenizer, prompts = base
    stop = [tokenizer.eos_token_id]
    expected = [tokenizer.decode(_greedy(model, p, 8), skip_special_tokens=True) for p in prompts]
    assert len(set(expected)) == len(expected)  # four different texts, so a mix-up would show
    alone = [generate(model, tokenizer, [p], stop, max_new_tokens=8, batch_size=1)[0] for p in prompts]
    assert alone == expected
    batched = generate(model, tokenizer, prompts, stop, max_new_tokens=8, batch_size=len(prompts))
    assert batched == expected


def test_generation_stops_at_a_stop_token(base):
    """The text ends before the first stop token (nothing of it or after it), while another prompt in the same
    batch, which never meets it, runs on to max_new_tokens."""
    from common.inference import generate

    model, tokenizer, prompts = base
    tokens = _greedy(model, prompts[1], 8)
    k = next(k for k in range(3, len(tokens)) if tokens[k] not in tokens[:k])  # a stop in mid-answer
    stop = tokens[k]
    assert stop not in tokenizer.all_special_ids  # kept, its text would show
    other = next(p for p in prompts if stop not in _greedy(model, p, 8))
    expected = [tokenizer.decode(tokens[:k], skip_special_tokens=True),
                tokenizer.decode(_greedy(model, other, 8), skip_special_tokens=True)]
    assert expected[0] and len(tokenizer.decode(tokens, skip_special_tokens=True)) > len(expected[0])
    assert generate(model, tokenizer, [prompts[1], other], [stop], max_new_tokens=8, batch_size=2) == expected

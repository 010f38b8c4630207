"""BERTScore and SIDE (common/embedding_metrics.py) on tiny models built here: a 12-layer BERT and a 2-layer MPNet."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from common import embedding_metrics as em

WORDS = (
    "the a of to and in is it for on with return returns value values list string java method class new get set "
    "true false null this that int from by sum array index name file read write number count check if empty add "
    "public static void private boolean else while"
).split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789(){};.,=+<>[]\"'")
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing", "##er", *CHARS]
MPNET_VOCAB = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *WORDS, "##s", "##ed", "##ing", *CHARS]

PREDS = [
    "returns the sum of the values",
    "",
    "get the name of the file",
    "   ",
    "check if the list is empty",
    "add a new value to the list",
    None,
    "read a number from the file and write it",
]
REFS = [
    "return the sum of values in the array",
    "returns the index",
    "",
    "returns the count",
    "returns true if the list is empty",
    "add the value",
    "set the name",
    "read the count",
]
CODES = [
    "public int sum(int[] values) { int s = 0; for (int v : values) s += v; return s; }",
    "public boolean isEmpty() { return count == 0; }",
    "private void add(int value) { list.add(value); }",
    "public static String name() { return this.name; }",
]
SUMMARIES = ["returns the sum of the values", "  check if the list is empty  ", "", "get the name"]


def _bert_dir(root, model_max_length):
    from transformers import BertConfig, BertModel, BertTokenizer

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(BERT_VOCAB)}, do_lower_case=True)
    tokenizer.save_pretrained(root)
    (root / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    config_path = root / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    if model_max_length is None:
        config.pop("model_max_length", None)
    else:
        config["model_max_length"] = model_max_length
    config_path.write_text(json.dumps(config))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32, num_hidden_layers=12, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, initializer_range=0.08)
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """Like the hub's bert-base-uncased: tokenizer_config.json says model_max_length 512."""
    return _bert_dir(tmp_path_factory.mktemp("bertscore") / "bert", 512)


def _mpnet_dir(root):
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    tokenizer = MPNetTokenizer(vocab={w: i for i, w in enumerate(MPNET_VOCAB)}, model_max_length=512)
    tokenizer.save_pretrained(root)
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(MPNET_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=514, pad_token_id=1, initializer_range=0.08)
    MPNetModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def mpnet_dir(tmp_path_factory):
    return _mpnet_dir(tmp_path_factory.mktemp("side") / "mpnet")


def _package(preds, refs, model_dir, num_layers=12):
    """bert_score.score called directly with the study's arguments (model_type a local path)."""
    from bert_score import score

    P, R, F = score(list(preds), list(refs), model_type=str(model_dir), num_layers=num_layers, batch_size=8, device="cpu")
    return [dict(zip(em.BERTSCORE_KEYS, map(float, v))) for v in zip(P, R, F)]


def _nonempty():
    pairs = [(p.strip(), r.strip()) for p, r in zip(PREDS, REFS) if p and p.strip() and r.strip()]
    return [p for p, _ in pairs], [r for _, r in pairs]


def _assert_matches(ours, expected):
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected):
        for key in em.BERTSCORE_KEYS:
            assert got[key] / em.SCALE == pytest.approx(want[key], abs=1e-6)


def test_bertscore_equals_package_on_nonempty_pairs(bert_dir):
    ours = em.bertscore(PREDS, REFS, bert_dir)
    assert [i for i, item in enumerate(ours) if item is None] == [1, 2, 3, 6]
    expected = _package(*_nonempty(), bert_dir)
    _assert_matches([item for item in ours if item is not None], expected)
    assert len({round(item["bertscore_f1"], 4) for item in ours if item}) == 4  # the tiny model tells pairs apart
    assert all(0 < item[key] <= 100 for item in ours if item for key in em.BERTSCORE_KEYS)


def test_bertscore_all_empty_loads_nothing(tmp_path):
    assert em.bertscore(["", " ", None], ["x", "", "y"], tmp_path / "absent") == [None, None, None]


def test_bertscore_honours_num_layers(bert_dir):
    preds, refs = _nonempty()
    at_12 = em.bertscore(preds, refs, bert_dir)
    at_4 = em.bertscore(preds, refs, bert_dir, num_layers=4)
    _assert_matches(at_4, _package(preds, refs, bert_dir, num_layers=4))
    assert max(abs(a["bertscore_f1"] - b["bertscore_f1"]) for a, b in zip(at_12, at_4)) > 1.0


def test_bertscore_without_tokenizer_max_length(tmp_path_factory, bert_dir):
    """transformers 5 saves such a tokenizer with model_max_length 1e30, which bert-score cannot pass to the fast
    tokenizer; the wrapper caps it at 512 and then gives what a tokenizer saying 512 gives (same weights)."""
    root = _bert_dir(tmp_path_factory.mktemp("bertscore-nomax") / "bert", None)
    preds, refs = _nonempty()
    long = " ".join(["value"] * 700)
    _assert_matches(em.bertscore([*preds, long], [*refs, "value"], root)[:-1], _package(preds, refs, bert_dir))


def test_bertscore_path_containing_t5(tmp_path, bert_dir):
    """bert-score loads any model_type containing "t5" as a T5 encoder; the wrapper goes through a symlink."""
    link = tmp_path / "bert_t5_copy"
    os.symlink(bert_dir, link)
    preds, refs = _nonempty()
    _assert_matches(em.bertscore(preds, refs, link), _package(preds, refs, bert_dir))


def test_bertscore_status(tmp_path, bert_dir):
    assert em.bertscore_status(bert_dir) == (True, "")
    for path in (None, tmp_path / "absent", tmp_path):
        ok, reason = em.bertscore_status(path)
        assert not ok and reason.startswith("BERTScore left out") and reason.endswith(".")
    ok, reason = em.bertscore_status(bert_dir, num_layers=13)
    assert not ok and "13" in reason


def _side_plain(code, summary, model_dir):
    """The study's compute_side_score for one item, written out."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    inputs = tokenizer([code, summary.strip()], return_tensors="pt", padding=True, truncation=True, max_length=512)
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    pooled = pooled / pooled.norm(dim=1, keepdim=True)
    return float(pooled[0] @ pooled[1])


def test_side_identical_texts_give_one(mpnet_dir):
    scores = em.side(CODES[:2] + ["returns the value"], CODES[:2] + ["  returns the value "], mpnet_dir)
    assert scores == pytest.approx([100.0] * 3, abs=1e-4)


def test_side_equals_plain_computation(mpnet_dir):
    codes = [*CODES, "public void loop() { " + "count = count + 1 ; " * 120 + "}"]  # over 512 tokens: truncated
    summaries = [*SUMMARIES, "loop"]
    ours = em.side(codes, summaries, mpnet_dir, batch_size=3)
    plain = [_side_plain(c, s, mpnet_dir) for c, s in zip(codes, summaries)]
    assert [v / em.SCALE for v in ours] == pytest.approx(plain, abs=1e-5)
    assert all(math.isfinite(v) and -100 <= v <= 100 for v in ours)
    assert max(ours) - min(ours) > 1  # the tiny model tells items apart; the empty summary is scored, not zeroed


def test_side_batch_padding_does_not_change_values(mpnet_dir):
    one_by_one = em.side(CODES, SUMMARIES, mpnet_dir, batch_size=1)
    batched = em.side(CODES, SUMMARIES, mpnet_dir, batch_size=len(CODES))
    assert batched == pytest.approx(one_by_one, abs=1e-4)


def test_side_status(tmp_path, mpnet_dir):
    assert em.side_status(mpnet_dir) == (True, "")
    (tmp_path / "config.json").write_text("{}")
    for path in ("", tmp_path / "absent", tmp_path):
        ok, reason = em.side_status(path)
        assert not ok and reason.startswith("SIDE left out") and reason.endswith(".")


def test_summarization_cli_reports_bertscore_and_side_or_says_why_not(bert_dir, mpnet_dir, tmp_path):
    """Through summarization/evaluate.py: per-item values equal the package's, the group value is the mean over the
    non-empty pairs, SIDE is Java only; without the flags both are left out with a note."""
    from conftest import load_script, read_json

    rows = [{"id": f"j{k}", "code": code, "reference_summary": ref}
            for k, (code, ref) in enumerate(zip(CODES, ["returns the sum", "check if empty", "add a value", "x"]))]
    data = tmp_path / "cs_codereval_eval_dataset_java_v2.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = ["return the sum of the values", "", "add the value", "get the name"]
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": f"java:j{k}", "prediction": a}) + "\n" for k, a in enumerate(answers)))
    evaluate = load_script("summarization", "evaluate").main
    out = tmp_path / "with"
    assert evaluate(["--test_dataset", str(data), "--predictions_file", str(preds), "--output_dir", str(out),
                     "--bertscore_model", str(bert_dir), "--side_model", str(mpnet_dir)]) == 0
    java = read_json(out / "metrics.json")["metrics"]["summarization"]["java"]
    items = [json.loads(line)["scores"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    refs = [r["reference_summary"] for r in rows]
    kept = [k for k, a in enumerate(answers) if a]
    package = [v["bertscore_f1"] for v in _package([answers[k] for k in kept], [refs[k] for k in kept], bert_dir)]
    assert "bertscore_f1" not in items[1]  # the empty prediction is left out, not scored 0
    for k, f in zip(kept, package):
        assert items[k]["bertscore_f1"] == pytest.approx(100 * f, abs=1e-4)
    assert java["bertscore_f1"] == pytest.approx(100 * sum(package) / len(package), abs=1e-4)
    side = em.side(CODES, answers, mpnet_dir)
    assert [it["side"] for it in items] == pytest.approx(side)
    assert java["side"] == pytest.approx(sum(side) / len(side))

    bare = tmp_path / "without"
    assert evaluate(["--test_dataset", str(data), "--predictions_file", str(preds), "--output_dir", str(bare)]) == 0
    report = read_json(bare / "metrics.json")
    assert not {"bertscore_f1", "side"} & set(report["metrics"]["summarization"]["java"])
    assert any("--bertscore_model" in n for n in report["notes"]) and any("--side_model" in n for n in report["notes"])

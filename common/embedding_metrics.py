"""Model-based summary metrics of the study: BERTScore and SIDE, from local model directories only.

BERTScore is computed by the `bert-score` package itself (pinned to 0.3.13, the study's version) with the study's settings:
the local copy of `bert-base-uncased` as the model, `num_layers=12`, `batch_size=8`, no idf weighting, no baseline
rescaling. As in the study, only pairs whose prediction and reference are both non-empty after `.strip()` are scored; the
others get `None` (they are left out of the mean, not counted as zero).

SIDE (Java only in the study) follows the study's summary-metrics script: for each item the list
`[code, summary]` goes through the checkpoint's tokenizer as one batch of two sequences (padding, truncation,
`max_length=512`), the last hidden states are mean-pooled over the attention mask, L2-normalised, and the item's value is
the cosine between the code and the summary embeddings. Summaries are stripped first (the script stripped every
prediction before all metrics); empty summaries are scored like any other text, not zeroed.

Both scores are reported on 0-100 (the libraries' values times 100), like the project's other similarity metrics; a SIDE
value is a cosine, so it can be below zero. Models run on the CPU by default, in eval mode under `torch.no_grad()`, and are
loaded with `local_files_only=True` (bert-score loads by path, which never touches the network).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence

SCALE = 100.0
BERTSCORE_KEYS = ("bertscore_precision", "bertscore_recall", "bertscore_f1")
STUDY_BERTSCORE_LAYERS = 12
STUDY_BERTSCORE_BATCH_SIZE = 8
SIDE_MAX_LENGTH = 512

_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "sentencepiece.bpe.model", "spiece.model")


# --------------------------------------------------------------------------------------------------------------- BERTScore
def bertscore_status(model_path: str | os.PathLike | None, num_layers: int = STUDY_BERTSCORE_LAYERS) -> tuple[bool, str]:
    """Cheap check (no weights loaded) that BERTScore can run: `(True, "")` or `(False, one-sentence reason)`."""
    try:
        import bert_score  # noqa: F401
    except Exception as exc:  # an import error from an incompatible install counts as absent
        return False, f"BERTScore left out: the bert-score package is not usable ({type(exc).__name__}: {exc})."
    ok, reason, config = _model_dir_status(model_path, "BERTScore")
    if not ok:
        return ok, reason
    layers = getattr(config, "num_hidden_layers", None)
    if layers is not None and not 0 <= num_layers <= layers:
        return False, f"BERTScore left out: num_layers={num_layers} but the model at {model_path} has {layers} layers."
    return True, ""


def bertscore(
    predictions: Sequence[str | None],
    references: Sequence[str | None],
    model_path: str | os.PathLike,
    num_layers: int = STUDY_BERTSCORE_LAYERS,
    batch_size: int = STUDY_BERTSCORE_BATCH_SIZE,
    device: str | None = None,
) -> list[dict[str, float] | None]:
    """Per-item BERTScore (0-100) as `{"bertscore_precision", "bertscore_recall", "bertscore_f1"}`, or `None` for a pair
    with an empty prediction or reference (after `.strip()`), which the study excluded from the mean."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    preds = [p.strip() if p else "" for p in predictions]
    refs = [r.strip() if r else "" for r in references]
    keep = [i for i, (p, r) in enumerate(zip(preds, refs)) if p and r]
    results: list[dict[str, float] | None] = [None] * len(preds)
    if not keep:
        return results
    scorer = _bert_scorer(str(model_path), num_layers, device or "cpu")
    precision, recall, f1 = scorer.score([preds[i] for i in keep], [refs[i] for i in keep], batch_size=batch_size)
    for j, i in enumerate(keep):
        values = (precision[j], recall[j], f1[j])
        results[i] = {key: SCALE * float(v) for key, v in zip(BERTSCORE_KEYS, values)}
    return results


@functools.lru_cache(maxsize=2)
def _bert_scorer(model_path: str, num_layers: int, device: str):
    """A `bert_score.BERTScorer` with the study's settings, loaded once per (model, layers, device)."""
    import shutil

    from bert_score import BERTScorer

    reference = _bert_score_model_ref(model_path)
    try:
        scorer = BERTScorer(
            model_type=reference,
            num_layers=num_layers,
            idf=False,
            rescale_with_baseline=False,
            device=device,
        )
    finally:  # the symlink (if any) is needed only while loading
        if reference != os.path.abspath(model_path):
            shutil.rmtree(os.path.dirname(reference), ignore_errors=True)
    # transformers 5 gives a tokenizer saved without `model_max_length` a length of 1e30, which bert-score passes to the
    # fast tokenizer as `max_length` (OverflowError). The study's transformers 4 read 512 for bert-base-uncased (the hub
    # copy's tokenizer_config.json says so): cap it at the model's position limit, which is 512 for BERT.
    limit = getattr(scorer._model.config, "max_position_embeddings", None)
    if limit and scorer._tokenizer.model_max_length > limit:
        scorer._tokenizer.model_max_length = limit
    return scorer


def _bert_score_model_ref(model_path: str) -> str:
    """An absolute path that bert-score will load with AutoModel: it treats any `model_type` containing "t5" as a T5
    encoder and one starting with "scibert" as a SciBERT download, so such a path is reached through a symlink."""
    path = os.path.abspath(model_path)
    if "t5" not in path:
        return path
    while True:
        link_dir = tempfile.mkdtemp(prefix="bertscore-model-")
        if "t5" not in link_dir:
            break
        os.rmdir(link_dir)
    link = os.path.join(link_dir, "model")
    os.symlink(path, link)
    return link


# -------------------------------------------------------------------------------------------------------------------- SIDE
def side_status(model_path: str | os.PathLike | None) -> tuple[bool, str]:
    """Cheap check (no weights loaded) that SIDE can run: `(True, "")` or `(False, one-sentence reason)`."""
    ok, reason, _ = _model_dir_status(model_path, "SIDE")
    return ok, reason


def side(
    codes: Sequence[str],
    summaries: Sequence[str | None],
    model_path: str | os.PathLike,
    batch_size: int = 16,
    device: str | None = None,
) -> list[float]:
    """Per-item SIDE score (0-100): the cosine between the mean-pooled embeddings of the code and of its summary.

    `batch_size` items (2 * batch_size sequences) are encoded at once; with `batch_size=1` the inputs are exactly the
    study's per-item `tokenizer([code, summary], padding=True, truncation=True, max_length=512)`. Right padding of a
    larger batch changes an item's value only by float rounding, since pooling is over the attention mask."""
    import torch
    import torch.nn.functional as F

    if len(codes) != len(summaries):
        raise ValueError(f"{len(codes)} codes but {len(summaries)} summaries")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = device or "cpu"
    tokenizer, model = _side_model(str(model_path), device)
    texts = [s.strip() if s else "" for s in summaries]
    scores: list[float] = []
    for start in range(0, len(codes), batch_size):
        batch = []
        for code, summary in zip(codes[start : start + batch_size], texts[start : start + batch_size]):
            batch += [code, summary]
        inputs = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=SIDE_MAX_LENGTH)
        inputs = inputs.to(device)
        with torch.no_grad():
            output = model(**inputs)
        embeddings = F.normalize(_mean_pooling(output[0], inputs["attention_mask"]), p=2, dim=1)
        code_emb, summary_emb = embeddings[0::2], embeddings[1::2]
        # sentence_transformers.util.pytorch_cos_sim, as the script used: normalise again, then the dot product
        cosine = (F.normalize(code_emb, p=2, dim=1) * F.normalize(summary_emb, p=2, dim=1)).sum(dim=1)
        scores += [SCALE * float(value) for value in cosine.cpu()]
    return scores


def _mean_pooling(token_embeddings, attention_mask):
    """The study's `mean_pooling`: average of the token embeddings where the attention mask is 1."""
    import torch

    mask = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
    return torch.sum(token_embeddings * mask, 1) / torch.clamp(mask.sum(1), min=1e-9)


@functools.lru_cache(maxsize=2)
def _side_model(model_path: str, device: str):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModel.from_pretrained(model_path, local_files_only=True).to(device)
    model.eval()
    return tokenizer, model


# ------------------------------------------------------------------------------------------------------------------ shared
def _model_dir_status(model_path, metric: str):
    """`(ok, reason, config)` for a local model directory: it must hold a readable config, tokenizer files and weights."""
    if not model_path:
        return False, f"{metric} left out: no model path was given.", None
    path = os.fspath(model_path)
    if not os.path.isdir(path):
        return False, f"{metric} left out: model path {path} is not a directory.", None
    if not os.path.isfile(os.path.join(path, "config.json")):
        return False, f"{metric} left out: {path} has no config.json, so it is not a model directory.", None
    if not any(os.path.isfile(os.path.join(path, name)) for name in _TOKENIZER_FILES):
        return False, f"{metric} left out: {path} has no tokenizer files.", None
    if not any(name.endswith(".safetensors") or name.endswith(".bin") for name in os.listdir(path)):
        return False, f"{metric} left out: {path} has no model weights (.safetensors or .bin).", None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        return False, f"{metric} left out: the config in {path} cannot be read ({type(exc).__name__}: {exc}).", None
    return True, "", config

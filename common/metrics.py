"""Evaluation metrics for generated docstrings and code, each computed by its reference library.

`text_scores` and `code_scores` return `(corpus, items)`: one dict of corpus-level values and one dict per
(prediction, reference) pair. An item's keys are also corpus keys, where they hold the mean over items except
`codebleu` and its components (pooled, as the library computes a corpus); the corpus adds pooled `corpus_bleu`,
`corpus_chrf` and the per-item mean `codebleu_mean`. BLEU-family and similarity scores are on 0-100 (the libraries' 0-1
values times 100); `exact_match` is a fraction (0 or 1 per item), compared after stripping surrounding whitespace.

Libraries, verified together: sacrebleu 2.6.0, rouge-score 0.1.2, nltk 3.10.4, codebleu 0.7.0 with tree-sitter
0.22.3, tree-sitter-python 0.21.0, tree-sitter-java 0.21.0 and tree-sitter-c-sharp 0.21.0 (the study's versions;
newer grammars break codebleu).

CodeBLEU caveat (codebleu 0.7.0, k4black/codebleu#59): the combined score uses `dataflow_match_score or 1`, so a
prediction that matches none of the reference's data-flows, or a reference without any, gets the full data-flow
weight. An empty prediction therefore scores codebleu 25 (all four components 0), and two empty strings score 50.
We report the library's values unchanged; read `codebleu` next to its components and `exact_match`.

CodeBLEU is computed through `common.codebleu_stable`: the library's data-flow code de-duplicates with Python sets,
so its value moves with PYTHONHASHSEED; there the de-duplication keeps first occurrences, and the value is the same
in every run (it equals the library's wherever the library's value does not depend on the seed).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import sacrebleu
from rouge_score import rouge_scorer

from common.codebleu_stable import calc_codebleu
from common.languages import LANGUAGES

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
CODEBLEU_KEYS = (
    "codebleu", "ngram_match_score", "weighted_ngram_match_score", "syntax_match_score", "dataflow_match_score"
)

# Logged by codebleu whenever the references have no data-flow (a one-line reference, an empty one): expected for
# per-item scores, and the value it warns about is documented above.
_DATAFLOW_WARNING = "There is no reference data-flows extracted"


def text_scores(predictions: list[str], references: list[str]) -> tuple[dict, list[dict]]:
    """BLEU, chrF, ROUGE-1/2/L (F-measure, stemmed), METEOR (when WordNet loads) and exact match.

    As the study reports them, `bleu` and `chrf` are means of sentence scores (sacrebleu's sentence_bleu and
    sentence_chrf with their defaults: 13a tokens, exp smoothing; chrF, not chrF++); `corpus_bleu` and `corpus_chrf`
    pool the library's corpus statistics instead. Every other corpus value is the mean of the items' values.
    """
    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    with_meteor = meteor_status()[0]
    items: list[dict] = []
    for pred, ref in zip(predictions, references):
        item = {
            "bleu": sacrebleu.sentence_bleu(pred, [ref]).score,
            "chrf": sacrebleu.sentence_chrf(pred, [ref]).score,
        }
        rouge = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        item.update({key: 100 * float(rouge[key].fmeasure) for key in ROUGE_KEYS})
        if with_meteor:
            item["meteor"] = 100 * _meteor(pred, ref)
        item["exact_match"] = _exact(pred, ref)
        items.append(item)
    corpus = {key: _mean(item[key] for item in items) for key in items[0]}
    corpus["corpus_bleu"] = sacrebleu.corpus_bleu(predictions, [references]).score
    corpus["corpus_chrf"] = sacrebleu.corpus_chrf(predictions, [references]).score
    return corpus, items


def code_scores(predictions: list[str], references: list[str], language: str) -> tuple[dict, list[dict]]:
    """CodeBLEU and its four components, BLEU and exact match; `language` is "python", "java" or "cs".

    Corpus `codebleu` (and components) is one codebleu call over all pairs, pooling its n-gram and data-flow
    statistics, as the study's scripts reported it; `codebleu_mean` is the mean of the per-item values,
    which the study's statistical tests use. `bleu` is the mean sentence BLEU, `corpus_bleu` the corpus BLEU. Empty
    predictions are scored as the library scores them (see the module's caveat).
    """
    lang = LANGUAGES[language].codebleu if language in LANGUAGES else None
    if lang is None:
        raise ValueError(f"language must be one of {sorted(LANGUAGES)}, got {language!r}")
    _check_pairs(predictions, references)
    with _quiet_codebleu():
        corpus = _scaled_codebleu(predictions, references, lang)
        items = [_scaled_codebleu([pred], [ref], lang) for pred, ref in zip(predictions, references)]
    for item, pred, ref in zip(items, predictions, references):
        item["bleu"] = sacrebleu.sentence_bleu(pred, [ref]).score
        item["exact_match"] = _exact(pred, ref)
    corpus["codebleu_mean"] = _mean(item["codebleu"] for item in items)
    corpus["bleu"] = _mean(item["bleu"] for item in items)
    corpus["corpus_bleu"] = sacrebleu.corpus_bleu(predictions, [references]).score
    corpus["exact_match"] = _mean(item["exact_match"] for item in items)
    return corpus, items


def bertscore_scores(model: str, answers: list[str], items: list[dict], each: list[dict], context,
                     where: str) -> dict:
    """BERTScore of summaries against their references, into `each`; group means over the non-empty pairs (the
    study's convention), with their count as `bertscore_pairs`."""
    from common import embedding_metrics as em

    values = em.bertscore(answers, [it["reference"] for it in items], model)
    for item, value in zip(each, values):
        item.update(value or {})
    scored = [v for v in values if v is not None]
    corpus = {"bertscore_pairs": len(scored)}
    if scored:
        corpus.update({k: sum(v[k] for v in scored) / len(scored) for k in em.BERTSCORE_KEYS})
    if len(scored) < len(values):
        context.note(f"{where}: bertscore over the {len(scored)} of {len(values)} items whose prediction and "
                     f"reference are non-empty (as the study computed it)")
    return corpus


def side_scores(model: str, answers: list[str], items: list[dict], each: list[dict]) -> dict:
    """SIDE of summaries against the code they summarize (the items' `source`), into `each`; the group mean."""
    from common import embedding_metrics as em

    values = em.side([it["source"] for it in items], answers, model)
    for item, value in zip(each, values):
        item["side"] = value
    return {"side": sum(values) / len(values)}


@functools.lru_cache(maxsize=1)
def meteor_status() -> tuple[bool, str]:
    """(True, "") when NLTK's WordNet loads offline, else (False, one sentence saying why and how to fix it).

    Never downloads: a missing corpus raises LookupError, an incomplete one (e.g. no `lexnames`) OSError. Cached,
    because loading WordNet takes seconds.
    """
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        problem = "is not in NLTK's data path"
    except OSError as exc:  # found but incomplete, e.g. no lexnames file
        problem = f"is incomplete ({exc})"
    else:
        return True, ""
    return False, (
        f"METEOR needs NLTK's WordNet data, which {problem}: unpack Debian's wordnet-base and wordnet-sense-index "
        "into $NLTK_DATA/corpora/wordnet with a lexnames file, or run nltk.download('wordnet') where a network is "
        "available, and set NLTK_DATA."
    )


def _meteor(prediction: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([reference.split()], prediction.split()))


def _scaled_codebleu(predictions: list[str], references: list[str], lang: str) -> dict[str, float]:
    scores = calc_codebleu(references, predictions, lang=lang)  # codebleu takes references first
    return {key: 100 * float(scores[key]) for key in CODEBLEU_KEYS}


@contextmanager
def _quiet_codebleu() -> Iterator[None]:
    """Drop codebleu's data-flow warning, and only it, for the duration of the block."""
    root = logging.getLogger()
    # codebleu logs through `logging.warning`, which calls basicConfig() when the root logger has no handler and so
    # would leave a stderr handler on it for the rest of the process; a temporary NullHandler prevents that.
    guard = None if root.handlers else logging.NullHandler()
    root.addFilter(_not_dataflow_warning)
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        root.removeFilter(_not_dataflow_warning)
        if guard is not None:
            root.removeHandler(guard)


def _not_dataflow_warning(record: logging.LogRecord) -> bool:
    return _DATAFLOW_WARNING not in record.getMessage()


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) == 0:
        raise ValueError("no predictions to score")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for name, texts in (("predictions", predictions), ("references", references)):
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise ValueError(f"{name}[{bad}] is {type(texts[bad]).__name__}, not str")


def _exact(prediction: str, reference: str) -> float:
    return float(prediction.strip() == reference.strip())


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)

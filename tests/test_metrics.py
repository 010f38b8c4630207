"""Metrics: every value is the reference library's own, scaled as documented, on fixed inputs."""

from __future__ import annotations

import logging
import math

import pytest
import sacrebleu
from codebleu import calc_codebleu
from rouge_score import rouge_scorer

from common import metrics

DOC_PREDS = [
    "Returns the arithmetic mean of the given values.",
    "  Clamp a value between a minimum and a maximum.\n",
    "",
    "Parses the configuration files and returns a dictionary",
]
DOC_REFS = [
    "Return the arithmetic mean of values.",
    "Clamp a value between a minimum and a maximum.",
    "Open a connection to the database.",
    "Parse a configuration file into a dict.",
]

CODE = {
    "python": (
        [
            "def mean(values):\n    total = sum(values)\n    return total / len(values)",
            "def clamp(x, lo, hi):\n    return max(lo, min(hi, x))",
        ],
        [
            "def mean(values):\n    n = len(values)\n    return sum(values) / n",
            "def clamp(value, low, high):\n    return max(low, min(high, value))",
        ],
    ),
    "java": (
        [
            "public int add(int a, int b) { int c = a + b; return c; }",
            "public static int clamp(int v, int lo, int hi) { return Math.max(lo, Math.min(hi, v)); }",
        ],
        [
            "public int add(int x, int y) { return x + y; }",
            "public static int clamp(int value, int min, int max) { return Math.max(min, Math.min(max, value)); }",
        ],
    ),
    "cs": (
        [
            "public int Add(int a, int b) { var c = a + b; return c; }",
            "public static int Clamp(int v, int lo, int hi) { return Math.Max(lo, Math.Min(hi, v)); }",
        ],
        [
            "public int Add(int x, int y) { return x + y; }",
            "public static int Clamp(int value, int min, int max) { return Math.Max(min, Math.Min(max, value)); }",
        ],
    ),
}
CODEBLEU_LANG = {"python": "python", "java": "java", "cs": "c_sharp"}


def _codebleu(preds: list[str], refs: list[str], language: str) -> dict[str, float]:
    scores = calc_codebleu(refs, preds, lang=CODEBLEU_LANG[language])
    return {key: 100 * scores[key] for key in metrics.CODEBLEU_KEYS}


def test_text_scores_are_the_libraries():
    corpus, items = metrics.text_scores(DOC_PREDS, DOC_REFS)

    assert corpus["corpus_bleu"] == pytest.approx(sacrebleu.corpus_bleu(DOC_PREDS, [DOC_REFS]).score)
    assert corpus["corpus_chrf"] == pytest.approx(sacrebleu.corpus_chrf(DOC_PREDS, [DOC_REFS]).score)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    assert len(items) == len(DOC_PREDS)
    for item, pred, ref in zip(items, DOC_PREDS, DOC_REFS):
        assert item["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score)
        assert item["chrf"] == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score)
        rouge = scorer.score(ref, pred)
        for key in metrics.ROUGE_KEYS:
            assert item[key] == pytest.approx(100 * rouge[key].fmeasure)
    # The stemmer must be on: "Returns"/"Return" and "Parses"/"Parse" match only once stemmed.
    plain = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)
    assert items[0]["rouge1"] > 100 * plain.score(DOC_REFS[0], DOC_PREDS[0])["rouge1"].fmeasure
    assert set(corpus) == set(items[0]) | {"corpus_bleu", "corpus_chrf"}
    assert all(math.isfinite(value) for item in [corpus, *items] for value in item.values())


def test_bleu_and_chrf_are_means_of_sentence_scores_as_the_study_reports():
    """The study averaged sacrebleu's sentence BLEU and sentence chrF; corpus statistics pool n-grams instead."""
    corpus, items = metrics.text_scores(DOC_PREDS, DOC_REFS)
    n = len(DOC_PREDS)
    assert corpus["bleu"] == pytest.approx(sum(sacrebleu.sentence_bleu(p, [r]).score
                                               for p, r in zip(DOC_PREDS, DOC_REFS)) / n)
    assert corpus["chrf"] == pytest.approx(sum(sacrebleu.sentence_chrf(p, [r]).score
                                               for p, r in zip(DOC_PREDS, DOC_REFS)) / n)
    for key in ("bleu", "chrf", *metrics.ROUGE_KEYS, "exact_match"):
        assert corpus[key] == pytest.approx(sum(item[key] for item in items) / n)
    assert corpus["bleu"] != pytest.approx(corpus["corpus_bleu"])
    assert corpus["chrf"] != pytest.approx(corpus["corpus_chrf"])


def test_exact_match_ignores_surrounding_whitespace_only():
    corpus, items = metrics.text_scores(["  a b c\n", "a  b c", "x"], ["a b c", "a b c", "y"])
    assert [item["exact_match"] for item in items] == [1.0, 0.0, 0.0]
    assert corpus["exact_match"] == pytest.approx(1 / 3)
    corpus, items = metrics.code_scores(["x = 1\n", "x = 2"], ["x = 1", "x = 1"], "python")
    assert [item["exact_match"] for item in items] == [1.0, 0.0]
    assert corpus["exact_match"] == 0.5


def test_meteor_present_iff_wordnet_loads():
    available, reason = metrics.meteor_status()
    corpus, items = metrics.text_scores(DOC_PREDS, DOC_REFS)
    assert ("meteor" in corpus) is available
    assert all(("meteor" in item) is available for item in items)
    if not available:
        assert "WordNet" in reason and "NLTK_DATA" in reason
        return
    assert reason == ""
    from nltk.translate.meteor_score import meteor_score

    for item, pred, ref in zip(items, DOC_PREDS, DOC_REFS):
        assert item["meteor"] == pytest.approx(100 * meteor_score([ref.split()], pred.split()))
    assert corpus["meteor"] == pytest.approx(sum(item["meteor"] for item in items) / len(items))


@pytest.mark.parametrize("language", sorted(CODE))
def test_code_scores_are_the_libraries(language):
    preds, refs = CODE[language]
    corpus, items = metrics.code_scores(preds, refs, language)

    expected = _codebleu(preds, refs, language)
    for key in metrics.CODEBLEU_KEYS:
        assert corpus[key] == pytest.approx(expected[key])
    assert corpus["corpus_bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    for item, pred, ref in zip(items, preds, refs):
        expected = _codebleu([pred], [ref], language)
        for key in metrics.CODEBLEU_KEYS:
            assert item[key] == pytest.approx(expected[key])
        assert item["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score)
    assert corpus["bleu"] == pytest.approx(sum(item["bleu"] for item in items) / len(items))
    assert corpus["codebleu_mean"] == pytest.approx(sum(item["codebleu"] for item in items) / len(items))
    assert corpus["codebleu_mean"] != pytest.approx(corpus["codebleu"])  # pooled corpus value differs
    assert set(items[0]) == {*metrics.CODEBLEU_KEYS, "bleu", "exact_match"}
    assert set(corpus) == set(items[0]) | {"codebleu_mean", "corpus_bleu"}
    assert 0 < corpus["codebleu"] < 100


@pytest.mark.parametrize("language", sorted(CODE))
def test_perfect_prediction_scores_100(language):
    refs = CODE[language][1]
    corpus, items = metrics.code_scores(refs, refs, language)
    for scores in (corpus, *items):
        assert scores["codebleu"] == pytest.approx(100)
        assert scores["bleu"] == pytest.approx(100)
        assert scores["exact_match"] == 1.0


def test_perfect_summary_scores_100():
    corpus, _ = metrics.text_scores(DOC_REFS, DOC_REFS)
    for key in ("bleu", "chrf", "corpus_bleu", "corpus_chrf", *metrics.ROUGE_KEYS):
        assert corpus[key] == pytest.approx(100)
    assert corpus["exact_match"] == 1.0


@pytest.mark.parametrize("language", sorted(CODE))
def test_empty_prediction_is_scored_by_the_library(language):
    preds, refs = CODE[language]
    corpus, items = metrics.code_scores(["", preds[1]], refs, language)
    empty = items[0]
    assert empty["bleu"] == 0 and empty["exact_match"] == 0
    assert empty == pytest.approx({**_codebleu([""], [refs[0]], language), "bleu": 0.0, "exact_match": 0.0})
    # codebleu 0.7.0 counts "no data-flow matched" as a full data-flow match (module docstring).
    assert empty["codebleu"] == pytest.approx(25)
    assert corpus["codebleu"] == pytest.approx(_codebleu(["", preds[1]], refs, language)["codebleu"])


def test_codebleu_warning_is_silenced_without_touching_logging(caplog):
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    with caplog.at_level(logging.WARNING):
        metrics.code_scores(["return 1"], ["return 2"], "python")  # no data-flow: codebleu warns
    assert "data-flow" not in caplog.text
    assert root.handlers == handlers and root.filters == filters


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.text_scores([], []),
        lambda: metrics.code_scores([], [], "python"),
        lambda: metrics.code_scores(["a"], ["a", "b"], "java"),
        lambda: metrics.text_scores(["a"], [None]),
        lambda: metrics.code_scores(["a"], ["a"], "c_sharp"),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()

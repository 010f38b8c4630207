"""Data loading, generation rows derived from code-to-text, sampling per source and local formats."""

from __future__ import annotations

import ast
import json

import datasets
import pytest

from common import code_parts, data
from common.args import data_arguments
from common.tasks import default_mixture, get
from conftest import SAMPLES

MIXTURE = ["summarization", "generation", "translation"]


def _args(**kw):
    kw.setdefault("summarization_dataset", str(SAMPLES / "code_to_text"))
    kw.setdefault("translation_dataset", str(SAMPLES / "code_to_code_trans"))
    return data_arguments(**kw)


PY = '''def mean(values):
    """Return the arithmetic mean. Raises on empty input.

    Args:
        values: numbers.
    """
    if not values:
        raise ValueError("empty")
    return sum(values) / len(values)'''

JAVA = '''/** Clamp a value. */
public static int clamp(int value, int min, int max) throws IllegalArgumentException {
    return Math.max(min, Math.min(max, value));
}'''


def test_first_sentence():
    assert code_parts.first_sentence("Return the mean. Raises on empty.\n\nMore.") == "Return the mean."
    assert code_parts.first_sentence("Parse a\n   header line.") == "Parse a header line."
    assert code_parts.first_sentence("No period here") == "No period here"


def test_python_signature_and_body_without_docstring():
    signature, body = code_parts.split_python_function(PY)
    assert signature == "def mean(values):"
    assert '"""' not in body and "Args:" not in body
    assert body.startswith("def mean(values):\n    if not values:")
    ast.parse(body)
    # a docstring-only body keeps a valid function
    sig, body = code_parts.split_python_function('def todo():\n    """Nothing yet."""\n')
    assert body == "def todo():\n    pass"


def test_python2_code_falls_back_to_regex():
    code = 'def greet(name):\n    """Say hello."""\n    print "hello", name\n'
    signature, body = code_parts.split_python_function(code)
    assert signature == "def greet(name):"
    assert "Say hello" not in body and 'print "hello", name' in body


def test_java_signature_and_comment_removed():
    signature, body = code_parts.split_java_method(JAVA)
    assert signature == "public static int clamp(int value, int min, int max) throws IllegalArgumentException"
    assert body.startswith("public static int clamp") and "/**" not in body


def test_summarization_python_inputs_have_no_docstring_by_default():
    rows = get("summarization").rows(_args(), "python", "train", -1, 42)
    assert len(rows) == 40
    for row in rows:
        assert row["reference"] and row["reference"].split()[0] not in ('"""',)
        assert row["reference"] not in row["source"]
    leaked = get("summarization").rows(_args(remove_docstring=False), "python", "train", -1, 42)
    assert sum(r["reference"].splitlines()[0] in r["source"] for r in leaked) == 40


def test_generation_rows_derived_from_code_to_text():
    rows = get("generation").rows(_args(), "python", "validation", -1, 42)
    assert len(rows) == 12
    for row in rows:
        assert row["summary"].endswith(".")
        assert row["signature"].startswith(("def ", "async def "))
        assert row["reference"].startswith(row["signature"].split("(")[0])
        ast.parse(row["reference"])
    java = get("generation").rows(_args(), "java", "validation", -1, 42)
    assert len(java) == 12 and all("{" not in r["signature"] for r in java)


def test_generation_from_input_output_columns(tmp_path):
    folder = tmp_path / "gen" / "python"
    folder.mkdir(parents=True)
    rows = [{"input": "Summary: Add two numbers.\nSignature: def add(a, b):", "output": "def add(a, b):\n    return a + b"}]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = get("generation").rows(_args(generation_dataset=str(tmp_path / "gen")), "python", "train", -1, 0)
    assert out[0]["summary"] == "Add two numbers." and out[0]["signature"] == "def add(a, b):"
    assert out[0]["reference"] == rows[0]["output"] and out[0]["id"] == "python:0"


def test_sample_size_applies_per_source():
    split = data.build_split(MIXTURE, _args(sample_size=5), "train", seed=1, mix=True)
    assert data.count_rows(split) == {
        "generation/java": 5, "generation/python": 5, "summarization/java": 5, "summarization/python": 5,
        "translation/cs-java": 5, "translation/java-cs": 5}
    # the same five pairs serve both directions, and the shuffle is seeded
    ids = lambda d: sorted(i.split(":")[1] for i, l in zip(split["id"], split["language"]) if l == d)  # noqa: E731
    assert ids("java-cs") == ids("cs-java")
    again = data.build_split(MIXTURE, _args(sample_size=5), "train", seed=1, mix=True)
    assert again["id"] == split["id"]
    other = data.build_split(MIXTURE, _args(sample_size=5), "train", seed=2, mix=True)
    assert other["id"] != split["id"]


def test_the_default_mixture_is_the_study_three():
    assert default_mixture() == MIXTURE


@pytest.mark.parametrize("n,expected", [
    (30, {"generation/java": 5, "generation/python": 5, "summarization/java": 5, "summarization/python": 5,
          "translation/cs-java": 5, "translation/java-cs": 5}),
    (4, {"generation/java": 1, "generation/python": 1, "summarization/java": 1, "translation/cs-java": 1}),
    (40, {"generation/java": 7, "generation/python": 7, "summarization/java": 7, "summarization/python": 6,
          "translation/cs-java": 7, "translation/java-cs": 6}),
])
def test_even_subset_over_tasks_and_their_languages(n, expected):
    split = data.build_split(MIXTURE, _args(), "validation", seed=0, mix=True)  # 12 per task and group
    subset = data.even_subset(split, n, seed=0)
    assert data.count_rows(subset) == expected
    assert data.even_subset(split, n, seed=0)["id"] == subset["id"]  # seeded
    assert data.even_subset(split, n, seed=1)["id"] != subset["id"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "save_to_disk", "hub_snapshot"])
def test_local_formats(fmt, tmp_path):
    pairs = datasets.load_dataset("json", data_files=str(SAMPLES / "code_to_code_trans" / "validation.jsonl"),
                                  split="train")
    root = tmp_path / "trans"
    if fmt == "save_to_disk":
        datasets.DatasetDict({"validation": pairs}).save_to_disk(str(root))
    elif fmt == "hub_snapshot":  # sharded parquet files as a hub download lays them out
        (root / "data").mkdir(parents=True)
        pairs.select(range(5)).to_parquet(str(root / "data" / "validation-00000-of-00002.parquet"))
        pairs.select(range(5, 12)).to_parquet(str(root / "data" / "validation-00001-of-00002.parquet"))
    else:
        root.mkdir()
        getattr(pairs, f"to_{fmt}")(str(root / f"validation.{fmt}"))
    rows = get("translation").rows(_args(translation_dataset=str(root)), "cs-java", "validation", -1, 0)
    assert len(rows) == 12 and rows[0]["source"] == pairs[0]["cs"].strip()

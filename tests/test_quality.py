"""Code-quality measurements agree with lizard, radon and pylint called directly on the same code."""

from __future__ import annotations

from pathlib import Path

import pytest
from lizard import analyze_file
from pylint.lint import Run
from pylint.reporters import CollectingReporter
from radon.metrics import mi_visit

from common.quality import PYLINT_CATEGORIES, PYLINT_DISABLE, WRAPPER, measure_quality, summarize_quality

TWO_IFS = '''def sign(x):
    """Sign of x."""
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0
'''
SLOPPY = '''def load(path):
    unused = 42
    try:
        return open(path).read()
    except:
        return None


def helper(a, b):
    return a + b
'''
BROKEN = "def broken(x):\n    if x >\n        return 1\n"
NO_FUNCTION = "VALUE = 1\nprint(VALUE)\n"
PYTHON = [TWO_IFS, SLOPPY, BROKEN, NO_FUNCTION]

JAVA_OK = "public int sign(int x) {\n    if (x > 0) { return 1; }\n    if (x < 0) { return -1; }\n    return 0;\n}"
JAVA_UNBALANCED = "public int sign(int x) {\n    if (x > 0) { return 1;\n    return 0;\n}"
CS_OK = "public static int Sign(int x)\n{\n    if (x > 0) return 1;\n    if (x < 0) return -1;\n    return 0;\n}"
CS_UNBALANCED = "public static int Sign(int x)\n{\n    if (x > 0) { return 1;\n    return 0;\n}"


@pytest.fixture(scope="module")
def python_items(tmp_path_factory) -> list[dict]:
    # A user rc file that silences everything must not change the results.
    rc = tmp_path_factory.mktemp("rc") / "pylintrc"
    rc.write_text("[MESSAGES CONTROL]\ndisable=all\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYLINTRC", str(rc))
        return measure_quality(PYTHON, "python")


def pylint_direct(code: str, directory: Path) -> list:
    """Pylint's own messages, in-process, with the module's fixed options."""
    path = directory / "snippet.py"
    path.write_text(code)
    reporter = CollectingReporter()
    Run(["--rcfile=/dev/null", "--score=n", "--persistent=n", f"--disable={','.join(PYLINT_DISABLE)}", str(path)],
        reporter=reporter, exit=False)
    return reporter.messages


def lizard_numbers(code: str, filename: str) -> tuple[list[int], int, int]:
    result = analyze_file.analyze_source_code(filename, code)
    return [function.cyclomatic_complexity for function in result.function_list], result.nloc, result.token_count


def test_python_matches_lizard_and_radon(python_items):
    assert [item["parses"] for item in python_items] == [True, True, False, True]
    for code, item in zip(PYTHON, python_items):
        ccns, nloc, tokens = lizard_numbers(code, "x.py")
        assert item["ccn"] == (sum(ccns) / len(ccns) if ccns else None)
        assert item["ccn_max"] == (max(ccns) if ccns else None)
        assert (item["nloc"], item["tokens"]) == (nloc, tokens)
        expected_mi = mi_visit(code, multi=True) if item["parses"] else None
        assert item["maintainability_index"] == pytest.approx(expected_mi)
    assert python_items[0]["ccn"] == 3 and python_items[0]["ccn_max"] == 3
    assert python_items[1]["ccn"] == 1.5 and python_items[1]["ccn_max"] == 2  # try/except adds one
    assert python_items[3]["ccn"] is None and python_items[3]["nloc"] == 2


def test_python_matches_pylint(python_items, tmp_path):
    messages = pylint_direct(SLOPPY, tmp_path)
    assert {"unused-variable", "bare-except"} <= {message.symbol for message in messages}
    item = python_items[1]
    for category in PYLINT_CATEGORIES:
        assert item[f"pylint_{category}"] == sum(message.category == category for message in messages), category
    assert item["pylint_warning"] >= 2
    assert sum(item[f"pylint_{category}"] for category in PYLINT_CATEGORIES) == len(messages)
    # The documented function has nothing to report; in particular no invalid-name for the temp file's module name.
    assert [python_items[0][f"pylint_{category}"] for category in PYLINT_CATEGORIES] == [0, 0, 0, 0]


def test_broken_python_has_lizard_numbers_but_no_pylint_or_mi(python_items):
    broken = python_items[2]
    assert broken["parses"] is False and broken["nloc"] > 0 and broken["tokens"] > 0
    assert broken["maintainability_index"] is None
    assert all(broken[f"pylint_{category}"] is None for category in PYLINT_CATEGORIES)


@pytest.mark.parametrize(
    "language, ok, unbalanced", [("java", JAVA_OK, JAVA_UNBALANCED), ("cs", CS_OK, CS_UNBALANCED)], ids=["java", "cs"]
)
def test_methods_are_wrapped_and_parsed(language, ok, unbalanced):
    good, bad = measure_quality([ok, unbalanced], language)
    assert good["parses"] is True and bad["parses"] is False
    ccns, _, _ = lizard_numbers(WRAPPER % ok, f"x.{language}")
    _, nloc, tokens = lizard_numbers(ok, f"x.{language}")
    assert good["ccn"] == ccns[0] == 3 and good["ccn_max"] == 3
    assert (good["nloc"], good["tokens"]) == (nloc, tokens)
    assert "pylint_error" not in good and "maintainability_index" not in good


def test_empty_input_and_bad_language():
    assert measure_quality([], "python") == []
    with pytest.raises(ValueError):
        measure_quality(["x = 1"], "rust")


def test_summarize_python():
    items = [
        {"parses": True, "ccn": 2.0, "ccn_max": 3, "nloc": 10, "tokens": 50, "maintainability_index": 80.0,
         "pylint_error": 1, "pylint_warning": 2, "pylint_convention": 0, "pylint_refactor": 1},
        {"parses": True, "ccn": None, "ccn_max": None, "nloc": 2, "tokens": 6, "maintainability_index": 100.0,
         "pylint_error": 0, "pylint_warning": 0, "pylint_convention": 3, "pylint_refactor": 0},
        {"parses": False, "ccn": 4.0, "ccn_max": 5, "nloc": 3, "tokens": 10, "maintainability_index": None,
         "pylint_error": None, "pylint_warning": None, "pylint_convention": None, "pylint_refactor": None},
    ]
    summary = summarize_quality(items, "python")
    assert summary == {
        "n": 3, "parse_rate": pytest.approx(2 / 3), "ccn_mean": 3.0, "ccn_max": 5, "nloc_mean": 5.0,
        "tokens_mean": 22.0, "pylint_items": 2,
        "pylint_error": 1, "pylint_error_mean": 0.5, "pylint_warning": 2, "pylint_warning_mean": 1.0,
        "pylint_convention": 3, "pylint_convention_mean": 1.5, "pylint_refactor": 1, "pylint_refactor_mean": 0.5,
        "maintainability_index_mean": 90.0,
    }


def test_summarize_java_and_empty():
    items = measure_quality([JAVA_OK, JAVA_UNBALANCED], "java")
    summary = summarize_quality(items, "java")
    assert summary["parse_rate"] == 0.5 and summary["n"] == 2
    assert summary["ccn_mean"] == pytest.approx((items[0]["ccn"] + items[1]["ccn"]) / 2)
    assert not any(key.startswith(("pylint", "maintainability")) for key in summary)
    assert summarize_quality([], "python") == {
        "n": 0, "parse_rate": None, "ccn_mean": None, "ccn_max": None, "nloc_mean": None, "tokens_mean": None,
        "pylint_items": 0, "pylint_error": 0, "pylint_error_mean": None, "pylint_warning": 0,
        "pylint_warning_mean": None, "pylint_convention": 0, "pylint_convention_mean": None, "pylint_refactor": 0,
        "pylint_refactor_mean": None, "maintainability_index_mean": None,
    }


def test_empty_answer_does_not_count_as_parsing():
    for language in ("python", "java", "cs"):
        assert [i["parses"] for i in measure_quality(["", "  \n"], language)] == [False, False]


def test_java_answer_with_imports_parses():
    code = "import java.util.*;\n\npublic int add(int a, int b) {\n    return a + b;\n}"
    assert measure_quality([code], "java")[0]["parses"] is True

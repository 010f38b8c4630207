"""Code-quality measurements of generated code (Python, Java, C#), as the study took them.

`measure_quality(codes, language)` returns one dict per item:

- `parses`: Python via `ast.parse`; Java/C# via tree-sitter on the item wrapped in a class (the outputs are methods,
  which are not a compilation unit on their own), with no ERROR or MISSING node; an empty answer does not parse.
- `ccn`, `ccn_max`: lizard's cyclomatic complexity, mean and max over the functions lizard finds in the item
  (Java/C#: in the wrapped item); None when it finds none.
- `nloc`, `tokens`: lizard's lines of code and token count of the item's own text (a wrapper would only add a
  constant).
- Python only: `pylint_error`, `pylint_warning`, `pylint_convention`, `pylint_refactor` (pylint message counts by
  category, fatal counted as error) and `maintainability_index` (radon `mi_visit`, multi=True); None for an item that
  does not parse, where pylint would only report the syntax error.

`summarize_quality(items, language)` aggregates these for metrics.json (keys documented there).

Nothing here executes generated code: lizard and tree-sitter only tokenize/parse it, radon and pylint (run in a
subprocess) read its AST.
"""

from __future__ import annotations

import ast
import re
import functools
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from statistics import fmean

from lizard import analyze_file
from radon.metrics import mi_visit
from tree_sitter import Language, Parser

LANGUAGES = ("python", "java", "cs")
_EXTENSIONS = {"python": "py", "java": "java", "cs": "cs"}
# The study wrapped Java methods in a class before analysis; C# methods need the same to be a compilation unit.
WRAPPER = "public class Wrapper {\n%s\n}\n"
PYLINT_CATEGORIES = ("error", "warning", "convention", "refactor")
# Checks that judge the temp file or the whole run rather than the generated code: the module docstring and file
# endings belong to the file we write the snippet into; duplicate-code and cyclic-import compare items with each
# other; import-error only says whether a package happens to be installed here.
PYLINT_DISABLE = (
    "missing-module-docstring", "missing-final-newline", "trailing-newlines",
    "duplicate-code", "cyclic-import", "import-error",
)
# Pylint takes ~1.5 s to start and ~25 ms per typical item; a hung run should fail loudly, not stall an evaluation.
PYLINT_TIMEOUT_S = (120.0, 1.0)  # base, per file


def measure_quality(codes: list[str], language: str) -> list[dict]:
    """Quality measurements of each code item; see the module docstring for the keys."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    items = [_measure_one(code, language) for code in codes]
    if language == "python":
        counts = _pylint_counts([code if item["parses"] else None for code, item in zip(codes, items)])
        for item, count in zip(items, counts):
            item.update({f"pylint_{cat}": (None if count is None else count[cat]) for cat in PYLINT_CATEGORIES})
    return items


def _measure_one(code: str, language: str) -> dict:
    if language == "python":
        parses = _python_parses(code)
        analysed = code
    else:
        # imports/usings must stay outside the class the method is wrapped in
        head = re.match(r"(?:\s*(?:(?:import|package|using)\b[^\n]*|//[^\n]*)\n)*", code).group(0)
        analysed = head + WRAPPER % code[len(head):]
        parses = not _parser(language).parse(analysed.encode("utf-8", "surrogatepass")).root_node.has_error
    parses = parses and bool(code.strip())  # an empty answer is no code, although it parses
    filename = f"item.{_EXTENSIONS[language]}"  # lizard picks its language reader by extension
    analysis = analyze_file.analyze_source_code(filename, analysed)
    ccns = [function.cyclomatic_complexity for function in analysis.function_list]
    # Lines and tokens of the item's own text, so they do not include the wrapper's constant share.
    whole = analysis if language == "python" else analyze_file.analyze_source_code(filename, code)
    item = {
        "parses": parses,
        "ccn": fmean(ccns) if ccns else None,
        "ccn_max": max(ccns) if ccns else None,
        "nloc": whole.nloc,
        "tokens": whole.token_count,
    }
    if language == "python":
        item["maintainability_index"] = float(mi_visit(code, multi=True)) if parses else None
    return item


def _python_parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes: still valid code
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: null bytes
        return False
    return True


@functools.cache
def _parser(language: str) -> Parser:
    if language == "java":
        import tree_sitter_java as grammar
    else:
        import tree_sitter_c_sharp as grammar
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # older grammar wheels hand over an int pointer
        return Parser(Language(grammar.language()))


def _pylint_counts(codes: list[str | None]) -> list[dict[str, int] | None]:
    """Pylint message counts by category per item, in one pylint run (its start-up dominates); None items skipped."""
    if all(code is None for code in codes):
        return [None] * len(codes)
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        names = {}
        for index, code in enumerate(codes):
            if code is not None:
                name = f"item_{index:06d}.py"  # a valid module name, so invalid-name never fires for the file
                Path(tmp, name).write_text(code, encoding="utf-8")
                names[name] = index
        messages = _run_pylint(Path(tmp), sorted(names))
    counts = [None if code is None else dict.fromkeys(PYLINT_CATEGORIES, 0) for code in codes]
    for message in messages:
        category = "error" if message["type"] == "fatal" else message["type"]
        index = names.get(Path(message["path"]).name)
        if index is not None and category in PYLINT_CATEGORIES:  # "info" messages are not quality findings
            counts[index][category] += 1
    return counts


def _run_pylint(cwd: Path, files: list[str]) -> list[dict]:
    # A fixed configuration: no rc file, no settings from the environment or cwd, no stats in the user's cache.
    # One process (--jobs=1): parallel jobs were slower on typical batches.
    command = [
        sys.executable, "-m", "pylint", "--rcfile=/dev/null", "--output-format=json", "--score=n", "--persistent=n",
        "--jobs=1", f"--disable={','.join(PYLINT_DISABLE)}", *files,
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYLINT")}
    env["PYLINTHOME"] = str(cwd / ".pylint.d")
    base_s, per_file_s = PYLINT_TIMEOUT_S
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=base_s + per_file_s * len(files),
        check=False,
    )
    # The exit status is a bit mask of the message categories found; bit 32 means pylint itself failed (usage).
    try:
        messages = json.loads(result.stdout)
    except json.JSONDecodeError:
        messages = None
    if result.returncode & 32 or not isinstance(messages, list):
        raise RuntimeError(f"pylint failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return messages


def summarize_quality(items: list[dict], language: str) -> dict:
    """Aggregate of `measure_quality` items for metrics.json.

    - `n`: number of items; `parse_rate`: fraction that parse.
    - `ccn_mean`: mean over items of their mean function CCN; `ccn_max`: largest function CCN of all items
      (both over items where lizard found a function).
    - `nloc_mean`, `tokens_mean`: means over items.
    - Python only: `pylint_items` (items linted, i.e. those that parse); `pylint_<category>`: total messages of that
      category over those items; `pylint_<category>_mean`: the same per linted item; `maintainability_index_mean`:
      mean over items that parse.
    A mean over no values is None.
    """
    summary = {
        "n": len(items),
        "parse_rate": _mean([float(item["parses"]) for item in items]),
        "ccn_mean": _mean(_present(items, "ccn")),
        "ccn_max": max(_present(items, "ccn_max"), default=None),
        "nloc_mean": _mean(_present(items, "nloc")),
        "tokens_mean": _mean(_present(items, "tokens")),
    }
    if language == "python":
        summary["pylint_items"] = len(_present(items, "pylint_error"))
        for category in PYLINT_CATEGORIES:
            counts = _present(items, f"pylint_{category}")
            summary[f"pylint_{category}"] = sum(counts)
            summary[f"pylint_{category}_mean"] = _mean(counts)
        summary["maintainability_index_mean"] = _mean(_present(items, "maintainability_index"))
    return summary


def _present(items: list[dict], key: str) -> list:
    return [item[key] for item in items if item.get(key) is not None]


def _mean(values: list) -> float | None:
    return float(fmean(values)) if values else None

"""Code-quality measurements of generated code (Python, Java, C#), taken as the study took them.

`measure_quality(codes, language, *, reformat=False, pmd=None)` returns one dict per item. The study's columns (the
names of its per-instance CSVs, lower-cased):

- `detection_rate`: 1 when lizard finds at least one function in the item, else 0.
- `cyclomatic_complexity`, `lines_of_code`, `token_count`: lizard's CCN, NLOC and token count SUMMED over the
  functions lizard finds in the item (the function rows of `lizard <file>`); all 0 when it finds none. Lizard reads
  the item's text unwrapped (a Java/C# method on its own), with its language chosen by the file extension, as the
  study ran it. Each function counts once: the study's parser also counted the functions repeated in lizard's
  "!!!! Warnings" block, so its figures exceed these by the values of the functions over lizard's default thresholds
  (CCN > 15, length > 1000, NLOC > 1000000, parameters > 100); `lizard_warnings` counts those functions.
- Python only: `pylint_error`, `pylint_warning`, `pylint_convention`, `pylint_refactor`: pylint's messages by the
  first letter of their id (E, W, C, R; fatal and info are not counted), default configuration, nothing disabled,
  one file per item (linted in one pylint run over all items, with the two checks that compare files with each
  other, duplicate-code and cyclic-import, off: they never fire on a file linted alone). The file is named like the
  study's (`<24 hex digits>.py`, a module name that starts with a digit) and holds the item's text as given, so the
  same file-level conventions fire: invalid-name for the module name and missing-module-docstring always,
  missing-final-newline when the text does not end with a newline (the study's outputs were stripped) -- the study's
  minimum Convention count over parseable items is 3. An item that does not parse gives pylint's single
  syntax-error: 1, 0, 0, 0.
- Java with a PMD installation (`pmd`): `pmd_bestpractices`, `pmd_codestyle`, `pmd_design`, `pmd_errorprone`,
  `pmd_multithreading`, `pmd_performance`: the violations PMD reports for the item with the rules of that category
  (`pmd check -R category/java/<category>.xml -f text`, the report lines containing ":\\t"), on the item wrapped as
  the study wrapped it: `import java.util.*;`, a blank line, `public class Generated_<id> {` (reformatted
  items: `Translation<i>`), four spaces and the item, `}`. An item PMD cannot parse has 0 everywhere. Without `pmd` these
  keys are absent.

With `reformat=True` (the study's Java<->C# outputs) the tools see the item reformatted as the study's `format_code` did before
its static analysis (see `reformat_like_study`); `parses` and `maintainability_index` still judge the text as given.

Further measures of our own:

- `parses`: the item as given is syntactically valid: Python via `ast.parse`; Java/C# via tree-sitter on the item
  wrapped in a class (methods are not a compilation unit on their own), with no ERROR or MISSING node. An empty
  answer does not parse.
- `functions`: the number of functions lizard finds; `ccn_max`: the largest function CCN (None when none);
  `lizard_warnings`: the number of those functions over lizard's default warning thresholds (see above).
- Python only: `maintainability_index`: radon's `mi_visit(code, multi=True)` (0-100); None when the item does not
  parse.

`summarize_quality(items, language)` aggregates these for metrics.json:

- `n`: the number of items; `parse_rate`: the fraction that parse.
- For each study column present (`detection_rate`, `cyclomatic_complexity`, `lines_of_code`, `token_count`,
  `pylint_*`, `pmd_*`): `<column>`, the SUM over items (as the study's published figures), and `<column>_mean`, the
  mean per item (so `detection_rate_mean` is the study's detection rate, a fraction).
- `functions`, `lizard_warnings`: sums over items; `ccn_max`: the largest function CCN of all items.
- Python only: `maintainability_index_mean`: the mean over the items that parse.
A mean over no values is None.

Nothing here executes generated code: lizard, tree-sitter, radon, pylint (in a subprocess) and PMD (a Java
subprocess) only read it.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import warnings
from statistics import fmean

import lizard
from lizard import analyze_file
from radon.metrics import mi_visit
from tree_sitter import Language, Parser

from common.languages import LANGUAGES, grammar
from common.linters import PMD_KEYS, PYLINT_KEYS, pmd_command, pmd_counts, pmd_source, pylint_counts

LIZARD_KEYS = ("detection_rate", "cyclomatic_complexity", "lines_of_code", "token_count")
STUDY_KEYS = LIZARD_KEYS + PYLINT_KEYS + PMD_KEYS

# Only for parsing: a method is not a compilation unit on its own (PMD gets the study's own wrapper, `_pmd_source`).
WRAPPER = "public class Wrapper {\n%s\n}\n"


def measure_quality(codes: list[str], language: str, *, reformat: bool = False,
                    pmd: str | os.PathLike | None = None) -> list[dict]:
    """Quality measurements of each code item; see the module docstring for the keys.

    reformat: reformat the items as the study did its Java<->C# outputs before analysing them (Java/C# only).
    pmd: a PMD installation (its directory, its `bin/pmd` launcher, or a directory holding PMD's jars in `lib/`);
    used for Java only.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {tuple(LANGUAGES)}, got {language!r}")
    if reformat and language == "python":
        raise ValueError("reformat applies to Java/C# outputs, not to Python")
    launcher = pmd_command(pmd) if pmd is not None and language == "java" else None
    analysed = [reformat_like_study(code) if reformat else code for code in codes]
    items = [_measure_one(code, text, language) for code, text in zip(codes, analysed)]
    if language == "python":
        for item, counts in zip(items, pylint_counts(codes, [_python_parses(code) for code in codes])):
            item.update(counts)
    if launcher is not None:
        # The study's class names: Translation<i> for the outputs it reformatted, Generated_<task id> otherwise.
        names = [f"Translation{i}" if reformat else f"Generated_{i:024x}" for i in range(len(codes))]
        for item, counts in zip(items, pmd_counts(launcher, [pmd_source(t, n) for t, n in zip(analysed, names)])):
            item.update(counts)
    return items


def reformat_like_study(code: str) -> str:
    """The study's reformatting of its Java<->C# outputs before static analysis (`format_code`).

    All whitespace runs become one space; a line break follows every `;`, `{` and `}`; lines are stripped and empty
    ones dropped; each line is indented four spaces per `{` left open, a line that starts with `}` one level less.
    Reproduced as the study measured it, quirks included: a for-loop header breaks at its `;`s, a `//` comment swallows
    the code up to the next `;`, `{` or `}`, and the same characters inside string literals break lines too.
    """
    text = " ".join(code.split())
    for char in ";{}":
        text = text.replace(char, char + "\n")
    lines, depth = [], 0
    for line in (part.strip() for part in text.split("\n")):
        if not line:
            continue
        if line.startswith("}"):
            depth = max(depth - 1, 0)
        lines.append("    " * depth + line)
        if line.endswith("{"):
            depth += 1
    return "\n".join(lines)


def _measure_one(code: str, text: str, language: str) -> dict:
    """Lizard on the analysed text, parsing (and radon) on the item as given."""
    functions = analyze_file.analyze_source_code(f"item.{LANGUAGES[language].extension}", text).function_list
    item = {
        "detection_rate": int(bool(functions)),
        "cyclomatic_complexity": sum(function.cyclomatic_complexity for function in functions),
        "lines_of_code": sum(function.nloc for function in functions),
        "token_count": sum(function.token_count for function in functions),
        "parses": bool(code.strip()) and _parses(code, language),  # an empty answer is no code, although it parses
        "functions": len(functions),
        "ccn_max": max((function.cyclomatic_complexity for function in functions), default=None),
        "lizard_warnings": sum(1 for function in functions if _over_thresholds(function)),
    }
    if language == "python":
        item["maintainability_index"] = float(mi_visit(code, multi=True)) if item["parses"] else None
    return item


@functools.cache
def _lizard_thresholds() -> dict:
    """The thresholds of the `lizard` command's warnings, as its own option parser sets them by default."""
    return dict(lizard.parse_args(["lizard"]).thresholds)


def _over_thresholds(function) -> bool:
    return any(getattr(function, metric) > limit for metric, limit in _lizard_thresholds().items())


def _parses(code: str, language: str) -> bool:
    if language == "python":
        return _python_parses(code)
    # imports/usings must stay outside the class the method is wrapped in
    head = re.match(r"(?:\s*(?:(?:import|package|using)\b[^\n]*|//[^\n]*)\n)*", code).group(0)
    wrapped = head + WRAPPER % code[len(head):]
    return not _parser(language).parse(wrapped.encode("utf-8", "surrogatepass")).root_node.has_error


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # older grammar wheels hand over an int pointer
        return Parser(Language(grammar(language).language()))


# ---------------------------------------------------------------- summary

def summarize_quality(items: list[dict], language: str) -> dict:
    """Aggregate of `measure_quality` items for metrics.json; see the module docstring for the keys."""
    summary: dict = {"n": len(items), "parse_rate": _mean([float(item["parses"]) for item in items])}
    for key in STUDY_KEYS:
        values = _present(items, key)
        if values or (key in LIZARD_KEYS) or (key in PYLINT_KEYS and language == "python"):
            summary[key] = sum(values)
            summary[f"{key}_mean"] = _mean(values)
    summary["functions"] = sum(_present(items, "functions"))
    summary["lizard_warnings"] = sum(_present(items, "lizard_warnings"))
    summary["ccn_max"] = max(_present(items, "ccn_max"), default=None)
    if language == "python":
        summary["maintainability_index_mean"] = _mean(_present(items, "maintainability_index"))
    return summary


def _present(items: list[dict], key: str) -> list:
    return [item[key] for item in items if item.get(key) is not None]


def _mean(values: list) -> float | None:
    return float(fmean(values)) if values else None

"""Rows for each task: hub or local data -> one flat schema shared by every task.

Every row has the string columns of `ROW_FEATURES`: `task`, `language` (a language, or a direction like "java-cs"),
`id` (`{language}:{source id}`), `source` (code shown in the prompt), `summary` and `signature` (generation) and
`reference` (the answer: docstring or code). `--sample_size N` keeps N examples per data source, as the study did:
per code-to-text language, and N translation pairs (each then used in both directions).
"""

from __future__ import annotations

import ast
import logging
import re
import textwrap
from collections import Counter
from pathlib import Path

import datasets

from common.args import DataArguments
from common.errors import UserError
from common.sources import load_split, require_columns

logger = logging.getLogger(__name__)

ROW_FEATURES = datasets.Features(
    {name: datasets.Value("string") for name in ("task", "language", "id", "source", "summary", "signature", "reference")}
)
MULTITASK = ("summarization", "generation", "translation")


# ---------------------------------------------------------------- code surgery (docstrings, signatures)

def first_sentence(docstring: str) -> str:
    """The first sentence of a docstring's first paragraph, whitespace collapsed."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    paragraph = " ".join(paragraph.split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


_PY_DOCSTRING = re.compile(r"""(:[ \t]*(?:#[^\n]*)?\n)([ \t]*)[rRuUbB]?(\"\"\"|''')(.*?)\3[ \t]*\n""", re.DOTALL)
_PY_HEADER = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+\w+.*?\)[^:\n]*:", re.DOTALL | re.MULTILINE)


def split_python_function(code: str) -> tuple[str, str] | None:
    """(signature, code without its docstring) of a Python function, or None if no function is found."""
    code = textwrap.dedent(code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return _split_python_by_regex(code)
    func = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        return None
    lines = code.splitlines(keepends=True)
    first = func.body[0]
    if first.lineno == func.lineno:  # one-liner: `def f(x): return x`
        signature = lines[func.lineno - 1][: first.col_offset].rstrip()
    else:
        header = "".join(lines[func.lineno - 1: first.lineno - 1]).rstrip()
        signature = re.sub(r"(\n[ \t]*#[^\n]*)+$", "", header)
    body_start = func.lineno - 1
    if func.decorator_list:
        body_start = min(d.lineno for d in func.decorator_list) - 1
    is_docstring = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
        and isinstance(first.value.value, str)
    if not is_docstring or first.lineno == func.lineno:
        return signature, "".join(lines[body_start:]).rstrip()
    kept = lines[body_start: first.lineno - 1] + lines[first.end_lineno:]
    if len(func.body) == 1:  # the docstring was the whole body
        indent = re.match(r"[ \t]*", lines[first.lineno - 1]).group(0)
        kept = lines[body_start: first.lineno - 1] + [f"{indent}pass\n"] + lines[first.end_lineno:]
    return signature, "".join(kept).rstrip()


def _split_python_by_regex(code: str) -> tuple[str, str] | None:
    header = _PY_HEADER.search(code)
    if header is None:
        return None
    rest = code[header.end() - 1:]
    without = _PY_DOCSTRING.sub(r"\1", rest, count=1)
    return header.group(0).strip(), (code[: header.end() - 1] + without).strip()


def remove_python_docstring(code: str) -> str:
    split = split_python_function(code)
    return split[1] if split else code


_JAVA_LEADING_COMMENTS = re.compile(r"^\s*(?:(?:/\*.*?\*/|//[^\n]*)\s*)+", re.DOTALL)
_JAVA_BODY_OPEN = re.compile(r"\)\s*(?:throws\s+[\w.$<>,\s]+?)?\s*\{")


def remove_java_comment(code: str) -> str:
    """The method without the Javadoc or comments in front of it."""
    return _JAVA_LEADING_COMMENTS.sub("", code, count=1).strip()


def split_java_method(code: str) -> tuple[str, str] | None:
    """(signature, code without its leading comment) of a Java method, or None if no body is found."""
    code = remove_java_comment(code)
    match = _JAVA_BODY_OPEN.search(code)
    if match is None:
        return None
    signature = " ".join(code[: match.end() - 1].split())
    return signature, code


# ---------------------------------------------------------------- rows per task

def _row(task, language, rid, source="", summary="", signature="", reference=""):
    return {"task": task, "language": language, "id": f"{language}:{rid}", "source": source, "summary": summary,
            "signature": signature, "reference": reference}


def _sample(dataset: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    if "id" not in dataset.column_names:  # positions in the source file, taken before shuffling
        dataset = dataset.add_column("id", list(range(len(dataset))))
    if n == -1 or n >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(n))


def _usable(dataset: datasets.Dataset, columns: tuple[str, ...], what: str) -> datasets.Dataset:
    """Rows whose needed columns hold non-empty text; the others are skipped with a warning."""
    keep = [i for i, values in enumerate(zip(*(dataset[c] for c in columns)))
            if all(isinstance(v, str) and v.strip() for v in values)]
    if len(keep) < len(dataset):
        logger.warning("%s: skipped %d of %d rows with an empty or missing %s", what, len(dataset) - len(keep),
                       len(dataset), "/".join(columns))
        dataset = dataset.select(keep)
    return dataset


def summarization_rows(data: DataArguments, language: str, split: str, n: int, seed: int,
                       raw: datasets.Dataset | None = None) -> list[dict]:
    """Code-to-text rows; the reference is `docstring`, or `reference_summary` (the study's evaluation files)."""
    flag = "--summarization_dataset"
    if raw is None:
        raw = load_split(data.summarization_dataset, language, split, flag)
    reference = "reference_summary" if "docstring" not in raw.column_names and \
        "reference_summary" in raw.column_names else "docstring"
    if reference not in raw.column_names:
        reference = "docstring (or reference_summary)"
    require_columns(raw, ("code", reference), data.summarization_dataset, flag)
    raw = _usable(_sample(raw, n, seed), ("code", reference), f"summarization {language} {split}")
    rows = []
    for rid, code, doc in zip(raw["id"], raw["code"], raw[reference]):
        if data.remove_docstring:
            code = remove_python_docstring(code) if language == "python" else remove_java_comment(code)
        rows.append(_row("summarization", language, rid, source=code, reference=doc.strip()))
    return rows


def generation_rows(data: DataArguments, language: str, split: str, n: int, seed: int,
                    raw: datasets.Dataset | None = None) -> list[dict]:
    flag, source = generation_source(data)
    if raw is None:
        raw = load_split(source, language, split, flag)
    what = f"generation {language} {split}"
    if "input" in raw.column_names and "output" in raw.column_names:
        raw = _usable(_sample(raw, n, seed), ("input", "output"), what)
        return [_generation_from_io(rid, inp, out, language, source, flag)
                for rid, inp, out in zip(raw["id"], raw["input"], raw["output"])]
    require_columns(raw, ("code", "docstring"), source, flag)
    raw = _usable(_sample(raw, n, seed), ("code", "docstring"), what)
    split_code = split_python_function if language == "python" else split_java_method
    rows = []
    for rid, code, doc in zip(raw["id"], raw["code"], raw["docstring"]):
        parts = split_code(code)
        summary = first_sentence(doc)
        if parts is None or not summary:
            continue
        signature, body = parts
        rows.append(_row("generation", language, rid, summary=summary, signature=signature, reference=body))
    if len(rows) < len(raw):
        logger.warning("%s: skipped %d of %d functions whose signature or summary could not be derived", what,
                       len(raw) - len(rows), len(raw))
    return rows


_IO_INPUT = re.compile(r"^\s*Summary:\s*(.*?)\s*Signature:\s*(.*?)\s*$", re.DOTALL)


def _generation_from_io(rid, text: str, output: str, language: str, source: str, flag: str) -> dict:
    match = _IO_INPUT.match(text)
    if match is None:
        raise UserError(f"{flag}: {source} row {rid}: `input` must read 'Summary: ... Signature: ...'")
    return _row("generation", language, rid, summary=match.group(1), signature=match.group(2), reference=output)


def translation_rows(data: DataArguments, direction: str, split: str, n: int, seed: int) -> list[dict]:
    flag = "--translation_dataset"
    raw = load_split(data.translation_dataset, None, split, flag)
    require_columns(raw, ("java", "cs"), data.translation_dataset, flag)
    raw = _usable(_sample(raw, n, seed), ("java", "cs"), f"translation {split}")  # the same pairs, both directions
    src, tgt = direction.split("-")
    return [_row("translation", direction, rid, source=s.strip(), reference=t.strip())
            for rid, s, t in zip(raw["id"], raw[src], raw[tgt])]


def generation_source(data: DataArguments) -> tuple[str, str]:
    """(flag, path or hub id) of the generation data: its own, or derived from the code-to-text data."""
    if data.generation_dataset:
        return "--generation_dataset", data.generation_dataset
    return "--summarization_dataset", data.summarization_dataset


def task_rows(task: str, data: DataArguments, split: str, n: int, seed: int, language: str | None = None) -> list[dict]:
    """Rows of one task: per language (per direction for translation), or of one file's language.

    A summarization or generation data set given as one file holds one language: `language` (--language), else the
    file's `language` column, else its name (e.g. `..._java_v2.jsonl`, `CEPythonHumanLabel.jsonl`).
    """
    if task == "translation":
        return [r for d in data.direction_list for r in translation_rows(data, d, split, n, seed)]
    build = summarization_rows if task == "summarization" else generation_rows
    flag, source = ("--summarization_dataset", data.summarization_dataset) if task == "summarization" \
        else generation_source(data)
    if is_single_file(source):  # an evaluation file: its items are paired with predictions (and runs) by `id`
        raw = load_split(source, None, split, flag)
        require_columns(raw, ("id",), source, flag)
        return build(data, file_language(source, flag, language, raw), split, n, seed, raw=raw)
    return [r for lang in data.language_list for r in build(data, lang, split, n, seed)]


def is_single_file(source: str | None) -> bool:
    return bool(source) and Path(source).expanduser().is_file()


def file_language(path: str, flag: str, given: str | None = None, raw: datasets.Dataset | None = None) -> str:
    """The one language an evaluation file holds: its rows' `language` column, else its name, else `given`
    (--language). A `given` language the file contradicts is an error, not a relabelling."""
    name = Path(path).name
    found, by = set(), "its name"
    if raw is not None and "language" in raw.column_names:
        found, by = {_LANGUAGE_ALIASES.get(str(v).strip().lower(), str(v)) for v in raw.unique("language")}, \
            "its `language` column"
    if len(found) != 1:
        found, by = {lang for lang, pattern in _LANGUAGE_IN_NAME.items() if pattern.search(name.lower())}, "its name"
    if len(found) == 1:
        (language,) = found
        if given and given != language:
            raise UserError(f"{flag}: {name} holds {language} (by {by}), not {given}: drop --language {given} or "
                            f"pass a {given} file")
        return language
    if given:
        return given
    raise UserError(f"{flag}: cannot tell which language {name} holds (no `language` column, and its name says "
                    f"{' and '.join(sorted(found)) or 'neither java nor python'}): pass --language java or "
                    f"--language python")


_LANGUAGE_ALIASES = {"java": "java", "python": "python", "py": "python"}
_LANGUAGE_IN_NAME = {"java": re.compile(r"java(?!script)"), "python": re.compile(r"python|(?<![a-z])py(?![a-z])")}


def build_split(task: str, data: DataArguments, split: str, seed: int) -> datasets.Dataset:
    """All rows of a split for a task (multitask: every task, concatenated and shuffled with the seed)."""
    n = data.sample_size if split == "train" else data.val_sample_size
    tasks = MULTITASK if task == "multitask" else (task,)
    rows = [r for t in tasks for r in task_rows(t, data, split, n, seed)]
    if not rows:
        raise UserError(f"no usable {split} examples for {task}: check the data paths and --languages/--directions")
    dataset = datasets.Dataset.from_list(rows, features=ROW_FEATURES)
    return dataset.shuffle(seed=seed) if task == "multitask" else dataset


def count_rows(dataset: datasets.Dataset) -> dict[str, int]:
    """Examples per task/language, e.g. {"summarization/java": 40, ...}."""
    return dict(sorted(Counter(f"{t}/{l}" for t, l in zip(dataset["task"], dataset["language"])).items()))


def even_subset(dataset: datasets.Dataset, n: int, seed: int, key: str = "task") -> datasets.Dataset:
    """Up to n rows drawn evenly across the values of `key` (remainder to the first groups), order shuffled."""
    if n == -1 or n >= len(dataset):
        return dataset
    groups: dict[str, list[int]] = {}
    for i, value in enumerate(dataset[key]):
        groups.setdefault(value, []).append(i)
    import random

    rng = random.Random(seed)
    for idx in groups.values():
        rng.shuffle(idx)
    chosen, names = [], sorted(groups)
    while len(chosen) < n:  # round-robin so small groups give all they have and large ones fill the rest
        progressed = False
        for name in names:
            if groups[name] and len(chosen) < n:
                chosen.append(groups[name].pop())
                progressed = True
        if not progressed:
            break
    return dataset.select(sorted(chosen))

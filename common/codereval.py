"""CoderEval: its prompt files as evaluation items, and the round trip through its Docker harness.

CoderEval's tests need the projects they belong to, so they run in CoderEval's own Docker harness, not here:
`export_codereval` writes the harness's input (`{"_id", "generate_results": [code]}` per task) and
`read_codereval_results` reads its output back (`generate_results` as a list of `{generate_code, is_pass,
return_code}`), giving each task its verdict for pass@1.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError
from common.files import write_lines
from common.languages import ALIASES


# Fields of the two CoderEval shapes: the study's inputs (CE{Python,Java}HumanLabel.jsonl) and CoderEval's own
# prompt files (CoderEval4{Python,Java}.json, `{"RECORDS": [...]}`).
HUMANLABEL_FIELDS = ("question_id", "input", "signature", "docstring")
RECORD_FIELDS = ("_id", "code")


def is_codereval_file(path: str) -> bool:
    """Whether a file (or every JSON file of a folder) holds CoderEval records, judged by its first record: an id
    field of either shape, or a HumanLabel-like `signature` without the `output` of training-style data."""
    try:
        records = _read_records(_codereval_files(Path(path).expanduser())[0], "--test_dataset", first_only=True)
    except Exception:  # noqa: BLE001 - not readable as CoderEval: let the generic loader report it
        return False
    first = records[0] if records else None
    return isinstance(first, dict) and ("question_id" in first or "_id" in first or
                                        ("signature" in first and "output" not in first))


def load_codereval(path: str, languages: list[str], language: str | None = None, prompt: str = "training",
                   flag: str = "--test_dataset", task: str = "") -> list[dict]:
    """CoderEval items (of `task`) from its files, in file order.

    - The study's `CE{Python,Java}HumanLabel.jsonl`: `question_id`, `input` (CoderEval's prompt: signature and
      docstring), `signature`, `docstring` (the human label). These carry no reference code: the items are scored by
      CoderEval's Docker harness (`--export_codereval`, `--codereval_results`) and by code quality.
    - CoderEval's `CoderEval4{Python,Java}.json` (`{"RECORDS": [...]}`, or JSONL): `_id`, `code` (the reference),
      `human_label` or `docstring`; a record with a `test` (a Python program calling the function) is also executed.

    The prompt is the training format built from the description and the signature; `prompt="input"` sends the
    HumanLabel `input` verbatim instead, as the study did. The language is `language` (--language), else the
    record's `language` field, else the file name (…Python…, …Java…).
    """
    from common.code_parts import first_sentence, split_java_method, split_python_function
    from common.data import file_language

    root = Path(path).expanduser()
    files = _codereval_files(root, flag)
    items = []
    for file in files:
        records = _read_records(file, flag)
        try:
            named = file_language(str(file), flag)
        except UserError:
            named = None  # the records' `language` field, or --language, must tell
        for n, record in enumerate(records, 1):
            if not isinstance(record, dict):
                raise UserError(f"{flag}: record {n} of {file} is not a JSON object")
            lang = ALIASES.get(str(record.get("language", "")).strip().lower()) or named or language
            if lang is None:
                raise UserError(f"{flag}: cannot tell the language of record {n} of {file.name} (no `language` field, "
                                f"and the file name says neither java nor python): pass --language java or python")
            if language and lang != language:
                if not root.is_dir():  # one file given: it contradicts the flag
                    raise UserError(f"{flag}: record {n} of {file.name} is a {lang} task, not {language}: drop "
                                    f"--language {language} or pass a {language} file")
                continue  # a folder of both languages: --language picks one
            if not language and lang not in languages:
                continue
            extra = {"codereval_id": None}
            if {"question_id", "signature", "input"} & set(record):  # the study's HumanLabel shape
                _require(record, HUMANLABEL_FIELDS, n, file, flag)
                rid, signature, reference = record["question_id"], record["signature"], ""
                summary = " ".join(str(record["docstring"]).split())
                if prompt == "input":
                    extra["user_prompt"] = record["input"]
            else:
                _require(record, RECORD_FIELDS, n, file, flag)
                description = record.get("human_label") or record.get("docstring")
                if not description:
                    raise UserError(f"{flag}: record {n} of {file} needs `human_label` or `docstring`")
                parts = (split_python_function if lang == "python" else split_java_method)(record["code"])
                if parts is None:
                    raise UserError(f"{flag}: record {n} of {file}: no {lang} function found in `code`")
                rid, (signature, reference), summary = record["_id"], parts, first_sentence(description)
                if record.get("test"):
                    extra["test"] = record["test"]
                if prompt == "input":
                    raise UserError("--codereval_prompt input needs the study's CE*HumanLabel.jsonl files (with an "
                                    f"`input` field); {file.name} has none")
            extra["codereval_id"] = str(rid)
            item = {"task": task, "language": lang, "id": f"{lang}:{rid}", "source": "", "summary": summary,
                    "signature": signature, "reference": reference, "extra": extra}
            if "user_prompt" in extra:
                item["user_prompt"] = extra.pop("user_prompt")
            items.append(item)
    return items




def _codereval_files(root: Path, flag: str = "--test_dataset") -> list[Path]:
    files = sorted(f for f in root.glob("*.json*") if f.is_file()) if root.is_dir() else [root]
    if not files or not files[0].exists():
        raise UserError(f"{flag}: no CoderEval file at {root}")
    return files


def _read_records(file: Path, flag: str, first_only: bool = False) -> list:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{flag}: {file} is not UTF-8 text") from None
    try:
        if file.suffix == ".json":
            value = json.loads(text)
            records = value.get("RECORDS") if isinstance(value, dict) else value
            if not isinstance(records, list):
                found = (_kind(value) if not isinstance(value, dict) else "an object without `RECORDS`"
                         if "RECORDS" not in value else f"an object whose `RECORDS` is {_kind(records)}")
                raise UserError(f"{flag}: {file} is {found}; expected a list of records (JSON objects), or "
                                f"CoderEval's {{\"RECORDS\": [...]}}")
            return records
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag}: {file} is not valid JSON (line {exc.lineno})") from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{flag}: line {n} of {file} is not JSON") from None
            if first_only:
                break
    return records


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _require(record: dict, fields: tuple[str, ...], n: int, file: Path, flag: str) -> None:
    missing = [f for f in fields if record.get(f) in (None, "")]
    if missing:
        raise UserError(f"{flag}: record {n} of {file.name} lacks {', '.join(f'`{f}`' for f in missing)} "
                        f"(a CoderEval record needs {', '.join(fields)})")


# ---------------------------------------------------------------- the harness round trip

def export_codereval(path: str, items: list[dict], answers: list[str]) -> list[Path]:
    """Write the harness input, one file per language (the harness runs Python and Java separately).

    With one language the file is `path`; with several, `path` with `_{language}` before its suffix. Each line is
    `{"_id": CoderEval id, "generate_results": [the extracted answer]}`, in item order.
    """
    by_language: dict[str, list[dict]] = {}
    for item, answer in zip(items, answers):
        rid = (item.get("extra") or {}).get("codereval_id")
        if rid is not None:
            by_language.setdefault(item["language"], []).append({"_id": rid, "generate_results": [answer]})
    written = []
    for file, (_, rows) in zip(export_targets(path, items), sorted(by_language.items())):
        write_lines(file, rows)
        written.append(file)
    return written


def export_targets(path: str, items: list[dict]) -> list[Path]:
    """The files `export_codereval` writes, in language order: `path`, or one `{stem}_{language}{suffix}` each."""
    languages = sorted({it["language"] for it in items if (it.get("extra") or {}).get("codereval_id") is not None})
    target = Path(path).expanduser()
    if len(languages) == 1:
        return [target]
    return [target.with_name(f"{target.stem}_{lang}{target.suffix}") for lang in languages]


def read_codereval_results(paths: list[str]) -> dict[str, dict]:
    """CoderEval id -> {"passed": 0/1, "code": the code the verdict is for}, from the harness's output file(s).

    A row's verdict is its first `generate_results` entry's `is_pass` (greedy decoding gives one sample per task).
    """
    verdicts: dict[str, dict] = {}
    for path in paths:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserError(f"--codereval_results: no such file: {file}")
        for n, row in enumerate(_read_records(file, "--codereval_results"), 1):
            results = row.get("generate_results") if isinstance(row, dict) else None
            if not isinstance(row, dict) or "_id" not in row or not isinstance(results, list) or not results:
                raise UserError(f"--codereval_results: record {n} of {file} needs `_id` and a non-empty "
                                f"`generate_results` list (the CoderEval harness's output)")
            first = results[0]
            if not isinstance(first, dict) or "is_pass" not in first:
                raise UserError(f"--codereval_results: record {n} of {file}: `generate_results` holds the harness "
                                f"input (code only), not its verdicts: pass the file the harness wrote")
            rid = str(row["_id"])
            if rid in verdicts:
                raise UserError(f"--codereval_results: task {rid} appears twice (record {n} of {file})")
            passed = _VERDICTS.get(str(first["is_pass"]).strip().lower())
            if passed is None:
                raise UserError(f"--codereval_results: record {n} of {file}: `is_pass` is {first['is_pass']!r}; "
                                f"expected true or false")
            verdicts[rid] = {"passed": passed, "code": first.get("generate_code")}
    return verdicts


_VERDICTS = {"true": 1, "1": 1, "false": 0, "0": 0}

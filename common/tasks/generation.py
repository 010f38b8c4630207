"""Code generation: a summary and a signature -> the function (Python) or method (Java).

Data: derived from CodeXGLUE code_to_text (summary = the docstring's first sentence, signature = the header, answer =
the code without its docstring), or data with the study's `input` ("Summary: ... Signature: ...") and `output`.
Benchmarks: HumanEval (executed here) and CoderEval (executed by its Docker harness). Metrics: CodeBLEU, BLEU, exact
match, pass@1 where tests run, code quality.
"""

from __future__ import annotations

import logging
import re

from common.code_parts import first_sentence, split_java_method, split_python_function
from common.errors import UserError
from common.languages import language
from common.tasks import Benchmark, TaskSpec, register

NAME = "generation"
logger = logging.getLogger("common")
_IO_INPUT = re.compile(r"^\s*Summary:\s*(.*?)\s*Signature:\s*(.*?)\s*$", re.DOTALL)


def rows(data, lang: str, split: str, n: int, seed: int, raw=None) -> list[dict]:
    from common.data import load_task_split, make_row, sample, usable
    from common.sources import require_columns

    flag, source = SPEC.source(data)
    if raw is None:
        raw = load_task_split(SPEC, data, lang, split)
    what = f"{NAME} {lang} {split}"
    if "input" in raw.column_names and "output" in raw.column_names:  # the study's own generation data
        raw = usable(sample(raw, n, seed), ("input", "output"), what)
        out = []
        for rid, text, answer in zip(raw["id"], raw["input"], raw["output"]):
            match = _IO_INPUT.match(text)
            if match is None:
                raise UserError(f"{flag}: {source} row {rid}: `input` must read 'Summary: ... Signature: ...'")
            out.append(make_row(NAME, lang, rid, summary=match.group(1), signature=match.group(2), reference=answer))
        return out
    require_columns(raw, ("code", "docstring"), source, flag)
    raw = usable(sample(raw, n, seed), ("code", "docstring"), what)
    split_code = split_python_function if lang == "python" else split_java_method
    out = []
    for rid, code, doc in zip(raw["id"], raw["code"], raw["docstring"]):
        parts = split_code(code)
        summary = first_sentence(doc)
        if parts is None or not summary:
            continue
        signature, body = parts
        out.append(make_row(NAME, lang, rid, summary=summary, signature=signature, reference=body))
    if len(out) < len(raw):
        logger.warning("%s: skipped %d of %d functions whose signature or summary could not be derived", what,
                       len(raw) - len(out), len(raw))
    return out


def messages(row: dict, source: str | None = None) -> list[dict]:
    lang = language(row["language"]).display
    what = "Method" if row["language"] == "java" else "Function"
    # `user_prompt`: a benchmark's own prompt sent verbatim (the study sent CoderEval's `input` this way)
    user = row.get("user_prompt") or f"{row['summary']}\n\n{what} to implement:\n{row['signature']}"
    return [{"role": "system", "content": f"You are an expert {lang} developer. Generate complete and efficient "
                                          f"{lang} code based on the given specifications."},
            {"role": "user", "content": user}]


def target(row: dict) -> str:
    return row["reference"]


def score(context, lang: str, answers: list[str], items: list[dict]) -> tuple[dict, list[dict]]:
    from common import metrics

    return metrics.code_scores(answers, [it["reference"] for it in items], lang)


def humaneval(args, languages: list[str], flag: str) -> list[dict]:
    from common.benchmarks import humaneval_items

    return humaneval_items(NAME)


def codereval(args, languages: list[str], flag: str) -> list[dict]:
    from common.codereval import load_codereval

    return load_codereval(args.generation_dataset, languages, args.language, args.codereval_prompt, flag, task=NAME)


def _is_codereval_file(path: str) -> bool:
    from common.codereval import is_codereval_file

    return is_codereval_file(path)


def _extract(text: str, lang: str) -> str:
    from common.extraction import extract_code

    return extract_code(text, lang)


SPEC = register(TaskSpec(
    name=NAME, summary="summary + signature -> code", groups="languages", data_flag="generation_dataset",
    data_fallback="summarization_dataset",
    data_help="Generation data: hub id or local path (code-to-text columns, or the study's input/output), or a "
              "CoderEval file; default: derived from --summarization_dataset.", rows=rows, messages=messages, target=target, extract=_extract,
    score=score, in_default_mixture=True, main_metrics=("pass@1", "codebleu", "bleu"),
    benchmarks={"humaneval": Benchmark(humaneval),
                "codereval": Benchmark(codereval, reads_data=True, detect=_is_codereval_file)},
    eval_flags=("codereval_prompt", "export_codereval", "codereval_results"),
))

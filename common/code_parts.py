"""Code surgery for building examples: docstrings, signatures and bodies of Python functions and Java methods.

Used to derive code-writing examples from code-to-text data (summary = the docstring's first sentence, signature = the
header, answer = the code without its docstring) and to take the reference out of a code -> docstring input.
"""

from __future__ import annotations

import ast
import re
import textwrap

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

"""Taking the answer out of a model's output, identically for every system (this toolkit's models, baselines,
predictions files from elsewhere): no "SUMMARY:"/"DONE" frame, no code fences, no chatter around code.
"""

from __future__ import annotations

import re

_OPEN_FENCE = re.compile(r"^[ \t]*```[^\n]*\n", re.MULTILINE)
_CLOSE_FENCE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
# Lines that can begin an answer: definitions, and what legitimately precedes them (imports, comments, constants).
_CODE_START = {
    "python": re.compile(r"^\s*(?:@\w|def |async def |class |import |from \w|#|[A-Za-z_][\w.]*\s*=[^=]|if __name__)"),
    "java": re.compile(r"^\s*(?:@\w|(?:public|private|protected|internal|static|final|abstract|synchronized|override|"
                       r"sealed|virtual|async|import|package|using|namespace)\b|//|/\*|"
                       r"[\w<>\[\],.?]+\s+\w+\s*\(.*\)\s*(?:\{|throws\b|$))"),
}
_CODE_START["cs"] = _CODE_START["java"]
# An unindented sentence: a capitalised word followed by lower-case words, not ending like code.
_PROSE = re.compile(r"^(?:(?:Note|Explanation|Example|Output|Usage)\b|[A-Z][a-z']*(?:\s+[a-z][\w'-]*)+(?:[\s,.:!]|$))")
_CODE_END = (";", "{", "}", ")", ",", "=>", "->")


def answer_language(task: str, language: str) -> str:
    """The language of the answer: the row's language, or the target side of a translation direction."""
    return language.split("-")[1] if task == "translation" else language


def extract_answer(task: str, text: str, language: str = "") -> str:
    """The answer inside a model's output: no "SUMMARY:"/"DONE" frame, no code fences, no chatter around code.

    Code keeps its indentation (a HumanEval-style body continuation starts indented).
    """
    if task == "summarization":
        frame = re.search(r"SUMMARY:\s*", text, re.IGNORECASE)
        if frame:
            text = text[frame.end():]
        # the trained answer ends with DONE: cut there, but not at a "DONE" inside the sentence
        return re.split(r"\s*\bDONE\b\s*(?:\n|$)", text.strip(), maxsplit=1)[0].strip()
    start = _CODE_START.get(answer_language(task, language) if language else "python")
    text = text.strip("\n").rstrip()
    opening = _OPEN_FENCE.search(text)
    if opening:
        before = text[: opening.start()]
        if start is not None and any(start.match(line) for line in before.splitlines()):
            text = before  # the first fence closes unfenced code: keep the code before it
        else:
            closing = _CLOSE_FENCE.search(text, opening.end())
            return text[opening.end(): closing.start() if closing else len(text)].strip("\n").rstrip()
    lines = text.splitlines()
    if start is not None and lines and not start.match(lines[0]) and not lines[0].startswith((" ", "\t")):
        first = next((i for i, line in enumerate(lines) if start.match(line)), None)
        if first is not None:
            lines = lines[first:]  # chatter before the code
    for i in range(1, len(lines)):  # chatter after the code: an unindented sentence
        line = lines[i].rstrip()
        if _PROSE.match(line) and not line.endswith(_CODE_END) and " = " not in line:
            lines = lines[:i]
            break
    return "\n".join(lines).strip("\n").rstrip()

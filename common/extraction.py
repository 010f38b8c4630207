"""Taking the answer out of a model's output, identically for every system (this toolkit's models, baselines,
predictions files from elsewhere): each task's rule (e.g. a summary's "SUMMARY: ... DONE" frame), and for code no
fences and no chatter around it (`extract_code`).

Code ends at a fence or at a line of prose, but only at a line that starts outside the program's string literals and
comments: a small lexer per answer language (Python, Java, C#) follows the program line by line from where the code
starts, so a docstring's "Add more test cases." or a ``` inside a text block never cuts it. The chatter before the
code is never lexed (the apostrophe of "Here's" opens no string).
"""

from __future__ import annotations

import re

from common.lexers import LEXERS

_FENCE = re.compile(r"[ \t]*```")
# Lines that can begin an answer: definitions, and what legitimately precedes them (imports, comments, constants).
_CODE_START = {
    "python": re.compile(r"^\s*(?:@\w|def |async def |class |import |from \w|#|[A-Za-z_][\w.]*\s*=[^=]|if __name__)"),
    "java": re.compile(r"^\s*(?:@\w|(?:public|private|protected|internal|static|final|abstract|synchronized|override|"
                       r"sealed|virtual|async|import|package|using|namespace)\b|//|/\*|"
                       r"[\w<>\[\],.?]+\s+\w+\s*\(.*\)\s*(?:\{|throws\b|$))"),
}
_CODE_START["cs"] = _CODE_START["java"]
_COMMENT = re.compile(r"^\s*(?:#|//|/\*)")
# An unindented sentence: a capitalised word followed by lower-case words, not ending like code.
_PROSE = re.compile(r"^(?:(?:Note|Explanation|Example|Output|Usage)\b|[A-Z][a-z']*(?:\s+[a-z][\w'-]*)+(?:[\s,.:!]|$))")
_CODE_END = (";", "{", "}", ")", ",", "=>", "->")


def extract_answer(task: str, text: str, language: str = "") -> str:
    """The answer inside a model's output, by the task's own rule (its `extract`); `language` is the row's language
    or direction (default: Python, for code)."""
    from common.tasks import get

    spec = get(task)
    return spec.extract(text, spec.answer_language(language) if language else "python")


def extract_code(text: str, lang: str = "python") -> str:
    """Code inside a model's output: no code fences, no chatter around it; it keeps its indentation (a
    HumanEval-style body continuation starts indented)."""
    start, lex = _CODE_START.get(lang), LEXERS.get(lang)
    lines = text.replace("\r\n", "\n").strip("\n").rstrip().split("\n")
    # Where the code starts, read as chatter (not lexed): after the first fence, unless code comes before it (then
    # that fence is a stray one closing the code); else at the first line (code, or an indented body continuation),
    # or past chatter to the first code line.
    fence = next((i for i, line in enumerate(lines) if _FENCE.match(line)), len(lines))
    first = next((i for i in range(fence) if start.match(lines[i])), None) if start is not None else None
    if first is not None and fence < len(lines) and not _opened(lex, lines[first:fence]) and \
            all(_COMMENT.match(lines[i]) or not start.match(lines[i]) for i in range(first, fence)):
        first = None  # only one-line comments (e.g. a markdown "## Solution" heading) before a real fence: chatter
    body = start is not None and lines[0].startswith(("  ", "\t"))  # a body continuation, not a stray space
    if fence < len(lines) and first is None and not body:
        begin = fence + 1
    elif first is None or start.match(lines[0]) or lines[0].startswith((" ", "\t")):
        begin = 0
    else:
        begin = first
    # Where it ends: the first fence or prose line (never the first line) that starts outside strings and comments.
    end, inside = len(lines), []
    for i in range(begin, len(lines)):
        if not inside and (_FENCE.match(lines[i]) or (i > begin and _is_prose(lines[i]))):
            end = i
            break
        if lex is not None:
            inside = lex(lines[i], inside)
    return "\n".join(lines[begin:end]).strip("\n").rstrip()


def _opened(lex, lines: list[str]) -> bool:
    """Whether a string or comment is still open after these lines."""
    inside = []
    for line in lines:
        if lex is not None:
            inside = lex(line, inside)
    return bool(inside)


def _is_prose(line: str) -> bool:
    line = line.rstrip()
    return bool(_PROSE.match(line)) and not line.endswith(_CODE_END) and " = " not in line

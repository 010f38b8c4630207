"""Taking the answer out of a model's output, identically for every system (this toolkit's models, baselines,
predictions files from elsewhere): no "SUMMARY:"/"DONE" frame, no code fences, no chatter around code.

Code ends at a fence or at a line of prose, but only at a line that starts outside the program's string literals and
comments: a small lexer per answer language (Python, Java, C#) follows the program line by line from where the code
starts, so a docstring's "Add more test cases." or a ``` inside a text block never cuts it. The chatter before the
code is never lexed (the apostrophe of "Here's" opens no string).
"""

from __future__ import annotations

import re

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
    lang = answer_language(task, language) if language else "python"
    start, lex = _CODE_START.get(lang), _LEXERS.get(lang)
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


# ---------------------------------------------------------------- lexers
# Each takes a line and what is open at its start (a stack: [] means plain code) and returns what is open at its end.


def _skip_quoted(line: str, i: int, quote: str) -> int:
    """Past a one-line literal whose opening quote is before `i` (backslash escapes); at the end of line if unclosed."""
    while i < len(line):
        if line[i] == "\\":
            i += 2
        elif line[i] == quote:
            return i + 1
        else:
            i += 1
    return len(line)


def _lex_python(line: str, inside: list) -> list:
    """Strings with any prefix (r, b, u, f: the prefix never changes where a string ends, a backslash always escapes
    the quote), single or triple quotes, `#` comments. A one-quote string ends with its line unless a backslash
    continues it."""
    quote = inside[0] if inside else None
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote is None:
            if c == "#":
                break
            if c in "'\"":
                quote = c * 3 if line.startswith(c * 3, i) else c
                i += len(quote)
                continue
        elif c == "\\":
            i += 2
            continue
        elif line.startswith(quote, i):
            i += len(quote)
            quote = None
            continue
        i += 1
    if quote is not None and len(quote) == 1 and i <= n:  # i > n: a final backslash escaped the newline
        quote = None
    return [quote] if quote else []


def _lex_java(line: str, inside: list) -> list:
    """`//` and `/* */` comments (Javadoc), "..." strings and '.' chars with escapes, text blocks \"\"\"...\"\"\"."""
    mode = inside[0] if inside else None
    i, n = 0, len(line)
    while i < n:
        if mode == "/*":
            j = line.find("*/", i)
            if j < 0:
                break
            i, mode = j + 2, None
        elif mode == '"""':
            if line[i] == "\\":
                i += 2
            elif line.startswith('"""', i):
                i, mode = i + 3, None
            else:
                i += 1
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            i, mode = i + 2, "/*"
        elif line.startswith('"""', i):
            i, mode = i + 3, '"""'
        elif line[i] in "\"'":
            i = _skip_quoted(line, i + 1, line[i])
        else:
            i += 1
    return [mode] if mode else []


_CS_STRING = re.compile(r'(\$*)(@?)(\$*)("+)')


def _run(line: str, i: int) -> int:
    """How many times the character at `i` repeats from there."""
    j = i
    while j < len(line) and line[j] == line[i]:
        j += 1
    return j - i


def _lex_cs(line: str, inside: list) -> list:
    """`//` and `/* */` comments; char literals; strings: regular "..." (escapes, one line), verbatim @"..." (`""` is
    a quote, spans lines), raw \"\"\"...\"\"\" (three or more quotes, spans lines), each possibly interpolated ($, $@,
    @$, $$\"\"\"...) with holes whose code may hold strings of its own.

    Frames: ("/*",), ("str", kind, quotes, dollars) with kind "reg", "verb" or "raw", ("hole", dollars, depth)."""
    stack = list(inside)
    i, n = 0, len(line)
    while i < n:
        top = stack[-1] if stack else None
        c = line[i]
        if top is not None and top[0] == "/*":
            j = line.find("*/", i)
            if j < 0:
                break
            i = j + 2
            stack.pop()
        elif top is not None and top[0] == "str":
            _, kind, quotes, dollars = top
            if kind == "reg" and c == "\\":
                i += 2
            elif c == '"':
                run = _run(line, i)
                if kind == "verb" and run >= 2:
                    i += 2  # "" is one quote
                elif kind == "raw" and run < quotes:
                    i += run  # fewer quotes than the delimiter: content
                else:
                    i += run if kind == "raw" else 1
                    stack.pop()
            elif dollars and c == "{":
                run = _run(line, i)
                if kind == "raw":
                    if run >= dollars:
                        stack.append(("hole", dollars, 0))
                    i += run
                elif run >= 2:
                    i += 2  # {{ is a brace
                else:
                    stack.append(("hole", dollars, 0))
                    i += 1
            else:
                i += 1
        else:  # code: the program itself, or a hole of an interpolated string
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                stack.append(("/*",))
                i += 2
                continue
            if c == "'":
                i = _skip_quoted(line, i + 1, "'")
                continue
            if c in '$@"':
                m = _CS_STRING.match(line, i)
                if m and not (m.group(1) and m.group(3)):
                    dollars, verbatim, quotes = len(m.group(1) + m.group(3)), bool(m.group(2)), len(m.group(4))
                    if verbatim:
                        stack.append(("str", "verb", 1, dollars))
                        i = m.start(4) + 1
                    elif quotes >= 3:
                        stack.append(("str", "raw", quotes, dollars))
                        i = m.end()
                    elif quotes == 2:
                        i = m.end()  # ""
                    else:
                        stack.append(("str", "reg", 1, dollars))
                        i = m.end()
                    continue
            if top is not None and top[0] == "hole":
                if c == "{":
                    stack[-1] = ("hole", top[1], top[2] + 1)
                elif c == "}":
                    if top[2] == 0:
                        stack.pop()
                    else:
                        stack[-1] = ("hole", top[1], top[2] - 1)
            i += 1
    # a regular string (and whatever opened inside it) ends with its line
    cut = next((k for k, frame in enumerate(stack) if frame[0] == "str" and frame[1] == "reg"), len(stack))
    return stack[:cut]


_LEXERS = {"python": _lex_python, "java": _lex_java, "cs": _lex_cs}

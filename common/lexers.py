"""Line lexers for answer extraction: which lines of a program start inside a string literal or a comment.

Each lexer takes a line and what is open at its start (a stack: [] means plain code) and returns what is open at its
end. Python: string prefixes, single and triple quotes, escapes, `#`; Java: `//`, `/* */`, strings, text blocks, char
literals; C#: comments, chars, regular, verbatim (`@"..."`, `""` escapes), interpolated (`$"..."` with holes) and raw
(three or more quotes) strings. A one-line literal left open recovers at the end of its line.
"""

from __future__ import annotations

import re


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


LEXERS = {"python": _lex_python, "java": _lex_java, "cs": _lex_cs}

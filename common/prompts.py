"""The study's prompts (NOTES §1) as chat messages, shared by training and inference.

A row (see `common.data`) carries `task`, `language` (a language, or a direction such as "java-cs"), `source` (the
code shown in the prompt, if any), `summary`, `signature` and `reference`. `build_messages` turns it into the
system + user messages; `target_text` is what the assistant is trained to answer.
"""

from __future__ import annotations

import re

LANGUAGE_NAMES = {"java": "Java", "python": "Python", "cs": "C#"}

# Used, with a warning, for tokenizers that ship no chat template of their own.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

TRANSLATION_SYSTEM = (
    "You are an expert code translator. Translate code from the source language to the target language. "
    "Preserve semantics, be idiomatic in the target language, and output only the translated code, no explanations."
)


def direction_languages(direction: str) -> tuple[str, str]:
    source, target = direction.split("-")
    return LANGUAGE_NAMES[source], LANGUAGE_NAMES[target]


def build_messages(row: dict, source: str | None = None) -> list[dict]:
    """System and user messages for a row; `source` overrides the code shown (used when it must be truncated)."""
    task = row["task"]
    code = row["source"] if source is None else source
    if task == "summarization":
        lang = LANGUAGE_NAMES[row["language"]]
        system = f"You are an expert {lang} developer. Provide clear and concise summarization for {lang} code segments."
        user = f"Summarize this {lang} code:\n{code}"
    elif task == "generation":
        lang = LANGUAGE_NAMES[row["language"]]
        system = (f"You are an expert {lang} developer. Generate complete and efficient {lang} code based on the "
                  f"given specifications.")
        what = "Method" if row["language"] == "java" else "Function"
        user = f"{row['summary']}\n\n{what} to implement:\n{row['signature']}"
    elif task == "translation":
        src, tgt = direction_languages(row["language"])
        system = TRANSLATION_SYSTEM
        user = f"Translate from {src} to {tgt}:\n{code}"
    else:
        raise ValueError(f"unknown task {task!r}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def target_text(row: dict) -> str:
    """The assistant's answer the model is trained on."""
    if row["task"] == "summarization":
        return f"SUMMARY: {row['reference']} DONE"
    return row["reference"]


def truncatable(row: dict) -> bool:
    """Whether the prompt holds code that may be shortened to fit `--max_seq_length`."""
    return row["task"] in ("summarization", "translation") and bool(row["source"])


# ---------------------------------------------------------------- answer extraction (every system, identically)

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

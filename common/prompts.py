"""The study's prompts (from its training and inference scripts) as chat messages, shared by training and inference.

A row (see `common.data`) carries `task`, `language` (a language, or a direction such as "java-cs"), `source` (the
code shown in the prompt, if any), `summary`, `signature` and `reference`. `build_messages` turns it into the
system + user messages; `target_text` is what the assistant is trained to answer.
"""

from __future__ import annotations

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
        # `user_prompt`: a benchmark's own prompt sent verbatim (the study sent CoderEval's `input` this way)
        user = row.get("user_prompt") or f"{row['summary']}\n\n{what} to implement:\n{row['signature']}"
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

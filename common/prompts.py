"""Prompts as chat messages, shared by training and inference: each task's own (common.tasks) behind one interface.

A row (see `common.data`) carries `task`, `language` (a language, or a direction such as "java-cs"), `source` (the
code shown in the prompt, if any), `summary`, `signature` and `reference`. `build_messages` turns it into the
system + user messages; `target_text` is what the assistant is trained to answer.
"""

from __future__ import annotations

# Used, with a warning, for tokenizers that ship no chat template of their own.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_messages(row: dict, source: str | None = None) -> list[dict]:
    """System and user messages for a row; `source` overrides the code shown (used when it must be truncated)."""
    from common.tasks import get

    return get(row["task"]).messages(row, source)


def target_text(row: dict) -> str:
    """The assistant's answer the model is trained on."""
    from common.tasks import get

    return get(row["task"]).target(row)


def truncatable(row: dict) -> bool:
    """Whether the prompt holds code that may be shortened to fit `--max_seq_length`."""
    from common.tasks import get

    return get(row["task"]).truncatable and bool(row["source"])

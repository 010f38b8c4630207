"""Rows -> `input_ids` + `labels` with completion-only loss, and the processed-data cache.

The prompt is rendered with the model's chat template (`add_generation_prompt=True`) and tokenized on its own, exactly
as inference will tokenize it; the target and the end-of-turn token(s) follow. Every prompt token is labelled -100, so
the loss covers only the answer and the end-of-turn, which teaches the model to stop. Labels are built here, not by a
collator, so a pad token equal to the end-of-turn token cannot mask it.

Too long for `--max_seq_length`: the code inside the prompt is shortened (never the target); an example is dropped only
when even an empty prompt code cannot make it fit.

A chat template that refuses a system message (Gemma's raises "System role not supported") gets the system text merged
into the first user turn (system text, a blank line, user text), in training and inference alike;
`system_role_merged(tokenizer)` says whether that happens, for the run's records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


import datasets

from common import prompts
from common.errors import UserError, first_line

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class ChatFormat:
    """How a tokenizer frames a conversation: its chat template and the token ids that end an assistant turn."""

    end_of_turn_ids: tuple[int, ...]
    system_role_merged: bool = False  # the template refuses a system message: its text opens the first user turn

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "ChatFormat":
        ensure_chat_template(tokenizer)
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        prompt = render_prompt(tokenizer, probe)
        full = _apply(tokenizer, probe + [{"role": "assistant", "content": "TARGET"}], add_generation_prompt=False)
        if not full.startswith(prompt) or "TARGET" not in full[len(prompt):]:
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
        suffix = full[len(prompt):].split("TARGET", 1)[1].rstrip()
        ids = tuple(tokenizer(suffix, add_special_tokens=False)["input_ids"]) if suffix else ()
        if not ids:
            if tokenizer.eos_token_id is None:
                raise ValueError("the tokenizer has neither an end-of-turn marker nor an eos token")
            ids = (tokenizer.eos_token_id,)
        return cls(ids, system_role_merged(tokenizer))


def ensure_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        logger.warning("the tokenizer has no chat template: using ChatML (<|im_start|>/<|im_end|>)")
        tokenizer.chat_template = prompts.CHATML_TEMPLATE


def render_prompt(tokenizer, messages: list[dict]) -> str:
    return _apply(tokenizer, messages, add_generation_prompt=True)


_SYSTEM_MERGED: dict[str, bool] = {}  # chat template -> whether it refuses a system message


def system_role_merged(tokenizer) -> bool:
    """Whether the tokenizer's chat template refuses a system message, so that prompts carry the system text at the
    start of the first user turn instead (decided once per template by rendering a probe; warned once)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if template not in _SYSTEM_MERGED:
        from jinja2.exceptions import TemplateError

        user = [{"role": "user", "content": "U"}]
        try:
            tokenizer.apply_chat_template([{"role": "system", "content": "S"}, *user], tokenize=False,
                                          add_generation_prompt=True)
            merged = False
        except TemplateError as exc:
            tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)  # any other fault: raise
            merged = True
            logger.warning("the chat template refuses a system message (%s): the system text opens the first user "
                           "turn instead, in training and inference alike", str(exc).strip() or "TemplateError")
        _SYSTEM_MERGED[template] = merged
    return _SYSTEM_MERGED[template]


def merge_system(messages: list[dict]) -> list[dict]:
    """The system message's text placed before the first user message's text, separated by a blank line."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for message in rest:
        if message["role"] == "user":
            message["content"] = f"{system}\n\n{message['content']}" if message["content"] else system
            return rest
    return [{"role": "user", "content": system}, *rest]


def _apply(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    if system_role_merged(tokenizer):
        messages = merge_system(messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a prompt, as both training and inference produce them."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def fit_prompt(row: dict, tokenizer, limit: int) -> tuple[list[dict], list[int], bool]:
    """(messages, prompt ids, truncated): the code in the prompt cut until the prompt fits `limit` tokens.

    Training passes what the answer leaves of --max_seq_length, inference --max_prompt_length. A prompt without code
    to cut may stay over the limit; the caller decides.
    """
    messages = prompts.build_messages(row)
    ids = prompt_ids(tokenizer, messages)
    truncated = False
    if len(ids) > limit and prompts.truncatable(row):
        code_ids = tokenizer(row["source"], add_special_tokens=False)["input_ids"]
        for _ in range(8):  # re-tokenizing the shortened prompt can shift a few tokens; converge in a few rounds
            overflow = len(ids) - limit
            if overflow <= 0 or not code_ids:
                break
            code_ids = code_ids[: max(0, len(code_ids) - overflow)]
            messages = prompts.build_messages(row, source=tokenizer.decode(code_ids))
            ids = prompt_ids(tokenizer, messages)
            truncated = True
    return messages, ids, truncated


def encode_row(row: dict, tokenizer, chat: ChatFormat, max_len: int) -> dict:
    """input_ids/labels for one row, plus `truncated`/`dropped` flags."""
    target = tokenizer(prompts.target_text(row), add_special_tokens=False)["input_ids"] + list(chat.end_of_turn_ids)
    _, ids, truncated = fit_prompt(row, tokenizer, max_len - len(target))
    if len(ids) + len(target) > max_len:
        return {"input_ids": [], "labels": [], "truncated": truncated, "dropped": True}
    return {"input_ids": ids + target, "labels": [IGNORE_INDEX] * len(ids) + target,
            "truncated": truncated, "dropped": False}


def encode(rows: datasets.Dataset, tokenizer, max_len: int, desc: str) -> tuple[datasets.Dataset, dict]:
    """Tokenize a split; returns the kept examples and the truncated/dropped counts per task/language."""
    context = getattr(tokenizer, "model_context", None)  # set by common.modeling.load_tokenizer
    if context is not None and max_len > context:
        raise UserError(f"--max_seq_length {max_len} exceeds the model's context of {context} tokens")
    chat = ChatFormat.for_tokenizer(tokenizer)
    encoded = rows.map(lambda r: encode_row(r, tokenizer, chat, max_len), desc=desc)
    stats = {"truncated": _count(encoded, "truncated"), "dropped": _count(encoded, "dropped")}
    kept = encoded.filter(lambda d: not d, input_columns="dropped", desc=f"{desc}: drop over-long")
    return kept.remove_columns(["truncated", "dropped"]), stats


def _count(dataset: datasets.Dataset, flag: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task, lang, hit in zip(dataset["task"], dataset["language"], dataset[flag]):
        if hit:
            counts[f"{task}/{lang}"] = counts.get(f"{task}/{lang}", 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------- processed-data cache

def fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_stamp(path: str) -> list:
    """Sizes and modification times of local data files, so edited data invalidates the cache."""
    root = Path(os.path.expanduser(path))
    if not root.exists():
        return [path]
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [(str(p), p.stat().st_size, int(p.stat().st_mtime)) for p in files]


def load_processed(folder: Path, key: str, splits: tuple[str, ...] = ("train", "validation")
                   ) -> tuple[datasets.DatasetDict, dict] | None:
    """The cached splits and their stats, or None (absent, made with other arguments, or damaged: then rebuilt)."""
    meta_path = folder / "fingerprint.json"
    if not meta_path.exists():
        if folder.exists():
            logger.warning("processed data in %s has no fingerprint.json (damaged): rebuilding it", folder)
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        logger.warning("processed data in %s is damaged (fingerprint.json: %s): rebuilding it", folder, exc)
        return None
    if meta.get("fingerprint") != key:
        logger.info("processed data in %s was made with other data arguments: rebuilding it", folder)
        return None
    try:  # our own output, so any fault in it (deleted or truncated files) means: make it again
        data = datasets.load_from_disk(str(folder / "data"))
        if not isinstance(data, datasets.DatasetDict) or not set(splits) <= set(data):
            raise ValueError(f"it lacks the split(s) {', '.join(sorted(set(splits) - set(data or ())))}")
    except Exception as exc:  # noqa: BLE001 - whatever datasets/arrow raise for a damaged folder
        logger.warning("processed data in %s is damaged (%s): rebuilding it", folder, first_line(exc))
        return None
    return data, meta.get("stats", {})


def save_processed(folder: Path, key: str, data: datasets.DatasetDict, stats: dict, payload: dict) -> None:
    """Write to a temporary folder, then swap it in: a crash never leaves half a cache behind."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    data.save_to_disk(str(tmp / "data"))
    (tmp / "fingerprint.json").write_text(json.dumps({"fingerprint": key, "stats": stats, "arguments": payload},
                                                     indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)

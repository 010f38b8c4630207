"""Rows -> `input_ids` + `labels` with completion-only loss, and the processed-data cache.

The prompt is rendered with the model's chat template (`add_generation_prompt=True`) and tokenized on its own, exactly
as inference will tokenize it; the target and the end-of-turn token(s) follow. Every prompt token is labelled -100, so
the loss covers only the answer and the end-of-turn, which teaches the model to stop. Labels are built here, not by a
collator, so a pad token equal to the end-of-turn token cannot mask it.

Too long for `--max_seq_length`: the code inside the prompt is shortened (never the target); an example is dropped only
when even an empty prompt code cannot make it fit.
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

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class ChatFormat:
    """How a tokenizer frames a conversation: its chat template and the token ids that end an assistant turn."""

    end_of_turn_ids: tuple[int, ...]

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "ChatFormat":
        ensure_chat_template(tokenizer)
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        prompt = render_prompt(tokenizer, probe)
        full = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": "TARGET"}], tokenize=False)
        if not full.startswith(prompt) or "TARGET" not in full[len(prompt):]:
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
        suffix = full[len(prompt):].split("TARGET", 1)[1].rstrip()
        ids = tuple(tokenizer(suffix, add_special_tokens=False)["input_ids"]) if suffix else ()
        if not ids:
            if tokenizer.eos_token_id is None:
                raise ValueError("the tokenizer has neither an end-of-turn marker nor an eos token")
            ids = (tokenizer.eos_token_id,)
        return cls(ids)


def ensure_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        logger.warning("the tokenizer has no chat template: using ChatML (<|im_start|>/<|im_end|>)")
        tokenizer.chat_template = prompts.CHATML_TEMPLATE


def render_prompt(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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


def load_processed(folder: Path, key: str) -> tuple[datasets.DatasetDict, dict] | None:
    meta_path = folder / "fingerprint.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != key:
        logger.info("processed data in %s was made with other data arguments: rebuilding it", folder)
        return None
    return datasets.load_from_disk(str(folder / "data")), meta.get("stats", {})


def save_processed(folder: Path, key: str, data: datasets.DatasetDict, stats: dict, payload: dict) -> None:
    """Write to a temporary folder, then swap it in: a crash never leaves half a cache behind."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    data.save_to_disk(str(tmp / "data"))
    (tmp / "fingerprint.json").write_text(json.dumps({"fingerprint": key, "stats": stats, "arguments": payload},
                                                     indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)

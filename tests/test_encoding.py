"""Completion-only labels, end-of-turn training, truncation policy and the chat template."""

from __future__ import annotations

import logging

import pytest
from transformers import DataCollatorForSeq2Seq

from common import prompts
from common.encoding import IGNORE_INDEX, ChatFormat, encode, encode_row, prompt_ids, render_prompt
from common.data import ROW_FEATURES

ROWS = [
    {"task": "summarization", "language": "python", "id": "python:1", "source": "def add(a, b):\n    return a + b",
     "summary": "", "signature": "", "reference": "Return the sum of two numbers."},
    {"task": "generation", "language": "java", "id": "java:2", "source": "", "summary": "Return the larger value.",
     "signature": "public static int max(int a, int b)",
     "reference": "public static int max(int a, int b) {\n    return a > b ? a : b;\n}"},
    {"task": "translation", "language": "java-cs", "id": "java-cs:3", "source": "public int getCount(){return count;}",
     "summary": "", "signature": "", "reference": "public int GetCount(){return count;}"},
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["task"])
def test_unmasked_labels_decode_to_target_plus_end_of_turn(row, tokenizer):
    chat = ChatFormat.for_tokenizer(tokenizer)
    assert tokenizer.convert_ids_to_tokens(list(chat.end_of_turn_ids)) == ["<|im_end|>"]
    enc = encode_row(row, tokenizer, chat, max_len=512)
    assert not enc["dropped"] and not enc["truncated"]
    trained = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == prompts.target_text(row) + "<|im_end|>"
    n_prompt = enc["labels"].index(trained[0])
    assert all(t == IGNORE_INDEX for t in enc["labels"][:n_prompt])
    assert enc["input_ids"][n_prompt:] == trained
    # the prompt part is exactly what inference feeds the model
    assert enc["input_ids"][:n_prompt] == prompt_ids(tokenizer, prompts.build_messages(row))
    assert render_prompt(tokenizer, prompts.build_messages(row)).endswith("<|im_start|>assistant\n")


def test_summarization_target_is_framed():
    assert prompts.target_text(ROWS[0]) == "SUMMARY: Return the sum of two numbers. DONE"
    messages = prompts.build_messages(ROWS[0])
    assert messages[0]["content"].startswith("You are an expert Python developer.")
    assert messages[1]["content"] == "Summarize this Python code:\ndef add(a, b):\n    return a + b"
    gen = prompts.build_messages(ROWS[1])[1]["content"]
    assert gen == "Return the larger value.\n\nMethod to implement:\npublic static int max(int a, int b)"
    assert prompts.build_messages(ROWS[2])[1]["content"].startswith("Translate from Java to C#:\n")


def test_pad_equal_to_end_of_turn_keeps_its_label(tokenizer):
    """A collator that pads with the end-of-turn id must not turn the trained end-of-turn label into -100."""
    chat = ChatFormat.for_tokenizer(tokenizer)
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.pad_token = "<|im_end|>"
    features = [encode_row(r, tok, chat, 512) for r in ROWS[:2]]
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE_INDEX)(
        [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])
    eot = chat.end_of_turn_ids[0]
    for i, f in enumerate(features):
        n = len(f["labels"])
        assert batch["labels"][i, n - 1].item() == eot
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()


def test_overlong_code_is_truncated_never_the_target(tokenizer):
    chat = ChatFormat.for_tokenizer(tokenizer)
    long_code = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(300))
    row = dict(ROWS[0], source=long_code)
    enc = encode_row(row, tokenizer, chat, max_len=200)
    assert enc["truncated"] and not enc["dropped"]
    assert len(enc["input_ids"]) <= 200
    trained = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == prompts.target_text(row) + "<|im_end|>"
    assert "    x = x + 0" in tokenizer.decode(enc["input_ids"])


def test_example_dropped_when_target_cannot_fit(tokenizer):
    import datasets

    long_target = dict(ROWS[2], reference="public void Run(){" + " Step();" * 400 + "}")
    data = datasets.Dataset.from_list([ROWS[0], long_target, ROWS[2]], features=ROW_FEATURES)
    kept, stats = encode(data, tokenizer, max_len=240, desc="t")
    assert len(kept) == 2
    assert stats["dropped"] == {"translation/java-cs": 1}
    assert set(kept["id"]) == {"python:1", "java-cs:3"}


def test_tokenizer_without_template_falls_back_to_chatml(tokenizer, caplog):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = None
    with caplog.at_level(logging.WARNING):
        chat = ChatFormat.for_tokenizer(tok)
    assert "ChatML" in caplog.text
    assert tok.convert_ids_to_tokens(list(chat.end_of_turn_ids)) == ["<|im_end|>"]

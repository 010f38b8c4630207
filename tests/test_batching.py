"""Batching: padding-free and padded batches give the same loss; the default is chosen for the attention in use and
logged; a run records the tokens it trained on, its padding, tokens/s and peak memory."""

from __future__ import annotations

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from common.encoding import IGNORE_INDEX
from common.run_args import choose_batching, parse_args
from common.training import flat_collator, padded_collator
from conftest import base_args, read_json, run_script


def examples(tokenizer, lengths):
    """Examples of the given lengths, the first third of each a masked prompt."""
    out = []
    for n, length in enumerate(lengths):
        ids = [(7 * i + 11 * n) % (len(tokenizer) - 10) + 5 for i in range(length)]
        prompt = length // 3
        out.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return out


@pytest.mark.parametrize("four_bit", [False, True])
def test_padding_free_loss_equals_the_padded_loss(tiny_model, four_bit):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    kwargs = {"dtype": torch.float32}
    if four_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa", **kwargs).eval()
    batch = examples(tokenizer, [37, 120, 64, 9, 250, 101])
    padded = padded_collator(tokenizer)([dict(e) for e in batch])
    flat = flat_collator()([dict(e) for e in batch])
    assert flat["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in batch))  # no padding at all
    assert padded["input_ids"].shape[1] >= 250 and padded["input_ids"].shape[1] % 8 == 0
    assert flat["position_ids"][0, :37].tolist() == list(range(37)) and flat["position_ids"][0, 37] == 0
    assert model.config.use_cache  # as the models come; the collator turns the cache off for its batches
    model.train()  # as the Trainer calls it (dropout is 0 in the tiny model)
    with torch.no_grad():
        loss_padded = model(**padded).loss
        loss_flat = model(**flat).loss
    assert loss_flat.item() == pytest.approx(loss_padded.item(), abs=1e-5)
    # with a cache (or without restarting positions) the flattened examples attend to each other: another loss
    with torch.no_grad():
        cached = model(**{k: v for k, v in flat.items() if k != "use_cache"}).loss
        crossed = model(input_ids=flat["input_ids"], labels=flat["labels"], use_cache=False).loss
    assert abs(cached.item() - loss_padded.item()) > 1e-4
    assert abs(crossed.item() - loss_padded.item()) > 1e-4


def test_the_default_is_chosen_for_the_attention(tiny_model, tmp_path):
    run = parse_args("multitask", "qlora", base_args(tiny_model, tmp_path / "a"))
    assert (run.data.packing, run.training.train_sampling_strategy) == (False, "group_by_length")
    assert any(n.startswith("batching: padded to the longest example of each batch, group_by_length order, chosen "
                            "for sdpa") for n in run.notes)
    run = parse_args("multitask", "qlora", base_args(tiny_model, tmp_path / "b", packing=True))
    assert (run.data.packing, run.training.train_sampling_strategy) == (True, "random")
    assert "batching: padding-free (the examples of a batch flattened into one sequence), random order (as given)" \
        in run.notes
    run = parse_args("multitask", "qlora", base_args(tiny_model, tmp_path / "c", train_sampling_strategy="random"))
    assert (run.data.packing, run.training.train_sampling_strategy) == (False, "random")
    # a variable-length kernel (flash-attn is not installed here, so the choice is checked on its own)
    values = {"attn_implementation": "flash_attention_2", "train_sampling_strategy": "random", "packing": None}
    note = choose_batching(values, set())
    assert (values["packing"], values["train_sampling_strategy"]) == (True, "random")
    assert "chosen for flash_attention_2 attention" in note
    values = {"attn_implementation": "eager", "train_sampling_strategy": "random", "packing": None}
    choose_batching(values, set())
    assert (values["packing"], values["train_sampling_strategy"]) == (False, "group_by_length")


@pytest.mark.parametrize("packing", [False, True])
def test_a_run_records_its_tokens_padding_and_memory(tiny_model, tmp_path, packing):
    out = tmp_path / "run"
    assert run_script("multitask", "qlora", tiny_model, out, max_steps=None, num_train_epochs=1, eval_strategy="no",
                      save_processed_data=True, packing=packing) == 0
    train = datasets.load_from_disk(str(out / "processed_data" / "data"))["train"]
    results = read_json(out / "train_results.json")
    assert results["train_tokens"] == sum(len(ids) for ids in train["input_ids"])  # every example once, no padding
    assert results["train_tokens_per_second"] == pytest.approx(results["train_tokens"] / results["train_runtime"],
                                                               rel=1e-3)
    assert results["peak_memory_mb"] > 50
    if packing:
        assert results["padding_fraction"] == 0.0
    else:
        assert 0 < results["padding_fraction"] < 0.5
    logs = [e for e in read_json(out / "trainer_state.json")["log_history"] if "loss" in e]
    assert logs and all(e["tokens_per_second"] > 0 for e in logs)
    assert read_json(out / "run_config.json")["arguments"]["data"]["packing"] is packing


def test_evaluation_keeps_two_numbers_and_one_label_per_example(tiny_model, tmp_path):
    """The per-task eval loss needs (summed loss, token count) per example: that, and one label column, is all the
    Trainer accumulates, so evaluation memory does not grow with the logits or the padded labels of every item."""
    from transformers import TrainingArguments

    from common.training import TaskTrainer, per_task_metrics

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    items = examples(tokenizer, [40, 300, 90, 17, 210, 64, 128])
    tasks = ["a", "b", "a", "b", "a", "b", "a"]
    trainer = TaskTrainer(model=model, args=TrainingArguments(str(tmp_path), per_device_eval_batch_size=3,
                                                              report_to=[], use_cpu=True, label_names=["labels"]),
                          data_collator=padded_collator(tokenizer), compute_metrics=per_task_metrics(tasks))
    output = trainer.predict(datasets.Dataset.from_list(items))
    assert output.predictions.shape == (7, 2) and output.label_ids.shape == (7, 1)
    expected = {}
    with torch.no_grad():
        for item, task in zip(items, tasks):
            labels = torch.tensor([item["labels"]])
            n = int((labels[0, 1:] != IGNORE_INDEX).sum())
            loss = model(input_ids=torch.tensor([item["input_ids"]]), labels=labels).loss.item()
            acc = expected.setdefault(task, [0.0, 0])
            acc[0] += loss * n
            acc[1] += n
    for task, (total, count) in expected.items():
        assert output.metrics[f"test_{task}_loss"] == pytest.approx(total / count, rel=1e-5)

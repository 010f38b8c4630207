"""Batched greedy generation for evaluation (loading a trained run is common.modeling's `load_for_inference`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], stop_ids: list[int], max_new_tokens: int,
             batch_size: int = 8, desc: str = "generate", done: dict[int, str] | None = None,
             on_batch: Callable[[dict[int, str]], None] | None = None,
             shard: tuple[int, int] | None = None) -> list[str]:
    """Greedy completions of tokenized prompts, batched with left padding, stopping at any of `stop_ids`.

    Batches depend only on the prompts and `batch_size`, never on what is `done` (outputs by prompt index, from an
    earlier, interrupted run): a batch whose outputs are all there is skipped, any other is generated whole and
    handed to `on_batch`, so a resumed run computes exactly the batches an uninterrupted one would. `shard` (I, N)
    generates only every N-th batch from the I-th (the others come back empty): N shards together compute the same
    batches as one whole run.
    """
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(prompts)
    done = done or {}
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    starts = range(0, len(order), batch_size)
    if shard is not None:
        starts = starts[shard[0]::shard[1]]
    for start in tqdm(starts, desc=desc, unit="batch"):
        batch = order[start: start + batch_size]
        if all(i in done for i in batch):
            for i in batch:
                outputs[i] = done[i]
            continue
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                   max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad,
                                   temperature=None, top_p=None, top_k=None)
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(_until_stop(generated[row, width:].tolist(), stop_ids),
                                          skip_special_tokens=True)
        if on_batch is not None:
            on_batch({i: outputs[i] for i in batch})
    return outputs


def _until_stop(tokens: list[int], stop_ids: list[int]) -> list[int]:
    for k, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:k]
    return tokens

"""Code translation: Java -> C# and C# -> Java, every pair used in both directions.

Data: CodeXGLUE code_to_code_trans (`id`, `java`, `cs`; no configs). Metrics: CodeBLEU (java / c_sharp), BLEU, exact
match, code quality on the outputs reformatted one statement per line, as the study analysed its translations.
"""

from __future__ import annotations

from common.languages import direction
from common.tasks import TaskSpec, register

NAME = "translation"
HUB = "google/code_x_glue_cc_code_to_code_trans"
SYSTEM = ("You are an expert code translator. Translate code from the source language to the target language. "
          "Preserve semantics, be idiomatic in the target language, and output only the translated code, no "
          "explanations.")


def rows(data, pair: str, split: str, n: int, seed: int, raw=None) -> list[dict]:
    from common.data import load_task_split, make_row, sample, usable
    from common.sources import require_columns

    flag, source = SPEC.source(data)
    if raw is None:
        raw = load_task_split(SPEC, data, pair, split)
    src, tgt = (lang.name for lang in direction(pair))
    require_columns(raw, (src, tgt), source, flag)
    raw = usable(sample(raw, n, seed), (src, tgt), f"{NAME} {split}")  # the same pairs, both directions
    return [make_row(NAME, pair, rid, source=s.strip(), reference=t.strip())
            for rid, s, t in zip(raw["id"], raw[src], raw[tgt])]


def messages(row: dict, source: str | None = None) -> list[dict]:
    src, tgt = direction(row["language"])
    code = row["source"] if source is None else source
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Translate from {src.display} to {tgt.display}:\n{code}"}]


def target(row: dict) -> str:
    return row["reference"]


def answer_language(pair: str) -> str:
    return direction(pair)[1].name


def score(context, lang: str, answers: list[str], items: list[dict]) -> tuple[dict, list[dict]]:
    from common import metrics

    return metrics.code_scores(answers, [it["reference"] for it in items], lang)


def _extract(text: str, lang: str) -> str:
    from common.extraction import extract_code

    return extract_code(text, lang)


SPEC = register(TaskSpec(
    name=NAME, summary="Java <-> C#", groups="directions", data_flag="translation_dataset", data_default=HUB,
    data_help="Java<->C# pairs (columns id, java, cs): hub id or local path.", demo_data="code_to_code_trans", rows=rows,
    messages=messages, target=target, extract=_extract, score=score, answer_language=answer_language,
    truncatable=True, quality_reformat=True, in_default_mixture=True, training_defaults={"warmup_steps": 100},
    main_metrics=("codebleu", "bleu", "exact_match"),
    tokenizer_texts=(SYSTEM,),
))

"""Code summarization: Java or Python code -> its docstring, answered as `SUMMARY: ... DONE`.

Data: CodeXGLUE code_to_text (`code`, `docstring`; the study's evaluation files `id`, `code`, `reference_summary`).
With --remove_docstring (the default) a Python input loses its docstring, which is the reference; a Java input loses
the comment in front of the method. Metrics: BLEU, chrF, ROUGE, METEOR, exact match, and BERTScore and (Java) SIDE
when their models are given.
"""

from __future__ import annotations

import re

from common.code_parts import remove_java_comment, remove_python_docstring
from common.languages import language
from common.tasks import TaskSpec, register

NAME = "summarization"
HUB = "google/code_x_glue_ct_code_to_text"


def rows(data, lang: str, split: str, n: int, seed: int, raw=None) -> list[dict]:
    """Code-to-text rows; the reference is `docstring`, or `reference_summary` (the study's evaluation files)."""
    from common.data import load_task_split, make_row, sample, usable
    from common.sources import require_columns

    flag, source = SPEC.source(data)
    if raw is None:
        raw = load_task_split(SPEC, data, lang, split)
    reference = "reference_summary" if "docstring" not in raw.column_names and \
        "reference_summary" in raw.column_names else "docstring"
    if reference not in raw.column_names:
        reference = "docstring (or reference_summary)"
    require_columns(raw, ("code", reference), source, flag)
    raw = usable(sample(raw, n, seed), ("code", reference), f"{NAME} {lang} {split}")
    out = []
    for rid, code, doc in zip(raw["id"], raw["code"], raw[reference]):
        if data.remove_docstring:
            code = remove_python_docstring(code) if lang == "python" else remove_java_comment(code)
        out.append(make_row(NAME, lang, rid, source=code, reference=doc.strip()))
    return out


def messages(row: dict, source: str | None = None) -> list[dict]:
    lang = language(row["language"]).display
    code = row["source"] if source is None else source
    return [{"role": "system", "content": f"You are an expert {lang} developer. Provide clear and concise "
                                          f"summarization for {lang} code segments."},
            {"role": "user", "content": f"Summarize this {lang} code:\n{code}"}]


def target(row: dict) -> str:
    return f"SUMMARY: {row['reference']} DONE"


def extract(text: str, lang: str = "") -> str:
    """The summary: after a `SUMMARY:` frame if there is one, up to the `DONE` that ends the trained answer."""
    frame = re.search(r"SUMMARY:\s*", text, re.IGNORECASE)
    if frame:
        text = text[frame.end():]
    # cut at the DONE that ends the answer, not at a "DONE" inside the sentence
    return re.split(r"\s*\bDONE\b\s*(?:\n|$)", text.strip(), maxsplit=1)[0].strip()


def score(context, lang: str, answers: list[str], items: list[dict]) -> tuple[dict, list[dict]]:
    """The study's summary metrics; BERTScore and (Java) SIDE when their models were given, else a note."""
    from common import metrics

    corpus, each = metrics.text_scores(answers, [it["reference"] for it in items])
    ok, reason = metrics.meteor_status()
    if not ok:
        context.note(f"meteor is absent: {reason}")
    args = context.args
    if args.bertscore_model:
        corpus.update(metrics.bertscore_scores(args.bertscore_model, answers, items, each, context, f"{NAME}/{lang}"))
    else:
        context.note("bertscore is absent: give --bertscore_model PATH (a local copy of bert-base-uncased)")
    if lang == "java":  # SIDE is a Java model
        if args.side_model:
            corpus.update(metrics.side_scores(args.side_model, answers, items, each))
        else:
            context.note("side is absent: give --side_model PATH (a local SIDE checkpoint)")
    return corpus, each


SPEC = register(TaskSpec(
    name=NAME, summary="code -> docstring", groups="languages", data_flag="summarization_dataset", data_default=HUB,
    data_help="Code-to-text data (configs java, python): hub id, local path, or one evaluation file.",
    demo_data="code_to_text", rows=rows,
    messages=messages, target=target, extract=extract, score=score, truncatable=True, code_answer=False,
    max_new_tokens=128, in_default_mixture=True, eval_flags=("bertscore_model", "side_model"),
    main_metrics=("bleu", "meteor", "rougeL", "chrf", "bertscore_f1", "side"),
))

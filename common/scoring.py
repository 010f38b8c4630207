"""Scoring an evaluation: per task and language/direction, every metric and code-quality measure, per item and per
group, and `overall` over the groups; pass@1 by local execution or by CoderEval's harness verdicts.
"""

from __future__ import annotations

import logging

from common.errors import UserError
from common.eval_args import EvalArguments
from common.extraction import answer_language

logger = logging.getLogger("common")


def score(items: list[dict], answers: list[str], args: EvalArguments,
          notes: list[str] | None = None) -> tuple[dict, list[dict], dict, list]:
    """(metrics, per-item scores, quality summary, per-item quality) grouped by task and language/direction; what
    the reader of the numbers should know goes into `notes` (returned in the metrics)."""
    from common import metrics as m

    per_item: list[dict] = [{} for _ in items]
    per_quality: list[dict | None] = [None for _ in items]
    results: dict = {}
    quality_summary: dict = {}
    notes = [] if notes is None else notes
    for task in sorted({it["task"] for it in items}):
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            if it["task"] == task:
                groups.setdefault(it["language"], []).append(i)
        task_results = {}
        for group, idx in sorted(groups.items()):
            lang = answer_language(task, group)
            corpus: dict = {}
            referenced = [i for i in idx if items[i]["reference"]]  # CoderEval HumanLabel items have none
            if referenced:
                preds = [answers[i] for i in referenced]
                refs = [items[i]["reference"] for i in referenced]
                if task == "summarization":
                    corpus, each = m.summarization_scores(preds, refs)
                    corpus.update(_embedding_scores(args, group, preds, refs, [items[i]["source"] for i in referenced],
                                                    each, notes))
                else:
                    corpus, each = m.code_scores(preds, refs, lang)
                for i, e in zip(referenced, each):
                    per_item[i].update(e)
                if len(referenced) < len(idx):
                    corpus["scored"] = len(referenced)
                    notes.append(f"{task}/{group}: {len(idx) - len(referenced)} items have no reference, so only "
                                 f"{len(referenced)} are scored by similarity")
            else:
                notes.append(f"{task}/{group}: the items carry no reference, so there are no similarity metrics")
            if task != "summarization":
                corpus.update(_pass_at_1(items, answers, idx, args.timeout, per_item, notes, f"{task}/{group}"))
                if args.quality:
                    from common.quality import measure_quality, summarize_quality

                    # the study reformatted translations one statement per line before its static analysis
                    q = measure_quality([answers[i] for i in idx], lang, reformat=task == "translation",
                                        pmd=args.pmd)  # PMD measures Java only
                    quality_summary.setdefault(task, {})[group] = summarize_quality(q, lang)
                    for i, qi in zip(idx, q):
                        per_quality[i] = qi
            task_results[group] = dict(corpus, n=len(idx))
        task_results["overall"] = _overall(task_results)
        results[task] = task_results
    if args.quality and not args.pmd and any(answer_language(it["task"], it["language"]) == "java"
                                             for it in items if it["task"] != "summarization"):
        notes.append("pmd is absent: give --pmd PATH (a PMD 7 installation) for the study's PMD counts of Java code")
    if any(it["task"] == "summarization" for it in items):
        ok, reason = m.meteor_status()
        if not ok:
            notes.append(f"meteor is absent: {reason}")
        if not args.bertscore_model:
            notes.append("bertscore is absent: give --bertscore_model PATH (a local copy of bert-base-uncased)")
        if not args.side_model and any(it["task"] == "summarization" and it["language"] == "java" for it in items):
            notes.append("side is absent: give --side_model PATH (a local SIDE checkpoint)")
    return {"tasks": results, "notes": notes}, per_item, quality_summary, per_quality


def _embedding_scores(args, group, preds, refs, codes, each, notes) -> dict:
    """BERTScore and (Java) SIDE of a summarization group, into `each`; their means over the items that have them.
    The models were checked when the arguments were parsed."""
    from common import embedding_metrics as em

    corpus = {}
    if args.bertscore_model:
        values = em.bertscore(preds, refs, args.bertscore_model)
        for item, value in zip(each, values):
            item.update(value or {})
        scored = [v for v in values if v is not None]
        corpus["bertscore_pairs"] = len(scored)
        if scored:
            corpus.update({k: sum(v[k] for v in scored) / len(scored) for k in em.BERTSCORE_KEYS})
        if len(scored) < len(values):
            notes.append(f"summarization/{group}: bertscore over the {len(scored)} of {len(values)} items whose "
                         f"prediction and reference are non-empty (as the study computed it)")
    if args.side_model and group == "java":
        values = em.side(codes, preds, args.side_model)
        for item, value in zip(each, values):
            item["side"] = value
        corpus["side"] = sum(values) / len(values)
    return corpus


def _pass_at_1(items, answers, idx, timeout, per_item, notes, where) -> dict:
    """pass@1 of a group, into `per_item` too: by the CoderEval harness's verdicts (over all items, a missing verdict
    is a fail), else by executing the items that have tests here (over those; `executed` says how many)."""
    judged = [i for i in idx if "verdict" in (items[i].get("extra") or {})]
    if judged:
        missing = [items[i]["id"] for i in judged if items[i]["extra"]["verdict"] is None]
        for i in judged:
            per_item[i]["pass@1"] = items[i]["extra"]["verdict"] or 0
        if missing:
            notes.append(f"{where}: {len(missing)} of {len(judged)} tasks have no verdict in --codereval_results and "
                         f"count as failed: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return {"pass@1": sum(per_item[i]["pass@1"] for i in judged) / len(judged),
                "executed": len(judged) - len(missing), "no_verdict": len(missing)}
    tests = [i for i in idx if _program(items[i], answers[i]) is not None]
    if not tests:
        if any((items[i].get("extra") or {}).get("codereval_id") for i in idx):
            notes.append(f"{where}: CoderEval tasks run in CoderEval's Docker harness: write its input with "
                         f"--export_codereval, run it, and rescore with --codereval_results for pass@1")
        return {}
    from common.execution import execute_programs

    results = execute_programs([_program(items[i], answers[i]) for i in tests], timeout=timeout)
    for i, r in zip(tests, results):
        per_item[i]["pass@1"] = int(r.passed)
    return {"pass@1": sum(per_item[i]["pass@1"] for i in tests) / len(tests), "executed": len(tests)}


COUNTS = ("n", "scored", "bertscore_pairs", "executed", "no_verdict")  # summed; every other value is averaged


def _overall(groups: dict) -> dict:
    """One group: its values. Several: the counts summed, every other value the mean of the groups' values weighted
    by the items behind it (similarity: the scored items; BERTScore: its non-empty pairs; pass@1: the items it is
    over)."""
    if len(groups) == 1:
        return dict(next(iter(groups.values())))
    out = {key: sum(_count(g, key) for g in groups.values())
           for key in COUNTS if any(key in g for g in groups.values())}
    for key in sorted({k for g in groups.values() for k in g} - set(COUNTS)):
        def weight(g):
            if key == "pass@1":
                return g["executed"] + g.get("no_verdict", 0)
            return g["bertscore_pairs"] if key.startswith("bertscore_") else _count(g, "scored")
        having = [g for g in groups.values() if key in g and weight(g)]
        if having:
            out[key] = sum(g[key] * weight(g) for g in having) / sum(weight(g) for g in having)
    return out


def _count(group: dict, key: str) -> int:
    """A group's count; `scored` is written only where it differs from `n` (some items have no reference)."""
    if key == "scored" and key not in group:
        return group["n"] if "exact_match" in group else 0
    return group.get(key, 0)


def _program(item: dict, answer: str) -> str | None:
    extra = item.get("extra") or {}
    if "humaneval" in extra:
        from common.benchmarks import humaneval_program

        return humaneval_program(extra["humaneval"], answer)
    if extra.get("test") and item["language"] == "python":
        return f"{answer}\n\n{extra['test']}\n"
    return None


def attach_verdicts(items: list[dict], answers: list[str], paths: list[str], notes: list[str]) -> None:
    """Give each CoderEval item its harness verdict (`extra["verdict"]`: 1 pass, 0 fail, None no verdict)."""
    from common.codereval import read_codereval_results

    verdicts = read_codereval_results(paths)
    ours = [(it, a) for it, a in zip(items, answers) if (it.get("extra") or {}).get("codereval_id") is not None]
    differ = 0
    for it, answer in ours:
        verdict = verdicts.get(it["extra"]["codereval_id"])
        it["extra"]["verdict"] = None if verdict is None else verdict["passed"]
        if verdict is not None and verdict["code"] is not None and verdict["code"].strip() != answer.strip():
            differ += 1
    for language in sorted({it["language"] for it, _ in ours}):
        if all(it["extra"]["verdict"] is None for it, _ in ours if it["language"] == language):
            raise UserError(f"--codereval_results: no verdict for any of the {language} tasks; give the harness "
                            f"output of each language, comma-separated")
    if differ:
        message = (f"{differ} of the --codereval_results verdicts are for code other than the predictions scored "
                   f"here: check that the harness ran this run's export")
        logger.warning("%s", message)
        notes.append(message)

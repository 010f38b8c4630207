"""Scoring an evaluation: per task and language/direction, every metric and code-quality measure, per item and per
group, and `overall` over the groups; pass@1 by local execution or by CoderEval's harness verdicts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.errors import UserError
from common.eval_args import EvalArguments
from common.tasks import get

logger = logging.getLogger("common")


@dataclass
class ScoreContext:
    """What a task's `score` may use besides its answers: the evaluation's arguments and the notes to the reader."""

    args: EvalArguments
    notes: list[str]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def score(items: list[dict], answers: list[str], args: EvalArguments,
          notes: list[str] | None = None) -> tuple[dict, list[dict], dict, list]:
    """(metrics, per-item scores, quality summary, per-item quality) grouped by task and language/direction; what
    the reader of the numbers should know goes into `notes` (returned in the metrics)."""
    context = ScoreContext(args, [] if notes is None else notes)
    per_item: list[dict] = [{} for _ in items]
    per_quality: list[dict | None] = [None for _ in items]
    results: dict = {}
    quality_summary: dict = {}
    for task in sorted({it["task"] for it in items}):
        spec = get(task)
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            if it["task"] == task:
                groups.setdefault(it["language"], []).append(i)
        task_results = {}
        for group, idx in sorted(groups.items()):
            lang = spec.answer_language(group)
            corpus: dict = {}
            referenced = [i for i in idx if items[i]["reference"]]  # CoderEval HumanLabel items have none
            if referenced:
                corpus, each = spec.score(context, lang, [answers[i] for i in referenced],
                                          [items[i] for i in referenced])
                for i, e in zip(referenced, each):
                    per_item[i].update(e)
                if len(referenced) < len(idx):
                    corpus["scored"] = len(referenced)
                    context.note(f"{task}/{group}: {len(idx) - len(referenced)} items have no reference, so only "
                                 f"{len(referenced)} are scored by similarity")
            else:
                context.note(f"{task}/{group}: the items carry no reference, so there are no similarity metrics")
            if spec.code_answer:
                corpus.update(_pass_at_1(items, answers, idx, args.timeout, per_item, context, f"{task}/{group}"))
                if args.quality:
                    from common.quality import measure_quality, summarize_quality

                    q = measure_quality([answers[i] for i in idx], lang, reformat=spec.quality_reformat,
                                        pmd=args.pmd)  # PMD measures Java only
                    quality_summary.setdefault(task, {})[group] = summarize_quality(q, lang)
                    for i, qi in zip(idx, q):
                        per_quality[i] = qi
                    if lang == "java" and not args.pmd:
                        context.note("pmd is absent: give --pmd PATH (a PMD 7 installation) for the study's PMD "
                                     "counts of Java code")
            task_results[group] = dict(corpus, n=len(idx))
        task_results["overall"] = overall(task_results)
        results[task] = task_results
    return {"tasks": results, "notes": context.notes}, per_item, quality_summary, per_quality


def _pass_at_1(items, answers, idx, timeout, per_item, context: ScoreContext, where) -> dict:
    """pass@1 of a group, into `per_item` too: by the CoderEval harness's verdicts (over all items, a missing verdict
    is a fail), else by executing the items that have tests here (over those; `executed` says how many)."""
    judged = [i for i in idx if "verdict" in (items[i].get("extra") or {})]
    if judged:
        missing = [items[i]["id"] for i in judged if items[i]["extra"]["verdict"] is None]
        for i in judged:
            per_item[i]["pass@1"] = items[i]["extra"]["verdict"] or 0
        if missing:
            context.note(f"{where}: {len(missing)} of {len(judged)} tasks have no verdict in --codereval_results and "
                         f"count as failed: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return {"pass@1": sum(per_item[i]["pass@1"] for i in judged) / len(judged),
                "executed": len(judged) - len(missing), "no_verdict": len(missing)}
    tests = [i for i in idx if _program(items[i], answers[i]) is not None]
    if not tests:
        if any((items[i].get("extra") or {}).get("codereval_id") for i in idx):
            context.note(f"{where}: CoderEval tasks run in CoderEval's Docker harness: write its input with "
                         f"--export_codereval, run it, and rescore with --codereval_results for pass@1")
        return {}
    from common.execution import execute_programs

    results = execute_programs([_program(items[i], answers[i]) for i in tests], timeout=timeout,
                               unsafe=context.args.unsafe_execution)
    for i, r in zip(tests, results):
        per_item[i]["pass@1"] = int(r.passed)
    return {"pass@1": sum(per_item[i]["pass@1"] for i in tests) / len(tests), "executed": len(tests)}


COUNTS = ("n", "scored", "bertscore_pairs", "executed", "no_verdict")  # summed; every other value is averaged


def overall(groups: dict) -> dict:
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


def executes_tests(item: dict) -> bool:
    """Whether scoring runs this item's tests here (HumanEval, or a Python item that carries its tests)."""
    return _program(item, "") is not None


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

"""report.md: an evaluation's metrics.json rendered as tables."""

from __future__ import annotations


def render_report(report: dict) -> str:
    lines = [f"# Evaluation: {report['task']}", "",
             f"- system: {report['system']}", f"- benchmark: {report['benchmark']}, split: {report['split']}",
             *(f"- {task} test file: {path}" for task, path in report.get("test_files", {}).items()),
             f"- items: {report['num_items']}", *_execution(report.get("execution")), ""]
    for task, groups in report["metrics"].items():
        keys = list(dict.fromkeys(k for g in groups.values() for k in g if k != "n"))
        lines += [f"## {task}", "", "| group | n | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for group, values in groups.items():
            cells = [_fmt(k, values.get(k)) for k in keys]
            lines.append(f"| {group} | {values['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    for task, groups in report["quality"].items():  # many keys, few groups: one row per key
        names = list(groups)
        lines += [f"## Code quality: {task}", "", "| measure | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for key in dict.fromkeys(k for g in groups.values() for k in g):
            lines.append(f"| {key} | " + " | ".join(_fmt(key, groups[g].get(key)) for g in names) + " |")
        lines.append("")
    lines += ["## Metric definitions", "",
              "bleu and chrf: means of sacreBLEU sentence scores (as the study reports them); corpus_bleu and "
              "corpus_chrf: pooled corpus scores; rouge*: rouge-score F1 with stemming; meteor: nltk; bertscore_*: "
              "bert-score (bert-base-uncased, layer 12, no idf, no rescaling, non-empty pairs); side: cosine of the "
              "SIDE embeddings of code and summary. codebleu: the codebleu package over all items of a group "
              "(order-stable data flow), codebleu_mean: the mean of the items' values. All of these are on 0-100; "
              "exact_match and pass@1 are fractions. pass@1: greedy output executed with the benchmark's tests in a "
              "sandbox (see `execution` in metrics.json), or CoderEval's harness verdicts (a task without one fails). Code quality: sums over "
              "items of the study's per-item columns (lizard, pylint, PMD), `_mean` per item. `overall` over "
              "several languages or directions weights each group's value by its items.", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def _execution(layers: dict | None) -> list[str]:
    if not layers:
        return []
    if layers.get("tool") == "none":
        return ["- generated code ran WITHOUT a sandbox (--unsafe_execution)"]
    return [f"- generated code ran in a sandbox: {layers['tool']}, namespaces {', '.join(layers.get('namespaces', []))}"
            f", network {'on' if layers.get('network') else 'off'}"]


FRACTIONS = ("exact_match", "pass@1", "parse_rate", "detection_rate_mean")  # the rest are 0-100 scores or counts


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if key in FRACTIONS else f"{value:.2f}"
    return str(value)

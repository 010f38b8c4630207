"""The outputs of a comparison: compare.csv (one row per test), compare.md (the same as tables, significant rows in
bold), compare.json (arguments, notes, rows) and the bar charts of each task's means per configuration."""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from common.files import write_json, write_text
from common.per_item import Run

if TYPE_CHECKING:
    from common.compare import CompareArguments

COLUMNS = ("task", "language", "metric", "config_a", "config_b", "n", "mean_a", "mean_b", "test", "statistic",
           "p_value", "p_holm", "effect_size", "magnitude", "ci_low", "ci_high")
EXTRA_COLUMNS = ("a_only", "b_only", "note")  # McNemar's discordant counts; what the reader should know
OUTPUTS = ("compare.csv", "compare.md", "compare.json")
ALPHA = 0.05


def p_column(adjust: str) -> str:
    return {"holm": "p_holm", "bh": "p_bh", "none": "p_unadjusted"}[adjust]


def significant(row: dict, adjust: str) -> bool:
    p = row[p_column(adjust)]
    return not math.isnan(p) and p < ALPHA


def write_outputs(out: Path, rows: list[dict], notes: list[str], runs: list[Run],
                  args: CompareArguments) -> None:
    columns = [p_column(args.adjust) if c == "p_holm" else c for c in COLUMNS] + list(EXTRA_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c, "")) for c in columns})
    write_text(out / "compare.csv", buffer.getvalue())
    charts = write_charts(out, runs)
    write_text(out / "compare.md", render_markdown(rows, notes, args, charts))
    write_json(out / "compare.json", {"arguments": asdict(args), "notes": notes, "rows": rows,
                                      "charts": [c.name for c in charts]})


def _csv_value(value):
    if isinstance(value, float):
        return "NA" if math.isnan(value) else repr(value)
    return value


def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NA"
        if value.is_integer() and abs(value) >= 1:  # a count or a rank sum
            return str(int(value))
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def render_markdown(rows: list[dict], notes: list[str], args: CompareArguments,
                    charts: list[Path]) -> str:
    adjusted = p_column(args.adjust)
    lines = ["# Paired comparison", "",
             f"Items paired by (task, language/direction, id). McNemar for 0/1 metrics "
             f"({'exact binomial' if args.exact else 'chi-square with continuity correction'}; effect: odds ratio "
             f"(a_only + 0.5) / (b_only + 0.5)), else Wilcoxon signed-rank (normal approximation, zero differences "
             f"dropped; effect: Cliff's delta of A over B). Adjusted p: {args.adjust} over all {len(rows)} tests. "
             f"CI: seeded bootstrap 95% interval of mean(A - B). **Bold** rows: adjusted p < {ALPHA}.", ""]
    sections: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        sections[(row["config_a"], row["config_b"], row["task"], row["language"])].append(row)
    for (a, b, task, language), group in sections.items():
        lines += [f"## {a} vs {b}: {task} / {language}", "",
                  f"| metric | n | mean {a} | mean {b} | test | statistic | p | {adjusted} | effect | magnitude | "
                  f"95% CI of A - B | note |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in group:
            mark = (lambda s: f"**{s}**") if significant(r, args.adjust) else (lambda s: s)
            effect = f"OR {_fmt(r['effect_size'])} ({r['a_only']}/{r['b_only']})" if r["test"].startswith(
                "mcnemar") else _fmt(r["effect_size"])
            lines.append("| " + " | ".join([
                mark(r["metric"]), str(r["n"]), _fmt(r["mean_a"]), _fmt(r["mean_b"]), r["test"],
                _fmt(r["statistic"]), _fmt(r["p_value"]), mark(_fmt(r[adjusted])), effect, r["magnitude"],
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", r["note"]]) + " |")
        lines.append("")
    if charts:
        lines += ["## Charts", ""] + [f"![{c.stem}]({c.name})" for c in charts] + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def write_charts(out: Path, runs: list[Run]) -> list[Path]:
    """Per task, one chart of its main metrics' means per configuration (its TaskSpec's `main_metrics` where the runs
    have them, else every metric), and one of its code-quality means; over the items every run holds, so that the
    bars compare the same items."""
    from common import tasks
    from common.plots import bar_charts

    shared = set.intersection(*(set(r.items) for r in runs))
    quality = set().union(*(r.quality for r in runs))
    charts = []
    for task in sorted({k[0] for k in shared}):
        for kind, is_quality in (("metrics", False), ("quality", True)):
            values: dict[str, dict[str, float]] = {}
            for language in sorted({k[1] for k in shared if k[0] == task}):
                keys = [k for k in shared if k[:2] == (task, language)]
                found = [m for m in dict.fromkeys(m for k in keys for m in runs[0].items[k])
                         if (m in quality) == is_quality]
                main = tasks.TASKS[task].main_metrics if task in tasks.TASKS and not is_quality else ()
                for metric in [m for m in main if m in found] or found:
                    means = {}
                    for run in runs:
                        got = [run.items[k].get(metric) for k in keys]
                        got = [v for v in got if v is not None]
                        if got:
                            means[run.name] = sum(got) / len(got)
                    if len(means) == len(runs):
                        values[f"{metric} ({language})"] = means
            if values:
                name = f"{_slug(task)}-{kind}.png"
                title = f"{task}: {'code quality' if is_quality else 'metrics'}, mean per item"
                charts.append(bar_charts(out / name, title, values))
    return charts


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)

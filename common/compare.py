"""Paired comparison of evaluated configurations: the study's statistics over per-item scores, paired by item id.

    python -m common.compare --runs MT-QLoRA=runs/mt/eval-multitask-test MT-FFT=runs/fft/eval-multitask-test \\
        --output_dir runs/compare-mt-qlora-vs-mt-fft

A run is `NAME=SOURCE[,SOURCE...]`; the items of its sources are merged. A source is an evaluation folder (its
predictions.jsonl: every per-item score and code-quality value), a predictions.jsonl, or a per-item CSV file (an id
column and one column per metric, the layout of the study's published per-item values) preceded by `TASK/LANGUAGE:`
or described by --task and --language. Items pair by (task, language/direction, id), never by position. For every
pair of runs (--pairs A:B,... or all), task, language and metric in both: McNemar for 0/1 metrics, else Wilcoxon
signed-rank; one multiple-testing correction over every test of the invocation; Cliff's delta (the odds ratio of
the discordant pairs for McNemar); a bootstrap interval of the mean difference (`common.stats`).
Writes compare.csv, compare.md, compare.json and PNG charts into --output_dir.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import stats
from common.compare_report import ALPHA, OUTPUTS, p_column, significant, write_outputs
from common.errors import UserError
from common.per_item import Key, Run, read_runs

logger = logging.getLogger("common")


@dataclass
class CompareArguments:
    runs: list[str] = field(default_factory=list, metadata={"help": (
        "Two or more NAME=SOURCE[,SOURCE...]: SOURCE is an evaluation folder, a predictions.jsonl, or a per-item CSV "
        "(optionally TASK/LANGUAGE:file.csv); the sources of one name are merged"), "nargs": "+"})
    output_dir: str | None = field(default=None, metadata={"help": "Folder for compare.csv, compare.md, "
                                                                   "compare.json and the charts"})
    pairs: str | None = field(default=None, metadata={"help": (
        "Comparisons to make, A:B,C:D (A is the first run: its effect sizes are of A over B); default every pair in "
        "the order of --runs")})
    intersect: bool = field(default=False, metadata={"help": (
        "Compare only the items both runs hold (says how many were dropped); default: refuse runs whose items "
        "differ")})
    exact: bool = field(default=False, metadata={"help": "McNemar's exact binomial version instead of the "
                                                         "continuity-corrected chi-square"})
    adjust: str = field(default="holm", metadata={"help": (
        "Multiple-testing correction over all tests of this invocation: holm (the study's), bh "
        "(Benjamini-Hochberg) or none; one invocation per family (the study: one table and model size)"),
        "choices": ["holm", "bh", "none"]})
    metrics: str | None = field(default=None, metadata={"help": (
        "Only these metrics, comma-separated (they make the family); default every per-item metric both runs hold")})
    binary_test: str = field(default="mcnemar", metadata={"help": (
        "Test of 0/1 metrics: mcnemar, or wilcoxon as the study's quality tables did for lizard's detection rate"),
        "choices": ["mcnemar", "wilcoxon"]})
    task: str | None = field(default=None, metadata={"help": "The task of CSV sources without TASK/LANGUAGE:"})
    language: str | None = field(default=None, metadata={"help": "The language or direction of CSV sources "
                                                                 "without TASK/LANGUAGE:"})
    id_column: str | None = field(default=None, metadata={"help": "The id column of CSV sources (default: the "
                                                                  "first column)"})
    seed: int = field(default=42, metadata={"help": "Seed of the bootstrap intervals"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": (
        "Replace a comparison made with other arguments in --output_dir")})


# ----------------------------------------------------------------------------------------------------- the tests


def parse_pairs(args: CompareArguments, runs: list[Run]) -> list[tuple[Run, Run]]:
    by_name = {r.name: r for r in runs}
    if not args.pairs:
        return [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
    pairs = []
    for spec in args.pairs.split(","):
        a, sep, b = spec.partition(":")
        if not sep or a not in by_name or b not in by_name or a == b:
            raise UserError(f"--pairs {spec}: write A:B with two different names from --runs "
                            f"({', '.join(by_name)})")
        pairs.append((by_name[a], by_name[b]))
    return pairs


def common_items(a: Run, b: Run, intersect: bool, notes: list[str]) -> list[Key]:
    """The items both runs hold; refuses runs whose items differ unless `intersect`."""
    only_a, only_b = sorted(a.items.keys() - b.items.keys()), sorted(b.items.keys() - a.items.keys())
    if (only_a or only_b) and not intersect:
        def some(keys):
            return ", ".join("/".join(k) for k in keys[:3]) + (" ..." if len(keys) > 3 else "")
        parts = [f"{len(keys)} only in {run.name} ({some(keys)})" for keys, run in ((only_a, a), (only_b, b)) if keys]
        raise UserError(f"{a.name} and {b.name} hold different items: {'; '.join(parts)}; compare evaluations of "
                        f"the same items, or pass --intersect to compare the "
                        f"{len(a.items.keys() & b.items.keys())} they share")
    if only_a or only_b:
        notes.append(f"{a.name} vs {b.name}: --intersect kept the {len(a.items.keys() & b.items.keys())} common "
                     f"items, dropped {len(only_a)} only in {a.name} and {len(only_b)} only in {b.name}")
    return sorted(a.items.keys() & b.items.keys())


def binary_metrics(runs: list[Run]) -> set[str]:
    """The metrics that are 0/1 in every item of every run of the invocation (pass@1, exact match, a detection rate):
    decided once for the invocation, so that one metric gets the same test in every pair and group."""
    values: dict[str, bool] = {}
    for run in runs:
        for item in run.items.values():
            for metric, value in item.items():
                values[metric] = values.get(metric, True) and (value is None or value in (0, 1))
    return {m for m, binary in values.items() if binary}


def compare_pair(a: Run, b: Run, keys: list[Key], args: CompareArguments, wanted: list[str] | None,
                 binary: set[str]) -> list[dict]:
    """One row per (task, language, metric) both runs measured: the test, its effect size and the interval."""
    groups: dict[tuple[str, str], list[Key]] = defaultdict(list)
    for key in keys:
        groups[key[:2]].append(key)
    rows = []
    for (task, language), group in sorted(groups.items()):
        for metric in _metrics(a, b, group, wanted):
            pairs = [(a.items[k][metric], b.items[k][metric]) for k in group
                     if a.items[k].get(metric) is not None and b.items[k].get(metric) is not None]
            if not pairs:
                continue
            x, y = [p[0] for p in pairs], [p[1] for p in pairs]
            row = dict(task=task, language=language, metric=metric, config_a=a.name, config_b=b.name, n=len(pairs),
                       mean_a=sum(x) / len(x), mean_b=sum(y) / len(y))
            if args.binary_test == "mcnemar" and metric in binary:
                result = stats.mcnemar(x, y, exact=args.exact)
                row.update(effect_size=result.odds_ratio, magnitude="", a_only=result.a_only, b_only=result.b_only)
            else:
                result = stats.wilcoxon(x, y)
                delta = stats.cliffs_delta(x, y)
                row.update(effect_size=delta, magnitude=stats.magnitude(delta))
            low, high = stats.bootstrap_ci(x, y, seed=args.seed)
            missing = len(group) - len(pairs)
            note = "; ".join(filter(None, [result.note, f"{missing} items without a value left out" if missing else ""]))
            row.update(test=result.test, statistic=result.statistic, p_value=result.p_value, ci_low=low, ci_high=high,
                       note=note)
            rows.append(row)
    return rows


def _metrics(a: Run, b: Run, keys: list[Key], wanted: list[str] | None) -> list[str]:
    """The metrics both runs hold for these items, in the order the first run lists them."""
    seen_a = list(dict.fromkeys(m for k in keys for m in a.items[k]))
    seen_b = {m for k in keys for m in b.items[k]}
    found = [m for m in seen_a if m in seen_b]
    return [m for m in found if m in wanted] if wanted is not None else found


def compare(args: CompareArguments) -> tuple[list[dict], list[str], list[Run]]:
    """Every test of the invocation, adjusted together; the notes for the reader; the runs as read."""
    runs = read_runs(args)
    pairs = parse_pairs(args, runs)
    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    notes: list[str] = []
    rows = []
    binary = binary_metrics(runs)
    for a, b in pairs:
        rows += compare_pair(a, b, common_items(a, b, args.intersect, notes), args, wanted, binary)
    if wanted:
        found = {r["metric"] for r in rows}
        missing = [m for m in wanted if m not in found]
        if missing:
            raise UserError(f"--metrics: {', '.join(missing)} is in none of the compared runs; they hold "
                            f"{', '.join(sorted({m for r in runs for it in r.items.values() for m in it}))}")
    if not rows:
        raise UserError("the runs share no metric to compare")
    adjusted = stats.adjust([r["p_value"] for r in rows], args.adjust)
    for row, p in zip(rows, adjusted):
        row[p_column(args.adjust)] = p
    family = sum(not math.isnan(r["p_value"]) for r in rows)
    notes.append(f"{family} tests, adjusted together ({args.adjust}); significant: adjusted p < {ALPHA}")
    return rows, notes, runs


# ------------------------------------------------------------------------------------------------------ the command


def check_output(out: Path, args: CompareArguments, runs: list[Run]) -> None:
    """An output folder never lies inside an input, and an earlier comparison there is replaced only when it was
    made with the same arguments or --overwrite_output_dir is given; other files there are left alone."""
    from common.run_dir import check_output_dir

    check_output_dir(out, {f"--runs {r.name}": s for r in runs for s in r.sources})
    previous = out / "compare.json"
    if previous.is_file() and not args.overwrite_output_dir:
        try:
            before = json.loads(previous.read_text(encoding="utf-8")).get("arguments")
        except ValueError:
            before = None
        now = asdict(args)
        if before is not None:
            before.pop("overwrite_output_dir", None)
            now.pop("overwrite_output_dir", None)
        if before != now:
            raise UserError(f"--output_dir {out} holds a comparison made with other arguments; pick another "
                            f"--output_dir or pass --overwrite_output_dir True to replace it")


def parse_args(argv: list[str] | None) -> CompareArguments:
    from common.parsing import parse_dataclass

    import argparse

    return parse_dataclass(CompareArguments, argv, prog="python -m common.compare", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)


def run_compare(args: CompareArguments) -> Path:
    if len(args.runs) < 2:
        raise UserError("--runs needs at least two NAME=SOURCE entries to compare")
    if not args.output_dir:
        raise UserError("--output_dir is required: the folder for compare.csv, compare.md and the charts")
    rows, notes, runs = compare(args)
    out = Path(args.output_dir).expanduser().resolve()
    check_output(out, args, runs)
    from common.run_dir import locked

    with locked(out, "a comparison (python -m common.compare)"):
        write_outputs(out, rows, notes, runs, args)
    found = sum(significant(r, args.adjust) for r in rows)
    logger.info("%d tests, %d significant after %s; wrote %s/{%s}", len(rows), found, args.adjust, out,
                ",".join(OUTPUTS))
    return out


def main(argv: list[str] | None = None) -> int:
    from common import cli

    logging.basicConfig(format=cli.LOG_FORMAT, level=logging.INFO)
    logging.getLogger("common").setLevel(logging.INFO)
    return cli.run(lambda: run_compare(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

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

import csv
import io
import json
import logging
import math
import re
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import stats
from common.errors import UserError
from common.files import write_json, write_text

logger = logging.getLogger("common")

COLUMNS = ("task", "language", "metric", "config_a", "config_b", "n", "mean_a", "mean_b", "test", "statistic",
           "p_value", "p_holm", "effect_size", "magnitude", "ci_low", "ci_high")
EXTRA_COLUMNS = ("a_only", "b_only", "note")  # McNemar's discordant counts; what the reader should know
OUTPUTS = ("compare.csv", "compare.md", "compare.json")
ALPHA = 0.05
_PREFIX = re.compile(r"^([\w.+-]+)/([\w.+#-]+):(.+)$")  # TASK/LANGUAGE:path


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


# ------------------------------------------------------------------------------------------------------ reading runs


Key = tuple[str, str, str]  # (task, language/direction, id)


@dataclass
class Run:
    name: str
    sources: list[str]
    items: dict[Key, dict[str, float | None]]  # per item: metric -> value (None: not measured for this item)
    quality: set[str]  # the metrics that are code-quality measures (the charts draw them apart)


def parse_runs(args: CompareArguments) -> list[Run]:
    if len(args.runs) < 2:
        raise UserError("--runs needs at least two NAME=SOURCE entries to compare")
    runs, names = [], set()
    for spec in args.runs:
        name, sep, sources = spec.partition("=")
        if not sep or not name.strip() or not sources.strip():
            raise UserError(f"--runs {spec}: write NAME=SOURCE[,SOURCE...], e.g. MT-QLoRA=runs/mt/eval-multitask-test")
        if name in names:
            raise UserError(f"--runs: the name {name} is given twice; give each run its own name")
        if ":" in name or "," in name:
            raise UserError(f"--runs {spec}: a run name may not contain ':' or ','")
        names.add(name)
        run = Run(name, [s for s in sources.split(",") if s], {}, set())
        for source in run.sources:
            _read_source(run, source, args)
        if not run.items:
            raise UserError(f"--runs {name}: {sources} holds no item")
        runs.append(run)
    return runs


def _read_source(run: Run, source: str, args: CompareArguments) -> None:
    prefix = _PREFIX.match(source)
    task, language, path_text = (prefix.group(1), prefix.group(2), prefix.group(3)) if prefix else \
        (args.task, args.language, source)
    path = Path(path_text).expanduser()
    if path.is_dir():
        path = path / "predictions.jsonl"
        if not path.is_file():
            raise UserError(f"--runs {run.name}: {path_text} has no predictions.jsonl; give an evaluation folder "
                            f"(python {{task}}/evaluate.py writes one), a predictions.jsonl or a per-item CSV")
    if not path.is_file():
        raise UserError(f"--runs {run.name}: {path_text} does not exist")
    if path.suffix.lower() == ".csv":
        if not task or not language:
            raise UserError(f"--runs {run.name}: say what {path_text} holds: prefix it with TASK/LANGUAGE: "
                            f"(e.g. generation/python:{path_text}) or give --task and --language")
        rows = _read_csv(path, args.id_column)
    else:
        if prefix:
            raise UserError(f"--runs {run.name}: TASK/LANGUAGE: applies to CSV sources only; {path_text} says "
                            f"what each item is")
        rows = _read_predictions(path, run)
    for key, values in rows:
        key = (task, language, key) if isinstance(key, str) else key
        if key in run.items:
            raise UserError(f"--runs {run.name}: item {'/'.join(key)} appears twice in {', '.join(run.sources)}; "
                            f"each item may be scored once per run")
        run.items[key] = values


def _read_predictions(path: Path, run: Run):
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (row["task"], row.get("language", row.get("direction")), str(row["id"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"--runs {run.name}: {path} line {number} is not a prediction row with id, task and "
                                f"language/direction; give the predictions.jsonl an evaluation wrote") from None
            if key[1] is None:
                raise UserError(f"--runs {run.name}: {path} line {number} has no language or direction")
            values = {}
            for group, is_quality in (("scores", False), ("quality", True)):
                for metric, value in (row.get(group) or {}).items():
                    if value is None or isinstance(value, (bool, int, float)):
                        values[metric] = None if value is None else float(value)
                        if is_quality:
                            run.quality.add(metric)
            yield key, values


def _read_csv(path: Path, id_column: str | None):
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise UserError(f"{path} is empty: a per-item CSV has a header row (an id column, one column per metric)")
    id_name = id_column or header[0]
    if id_name not in header:
        raise UserError(f"--id_column {id_name}: {path} has no such column; its columns are {', '.join(header)}")
    rows = list(reader)
    metrics = [c for c in header if c != id_name and all(_number(r.get(c)) is not _NOT_A_NUMBER for r in rows)]
    if not metrics:
        raise UserError(f"{path} has no numeric column besides its id column {id_name}")
    for row in rows:
        yield str(row[id_name]).strip(), {m: _number(row[m]) for m in metrics}


_NOT_A_NUMBER = object()


def _number(text):
    """A CSV cell as a float; None for an empty or NA cell; _NOT_A_NUMBER for text."""
    if text is None or text.strip() in ("", "NA", "NaN", "nan"):
        return None
    if text.strip().lower() in ("true", "false"):
        return float(text.strip().lower() == "true")
    try:
        return float(text)
    except ValueError:
        return _NOT_A_NUMBER


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


def compare_pair(a: Run, b: Run, keys: list[Key], args: CompareArguments, wanted: list[str] | None) -> list[dict]:
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
            if args.binary_test == "mcnemar" and stats.is_binary(x) and stats.is_binary(y):
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
    runs = parse_runs(args)
    pairs = parse_pairs(args, runs)
    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    notes: list[str] = []
    rows = []
    for a, b in pairs:
        rows += compare_pair(a, b, common_items(a, b, args.intersect, notes), args, wanted)
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


def p_column(adjust: str) -> str:
    return {"holm": "p_holm", "bh": "p_bh", "none": "p_unadjusted"}[adjust]


# ---------------------------------------------------------------------------------------------------- the outputs


def write_outputs(out: Path, rows: list[dict], notes: list[str], runs: list[Run], args: CompareArguments) -> None:
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


def render_markdown(rows: list[dict], notes: list[str], args: CompareArguments, charts: list[Path]) -> str:
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
            significant = not math.isnan(r[adjusted]) and r[adjusted] < ALPHA
            mark = (lambda s: f"**{s}**") if significant else (lambda s: s)
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
    """Per task, one chart of its metric means per configuration, and one of its code-quality means; over the items
    every run holds, so that the bars compare the same items."""
    from common.plots import bar_charts

    shared = set.intersection(*(set(r.items) for r in runs))
    quality = set().union(*(r.quality for r in runs))
    charts = []
    for task in sorted({k[0] for k in shared}):
        for kind, is_quality in (("metrics", False), ("quality", True)):
            values: dict[str, dict[str, float]] = {}
            for language in sorted({k[1] for k in shared if k[0] == task}):
                keys = [k for k in shared if k[:2] == (task, language)]
                for metric in _metrics(runs[0], runs[0], keys, None):
                    if (metric in quality) != is_quality:
                        continue
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

    return parse_dataclass(CompareArguments, argv, prog="python -m common.compare", description=__doc__)


def run_compare(args: CompareArguments) -> Path:
    if not args.output_dir:
        raise UserError("--output_dir is required: the folder for compare.csv, compare.md and the charts")
    rows, notes, runs = compare(args)
    out = Path(args.output_dir).expanduser().resolve()
    check_output(out, args, runs)
    from common.run_dir import locked

    with locked(out, "a comparison (python -m common.compare)"):
        write_outputs(out, rows, notes, runs, args)
    adjusted = p_column(args.adjust)
    significant = sum(1 for r in rows if not math.isnan(r[adjusted]) and r[adjusted] < ALPHA)
    logger.info("%d tests, %d significant after %s; wrote %s/{%s}", len(rows), significant, args.adjust, out,
                ",".join(OUTPUTS))
    return out


def main(argv: list[str] | None = None) -> int:
    from common import cli

    logging.basicConfig(format=cli.LOG_FORMAT, level=logging.INFO)
    logging.getLogger("common").setLevel(logging.INFO)
    return cli.run(lambda: run_compare(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

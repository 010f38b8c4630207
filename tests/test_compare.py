"""`python -m common.compare`: items paired by id, the right test per metric, one correction per invocation, the
outputs, and one-line refusals."""

from __future__ import annotations

import csv
import json
import random

import pytest

from common import compare, compare_report, stats
from conftest import snapshot


def prediction_rows(scores: dict[str, list], *, task="generation", language="python", ids=None, quality=None):
    n = len(next(iter(scores.values())))
    ids = ids or [f"t{i:03d}" for i in range(n)]
    rows = []
    for i, item_id in enumerate(ids):
        row = {"id": item_id, "task": task, "language": language, "prompt": "p", "output": "o", "prediction": "o",
               "reference": "r", "scores": {m: v[i] for m, v in scores.items()}}
        if quality:
            row["quality"] = {m: v[i] for m, v in quality.items()}
        rows.append(row)
    return rows


def write_eval(folder, rows, shuffle_seed=None):
    folder.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def expect_user_error(capsys, main, argv, root) -> str:
    """Exit code 2, one `error: ...` line, no traceback, nothing written under `root`; returns the line."""
    before = snapshot(root)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err[-5:]
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert snapshot(root) == before, "nothing may be written on a user error"
    return err[0]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# Two systems on 40 items: pass@1 (0/1) and a similarity score; B is worse on the similarity of most items.
RNG = random.Random(3)
PASS_A = [RNG.randint(0, 1) for _ in range(40)]
PASS_B = [p if RNG.random() < 0.7 else 1 - p for p in PASS_A]
SIM_A = [round(RNG.random(), 3) for _ in range(40)]
SIM_B = [round(max(0.0, s - RNG.random() * 0.3), 3) for s in SIM_A]


@pytest.fixture
def two_evals(tmp_path):
    a = write_eval(tmp_path / "a", prediction_rows({"pass@1": PASS_A, "codebleu": SIM_A},
                                                   quality={"lines_of_code": list(range(40)), "ccn_max": [None] * 40}))
    b = write_eval(tmp_path / "b", prediction_rows({"pass@1": PASS_B, "codebleu": SIM_B},
                                                   quality={"lines_of_code": [x + 1 for x in range(40)],
                                                            "ccn_max": [None] * 40}), shuffle_seed=1)
    return a, b


def test_pairs_by_id_whatever_the_order_and_picks_the_test(tmp_path, two_evals):
    a, b = two_evals
    out = tmp_path / "cmp"
    assert compare.main(["--runs", f"A={a}", f"B={b}", "--output_dir", str(out)]) == 0
    rows = {r["metric"]: r for r in read_csv(out / "compare.csv")}
    assert list(read_csv(out / "compare.csv")[0]) == list(compare_report.COLUMNS) + list(compare_report.EXTRA_COLUMNS)
    assert set(rows) == {"pass@1", "codebleu", "lines_of_code"}  # ccn_max has no value: no test
    mc = stats.mcnemar(PASS_A, PASS_B)  # the right pairing, by construction of the lists
    assert rows["pass@1"]["test"] == "mcnemar"
    assert float(rows["pass@1"]["p_value"]) == pytest.approx(mc.p_value)
    assert (int(rows["pass@1"]["a_only"]), int(rows["pass@1"]["b_only"])) == (mc.a_only, mc.b_only)
    assert float(rows["pass@1"]["effect_size"]) == pytest.approx(mc.odds_ratio)
    w = stats.wilcoxon(SIM_A, SIM_B)
    assert rows["codebleu"]["test"] == "wilcoxon"
    assert float(rows["codebleu"]["p_value"]) == pytest.approx(w.p_value)
    assert float(rows["codebleu"]["statistic"]) == w.statistic
    assert float(rows["codebleu"]["effect_size"]) == pytest.approx(stats.cliffs_delta(SIM_A, SIM_B))
    assert rows["codebleu"]["magnitude"] == stats.magnitude(stats.cliffs_delta(SIM_A, SIM_B))
    assert float(rows["codebleu"]["mean_a"]) == pytest.approx(sum(SIM_A) / 40)
    assert float(rows["codebleu"]["ci_low"]) < sum(a - b for a, b in zip(SIM_A, SIM_B)) / 40 < float(
        rows["codebleu"]["ci_high"])
    # lines_of_code differs by exactly -1 everywhere: Wilcoxon, Cliff's delta of two shifted ranges
    assert rows["lines_of_code"]["test"] == "wilcoxon"
    assert float(rows["lines_of_code"]["mean_b"]) - float(rows["lines_of_code"]["mean_a"]) == pytest.approx(1)
    # one Holm family over the three tests of the invocation
    adjusted = stats.adjust([float(rows[m]["p_value"]) for m in ("pass@1", "codebleu", "lines_of_code")], "holm")
    assert [float(rows[m]["p_holm"]) for m in ("pass@1", "codebleu", "lines_of_code")] == pytest.approx(adjusted)
    # positional pairing (the study's scripts) of the shuffled file gives another answer
    shuffled = [json.loads(line) for line in (b / "predictions.jsonl").read_text().splitlines()]
    positional = stats.wilcoxon(SIM_A, [r["scores"]["codebleu"] for r in shuffled])
    assert positional.p_value != pytest.approx(w.p_value)


def test_outputs_markdown_json_and_charts(tmp_path, two_evals):
    a, b = two_evals
    out = tmp_path / "cmp"
    assert compare.main(["--runs", f"MT={a}", f"ST={b}", "--output_dir", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "## MT vs ST: generation / python" in md
    codebleu = next(line for line in md.splitlines() if line.startswith("| **codebleu**"))  # significant: bold
    assert "wilcoxon" in codebleu
    record = json.loads((out / "compare.json").read_text())
    assert record["arguments"]["runs"] == [f"MT={a}", f"ST={b}"]
    assert sorted(record["charts"]) == ["generation-metrics.png", "generation-quality.png"]
    for name in record["charts"]:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"]({name})" in md


def test_charts_show_the_tasks_main_metrics_and_quality_apart(tmp_path, monkeypatch):
    from common import plots

    drawn = {}
    real = plots.bar_charts
    monkeypatch.setattr(plots, "bar_charts", lambda path, title, values, **kw: drawn.setdefault(path.name, values)
                        and real(path, title, values, **kw))
    rows = {m: [i % 3 / 3 for i in range(6)] for m in ("codebleu", "ngram_match_score", "pass@1")}
    rows["pass@1"] = [1, 0, 1, 0, 0, 1]
    a = write_eval(tmp_path / "a", prediction_rows(rows, quality={"lines_of_code": [1, 2, 3, 4, 5, 6]}))
    b = write_eval(tmp_path / "b", prediction_rows({m: v[::-1] for m, v in rows.items()},
                                                   quality={"lines_of_code": [2, 2, 2, 2, 2, 2]}))
    assert compare.main(["--runs", f"A={a}", f"B={b}", "--output_dir", str(tmp_path / "cmp")]) == 0
    # generation's main metrics are pass@1, codebleu, bleu: those the runs hold, in that order; sub-scores left out
    assert list(drawn["generation-metrics.png"]) == ["pass@1 (python)", "codebleu (python)"]
    assert drawn["generation-metrics.png"]["pass@1 (python)"] == {"A": 0.5, "B": 0.5}
    assert drawn["generation-quality.png"] == {"lines_of_code (python)": {"A": 3.5, "B": 2.0}}


def test_differing_item_sets_are_refused_or_intersected(tmp_path, capsys):
    a = write_eval(tmp_path / "a", prediction_rows({"bleu": [0.1, 0.2, 0.3, 0.4]}))
    b = write_eval(tmp_path / "b", prediction_rows({"bleu": [0.2, 0.2, 0.1]}, ids=["t000", "t001", "t009"]))
    out = tmp_path / "cmp"
    message = expect_user_error(capsys, compare.main, ["--runs", f"A={a}", f"B={b}", "--output_dir", str(out)],
                                tmp_path)
    assert "A and B hold different items: 2 only in A (generation/python/t002, generation/python/t003); " \
           "1 only in B (generation/python/t009)" in message
    assert "--intersect" in message
    assert not out.exists()
    c = write_eval(tmp_path / "c", prediction_rows({"bleu": [0.1, 0.2, 0.3, 0.4, 0.5]}))  # a superset of A
    message = expect_user_error(capsys, compare.main, ["--runs", f"A={a}", f"C={c}", "--output_dir", str(out)],
                                tmp_path)
    assert "A and C hold different items: 1 only in C (generation/python/t004)" in message
    assert compare.main(["--runs", f"A={a}", f"B={b}", "--output_dir", str(out), "--intersect", "True"]) == 0
    row = read_csv(out / "compare.csv")[0]
    assert row["n"] == "2"
    assert "kept the 2 common items, dropped 2 only in A and 1 only in B" in (out / "compare.md").read_text()


def test_pairs_and_one_family_per_invocation(tmp_path):
    folders = {name: write_eval(tmp_path / name, prediction_rows({"bleu": [(i * k) % 7 / 7 for i in range(30)]}))
               for name, k in (("A", 1), ("B", 2), ("C", 3))}
    runs = [f"{n}={f}" for n, f in folders.items()]
    out = tmp_path / "all"
    assert compare.main(["--runs", *runs, "--output_dir", str(out), "--adjust", "none"]) == 0
    assert [(r["config_a"], r["config_b"]) for r in read_csv(out / "compare.csv")] == [("A", "B"), ("A", "C"),
                                                                                     ("B", "C")]
    assert "p_unadjusted" in read_csv(out / "compare.csv")[0]
    out = tmp_path / "some"
    assert compare.main(["--runs", *runs, "--output_dir", str(out), "--pairs", "C:A", "--adjust", "bh"]) == 0
    rows = read_csv(out / "compare.csv")
    assert [(r["config_a"], r["config_b"]) for r in rows] == [("C", "A")]
    assert float(rows[0]["p_bh"]) == pytest.approx(float(rows[0]["p_value"]))  # a family of one


def test_several_sources_make_one_run(tmp_path):
    """The three single-task runs together are one configuration against the multi-task run."""
    mt = write_eval(tmp_path / "mt", prediction_rows({"bleu": [0.1, 0.5, 0.3]}, task="summarization")
                    + prediction_rows({"codebleu": [0.4, 0.2, 0.6]}, task="translation", language="java->cs"))
    st_sum = write_eval(tmp_path / "st1", prediction_rows({"bleu": [0.2, 0.4, 0.1]}, task="summarization"))
    st_tr = write_eval(tmp_path / "st2", prediction_rows({"codebleu": [0.3, 0.3, 0.1]}, task="translation",
                                                         language="java->cs"))
    out = tmp_path / "cmp"
    assert compare.main(["--runs", f"MT={mt}", f"ST={st_sum},{st_tr}", "--output_dir", str(out)]) == 0
    rows = read_csv(out / "compare.csv")
    assert [(r["task"], r["language"], r["metric"]) for r in rows] == [("summarization", "python", "bleu"),
                                                                       ("translation", "java->cs", "codebleu")]


def test_study_csv_files_paired_by_id(tmp_path):
    """The study's per-item layout (`Task ID,pass@1`), files of different lengths and orders: paired by id."""
    ids = [f"62b4{i:020x}" for i in range(12)]
    a = {i: v for i, v in zip(ids, [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1])}
    b = {i: v for i, v in zip(ids, [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1])}
    del b[ids[4]]  # missing in one file, as 62b463153879012d19481498 in the study's Python pass@1 files
    (tmp_path / "a.csv").write_text("Task ID,pass@1\n" + "".join(f"{i},{v}\n" for i, v in a.items()))
    (tmp_path / "b.csv").write_text("Task ID,pass@1\n" + "".join(f"{i},{v}\n" for i, v in reversed(b.items())))
    out = tmp_path / "cmp"
    argv = ["--runs", f"QLoRA=generation/python:{tmp_path / 'a.csv'}", f"FFT={tmp_path / 'b.csv'}",
            "--task", "generation", "--language", "python", "--output_dir", str(out), "--intersect", "True"]
    assert compare.main(argv) == 0
    row = read_csv(out / "compare.csv")[0]
    kept = [i for i in ids if i in b]
    expected = stats.mcnemar([a[i] for i in kept], [b[i] for i in kept])
    assert (row["n"], int(row["a_only"]), int(row["b_only"])) == ("11", expected.a_only, expected.b_only)
    assert (expected.a_only, expected.b_only) == (4, 1)
    assert float(row["p_value"]) == pytest.approx(expected.p_value)
    # the exact binomial version on request
    out2 = tmp_path / "exact"
    assert compare.main([*argv[:-4], "--output_dir", str(out2), "--intersect", "True", "--exact", "True"]) == 0
    assert read_csv(out2 / "compare.csv")[0]["test"] == "mcnemar-exact"


def test_a_metric_gets_one_test_across_the_invocation(tmp_path):
    """0/1 is decided over every run of the invocation: a count that is 0/1 in two runs but 2 in a third gets
    Wilcoxon in every pair, so a family never mixes two tests of one metric."""
    counts = {"A": [0, 1, 1, 0, 1, 1, 0, 1], "B": [0, 0, 1, 0, 0, 0, 0, 0], "C": [2, 0, 1, 0, 0, 1, 0, 0]}
    folders = {n: write_eval(tmp_path / n, prediction_rows({"pylint_error": c, "pass@1": c[::-1]})) for n, c in
               {"A": counts["A"], "B": counts["B"]}.items()}
    folders["C"] = write_eval(tmp_path / "C", prediction_rows({"pylint_error": counts["C"], "pass@1": counts["B"]}))
    out = tmp_path / "cmp"
    assert compare.main(["--runs", *(f"{n}={f}" for n, f in folders.items()), "--output_dir", str(out)]) == 0
    tests = {(r["config_a"], r["config_b"], r["metric"]): r["test"] for r in read_csv(out / "compare.csv")}
    assert tests[("A", "B", "pylint_error")] == "wilcoxon"
    assert tests[("A", "B", "pass@1")] == "mcnemar"
    assert {t for (a, b, m), t in tests.items() if m == "pylint_error"} == {"wilcoxon"}


def test_sources_of_one_run_join_their_metrics(tmp_path, capsys):
    """The study's lizard, PMD and SonarCloud files of one model hold other metrics of the same items: joined."""
    files = {"lizard_st": "Task ID,Lines_of_Code\na1,3\na2,5\na3,4\na4,9\n",
             "sonar_st": "TaskID,CoC\na4,1\na2,0\na1,2\na3,0\n",
             "lizard_mt": "Task ID,Lines_of_Code\na1,2\na2,5\na3,3\na4,4\n",
             "sonar_mt": "TaskID,CoC\na1,0\na2,0\na3,0\na4,0\n",
             "dup": "Task ID,Lines_of_Code\na1,1\na1,2\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
    out = tmp_path / "cmp"
    src = lambda *names: ",".join(f"generation/java:{tmp_path / n}.csv" for n in names)  # noqa: E731
    assert compare.main(["--runs", f"ST={src('lizard_st', 'sonar_st')}", f"MT={src('sonar_mt', 'lizard_mt')}",
                         "--output_dir", str(out), "--adjust", "none"]) == 0
    rows = {r["metric"]: r for r in read_csv(out / "compare.csv")}
    assert set(rows) == {"Lines_of_Code", "CoC"}
    assert float(rows["CoC"]["p_value"]) == pytest.approx(stats.wilcoxon([2, 0, 0, 1], [0, 0, 0, 0]).p_value)
    assert float(rows["Lines_of_Code"]["p_value"]) == pytest.approx(stats.wilcoxon([3, 5, 4, 9], [2, 5, 3, 4]).p_value)
    message = expect_user_error(capsys, compare.main, ["--runs", f"ST={src('dup')}", f"MT={src('lizard_mt')}",
                                                       "--output_dir", str(tmp_path / "x")], tmp_path)
    assert "item generation/java/a1 appears twice in" in message


def test_binary_metric_by_wilcoxon_and_metric_selection(tmp_path, two_evals):
    a, b = two_evals
    out = tmp_path / "cmp"
    assert compare.main(["--runs", f"A={a}", f"B={b}", "--output_dir", str(out), "--binary_test", "wilcoxon",
                         "--metrics", "pass@1,codebleu"]) == 0
    rows = read_csv(out / "compare.csv")
    assert [(r["metric"], r["test"]) for r in rows] == [("pass@1", "wilcoxon"), ("codebleu", "wilcoxon")]
    # Wilcoxon on 0/1 differences is McNemar's statistic without continuity correction (z = (b - c) / sqrt(b + c))
    mc = stats.mcnemar(PASS_A, PASS_B)
    from scipy.stats import norm

    z = (mc.a_only - mc.b_only) / (mc.a_only + mc.b_only) ** 0.5
    assert float(rows[0]["p_value"]) == pytest.approx(2 * norm.sf(abs(z)))


def test_rerun_rewrites_same_comparison_and_refuses_another(tmp_path, two_evals, capsys):
    a, b = two_evals
    out = tmp_path / "cmp"
    argv = ["--runs", f"A={a}", f"B={b}", "--output_dir", str(out)]
    assert compare.main(argv) == 0
    first = (out / "compare.csv").read_bytes()
    assert compare.main(argv) == 0
    assert (out / "compare.csv").read_bytes() == first  # identical from run to run (seeded bootstrap)
    message = expect_user_error(capsys, compare.main, [*argv, "--adjust", "bh"], tmp_path)
    assert "holds a comparison made with other arguments" in message
    assert compare.main([*argv, "--adjust", "bh", "--overwrite_output_dir", "True"]) == 0
    assert "p_bh" in read_csv(out / "compare.csv")[0]


@pytest.mark.parametrize("case, expected", [
    (lambda a, b, t: ["--runs", f"A={a}"], "at least two"),
    (lambda a, b, t: ["--runs", f"A={a}", f"A={b}"], "the name A is given twice"),
    (lambda a, b, t: ["--runs", f"A={a}", str(b)], "write NAME=SOURCE"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={t / 'nowhere'}"], "does not exist"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={t}"], "has no predictions.jsonl"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={b}", "--pairs", "A:Z"], "--pairs A:Z"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={b}", "--metrics", "nope"], "--metrics: nope is in none"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={b}", "--adjust", "bonferroni"], "invalid choice"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={a / 'predictions.jsonl'}", "--output_dir", str(a)],
     "writing there would overwrite"),
    (lambda a, b, t: ["--runs", f"A={a}", f"B={b},{b}"], "has ccn_max in two of"),
])
def test_user_errors(tmp_path, two_evals, capsys, case, expected):
    a, b = two_evals
    argv = case(a, b, tmp_path)
    if "--output_dir" not in argv:
        argv += ["--output_dir", str(tmp_path / "out")]
    message = expect_user_error(capsys, compare.main, argv, tmp_path)
    assert expected in message
    assert not (tmp_path / "out").exists()


def test_csv_source_needs_what_it_holds(tmp_path, two_evals, capsys):
    a, _ = two_evals
    (tmp_path / "x.csv").write_text("Task ID,BLEU\nt000,0.1\n")
    message = expect_user_error(capsys, compare.main, ["--runs", f"A={a}", f"B={tmp_path / 'x.csv'}",
                                                       "--output_dir", str(tmp_path / "out")], tmp_path)
    assert "prefix it with TASK/LANGUAGE:" in message

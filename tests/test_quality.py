"""Code-quality measurements: as the study took them, checked against the tools run directly and the study's values."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from lizard import analyze_file
from radon.metrics import mi_visit

from common import linters
from common.linters import PMD_KEYS, PYLINT_CROSS_FILE, PYLINT_KEYS, pmd_command, pylint_file_name, run_pylint
from common.quality import LIZARD_KEYS, measure_quality, reformat_like_study, summarize_quality

DOCUMENTED = '''def sign(x):
    """Sign of x."""
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0'''
SLOPPY = '''import os
def load(path):
    unused = 42
    try:
        return open(path).read()
    except:
        return None


def helper(a, b):
    return a + b
'''
BROKEN = "def broken(x):\n    if x >\n        return 1\n\ndef fine(y):\n    return y"
NO_FUNCTION = "VALUE = 1\nprint(VALUE)\n"
# 17 ifs: CCN 18, over lizard's warning threshold (15), so lizard lists it a second time under "!!!! Warnings".
BIG = "def big(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(17)) + "    return -1\n"
BIG_AND_SMALL = BIG + "\n\ndef small(a, b):\n    return a + b\n"
PYTHON = [DOCUMENTED, SLOPPY, BROKEN, NO_FUNCTION, BIG_AND_SMALL]

JAVA_OK = "public int sign(int x) {\n    if (x > 0) { return 1; }\n    if (x < 0) { return -1; }\n    return 0;\n}"
JAVA_UNBALANCED = "public int sign(int x) {\n    if (x > 0) { return 1;\n    return 0;\n}"
CS_OK = "public static int Sign(int x)\n{\n    if (x > 0) return 1;\n    if (x < 0) return -1;\n    return 0;\n}"
CS_UNBALANCED = "public static int Sign(int x)\n{\n    if (x > 0) { return 1;\n    return 0;\n}"

# CodeXGLUE code-to-code-trans test items (Java reference, C# reference), and the study's lizard row for the
# translation into that language (CCN, NLOC, tokens): the same for every one of its nine models in both directions
# (translation_9 Java->C#: eight of nine), i.e. each model reproduced the reference; the study reformatted it first.
CODEXGLUE = {
    0: ("public void serialize(LittleEndianOutput out) {out.writeShort(field_1_vcenter);}",
        "public override void Serialize(ILittleEndianOutput out1){out1.WriteShort(field_1_vcenter);}",
        (1, 3, 14), (1, 3, 14)),
    3: ("public ObjectId getObjectId() {return objectId;}",
        "public virtual ObjectId GetObjectId(){return objectId;}",
        (1, 3, 8), (1, 3, 8)),
    4: ("public DeleteDomainEntryResult deleteDomainEntry(DeleteDomainEntryRequest request) {request = "
        "beforeClientExecution(request);return executeDeleteDomainEntry(request);}",
        "public virtual DeleteDomainEntryResponse DeleteDomainEntry(DeleteDomainEntryRequest request){var options = "
        "new InvokeOptions();options.RequestMarshaller = DeleteDomainEntryRequestMarshaller.Instance;"
        "options.ResponseUnmarshaller = DeleteDomainEntryResponseUnmarshaller.Instance;return "
        "Invoke<DeleteDomainEntryResponse>(request, options);}",
        (1, 4, 20), (1, 6, 42)),
    9: ("public SubmoduleAddCommand setPath(String path) {this.path = path;return this;}",
        "public virtual NGit.Api.SubmoduleAddCommand SetPath(string path){this.path = path;return this;}",
        (1, 4, 16), (1, 4, 16)),
}
# translation_1, Java: two of the nine C#->Java models (3B QLoRA) have exactly this row: CCN 4, NLOC 8, 72 tokens.
# NLOC 8 only comes from the reformatting, which also breaks the for-loop header at its semicolons.
JAVA_ONE_LINE = ("public void addAll(BlockList<T> src) {if (src.size == 0)return;int srcDirIdx = 0;for (; srcDirIdx < "
                 "src.tailDirIdx; srcDirIdx++)addAll(src.directory[srcDirIdx], 0, BLOCK_SIZE);if (src.tailBlkIdx != "
                 "0)addAll(src.tailBlock, 0, src.tailBlkIdx);}")
JAVA_REFORMATTED = """public void addAll(BlockList<T> src) {
    if (src.size == 0)return;
    int srcDirIdx = 0;
    for (;
    srcDirIdx < src.tailDirIdx;
    srcDirIdx++)addAll(src.directory[srcDirIdx], 0, BLOCK_SIZE);
    if (src.tailBlkIdx != 0)addAll(src.tailBlock, 0, src.tailBlkIdx);
}"""


def lizard_row(item: dict) -> tuple:
    return item["cyclomatic_complexity"], item["lines_of_code"], item["token_count"]


@pytest.fixture(scope="module")
def python_items(tmp_path_factory) -> list[dict]:
    # A user rc file that silences everything must not change the results.
    rc = tmp_path_factory.mktemp("rc") / "pylintrc"
    rc.write_text("[MESSAGES CONTROL]\ndisable=all\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYLINTRC", str(rc))
        return measure_quality(PYTHON, "python")


# ---------------------------------------------------------------- reformatting and lizard

def test_one_line_java_method_is_reformatted_as_the_study_did():
    assert reformat_like_study(JAVA_ONE_LINE) == JAVA_REFORMATTED
    (reformatted,) = measure_quality([JAVA_ONE_LINE], "java", reformat=True)
    (raw,) = measure_quality([JAVA_ONE_LINE], "java")
    assert lizard_row(reformatted) == (4, 8, 72) and reformatted["detection_rate"] == 1
    assert lizard_row(raw) == (4, 1, 72)  # as given: one line
    assert reformatted["parses"] is raw["parses"] is True  # judged on the text as given


def test_reformat_quirks_are_kept():
    code = 'int f(int x) { // add one\n  return x + 1; }\nvoid g() { s = "a;b"; }'
    assert reformat_like_study(code) == (
        "int f(int x) {\n    // add one return x + 1;\n}\nvoid g() {\n    s = \"a;\n    b\";\n}")
    assert reformat_like_study("  \n\t ") == ""
    with pytest.raises(ValueError):
        measure_quality(["x = 1"], "python", reformat=True)


@pytest.mark.parametrize("index", sorted(CODEXGLUE))
def test_codexglue_references_give_the_study_values(index):
    java, cs, java_row, cs_row = CODEXGLUE[index]
    (java_item,) = measure_quality([java], "java", reformat=True)
    (cs_item,) = measure_quality([cs], "cs", reformat=True)
    assert lizard_row(java_item) == java_row and java_item["detection_rate"] == 1
    assert lizard_row(cs_item) == cs_row and cs_item["detection_rate"] == 1


def lizard_cli(code: str, filename: str, directory: Path) -> tuple[list[tuple], list[tuple]]:
    """(function rows, warning rows) of the `lizard <file>` command: NLOC, CCN, tokens of each function."""
    path = directory / filename
    path.write_text(code)
    out = subprocess.run([sys.executable, "-m", "lizard", str(path)], capture_output=True, text=True,
                         check=False).stdout
    main, _, warned = out.partition("!!!! Warnings")

    def rows(text):  # the study's parser: lines that start with a digit and contain '@'
        lines = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit() and "@" in line]
        return sorted((int(p[0]), int(p[1]), int(p[2])) for p in lines)

    return rows(main), rows(warned)


@pytest.mark.parametrize("code, filename, language", [
    (SLOPPY, "a.py", "python"), (BIG_AND_SMALL, "b.py", "python"), (BROKEN, "c.py", "python"),
    (NO_FUNCTION, "d.py", "python"), (JAVA_OK, "e.java", "java"), (JAVA_REFORMATTED, "f.java", "java"),
    (CS_OK, "g.cs", "cs"), (CODEXGLUE[4][1], "h.cs", "cs"),
], ids=["py-sloppy", "py-big", "py-broken", "py-none", "java", "java-reformatted", "cs", "cs-one-line"])
def test_lizard_numbers_are_the_cli_function_rows(code, filename, language, tmp_path):
    functions, warned = lizard_cli(code, filename, tmp_path)
    (item,) = measure_quality([code], language)
    assert item["detection_rate"] == int(bool(functions)) and item["functions"] == len(functions)
    assert (item["lines_of_code"], item["cyclomatic_complexity"], item["token_count"]) == tuple(
        sum(row[k] for row in functions) for k in range(3))
    assert item["lizard_warnings"] == len(warned) and bool(warned) == (code is BIG_AND_SMALL)
    if warned:  # the study's parser counted these twice
        study = tuple(sum(row[k] for row in functions + warned) for k in range(3))
        assert study == (item["lines_of_code"] + sum(r[0] for r in warned),
                         item["cyclomatic_complexity"] + sum(r[1] for r in warned),
                         item["token_count"] + sum(r[2] for r in warned))


def test_function_over_the_threshold_counts_once(python_items):
    big = python_items[4]
    functions = analyze_file.analyze_source_code("x.py", BIG_AND_SMALL).function_list
    ccns = sorted(f.cyclomatic_complexity for f in functions)
    assert ccns == [1, 18]
    assert big["cyclomatic_complexity"] == 19 and big["ccn_max"] == 18
    assert big["functions"] == 2 and big["lizard_warnings"] == 1


def test_python_lizard_and_radon(python_items):
    assert [item["parses"] for item in python_items] == [True, True, False, True, True]
    for code, item in zip(PYTHON, python_items):
        functions = analyze_file.analyze_source_code("x.py", code).function_list
        assert lizard_row(item) == (sum(f.cyclomatic_complexity for f in functions), sum(f.nloc for f in functions),
                                    sum(f.token_count for f in functions))
        assert item["maintainability_index"] == pytest.approx(mi_visit(code, multi=True) if item["parses"] else None)
    # 23 tokens: def sign ( x ) : / if x > 0 : / return 1 / if x < 0 : / return - 1 / return 0 (no docstring)
    assert lizard_row(python_items[0]) == (3, 6, 23) and python_items[0]["detection_rate"] == 1
    no_function = python_items[3]
    assert (no_function["detection_rate"], *lizard_row(no_function)) == (0, 0, 0, 0)
    assert no_function["functions"] == 0 and no_function["ccn_max"] is None


# ---------------------------------------------------------------- pylint

def test_unparsable_python_is_one_pylint_error(python_items, tmp_path):
    broken = python_items[2]
    assert [broken[key] for key in PYLINT_KEYS] == [1, 0, 0, 0]
    assert broken["parses"] is False and broken["maintainability_index"] is None
    assert broken["detection_rate"] == 1 and broken["functions"] == 2  # lizard still reads it
    # ... which is what pylint itself says of such a file
    (tmp_path / "broken.py").write_text(BROKEN)
    assert [m["message-id"] for m in run_pylint(tmp_path, ["broken.py"])] == ["E0001"]


def test_pylint_counts_by_category_with_the_study_file_level_messages(python_items, tmp_path):
    # The documented function: only the three file-level conventions of the study's files (its minimum Convention
    # count over parseable items): module name, module docstring, final newline (its outputs were stripped).
    assert [python_items[0][key] for key in PYLINT_KEYS] == [0, 0, 3, 0]
    name = pylint_file_name(7)
    assert name == "000000000000000000000007.py"
    (tmp_path / name).write_text(DOCUMENTED)
    assert sorted(m["symbol"] for m in run_pylint(tmp_path, [name])) == [
        "invalid-name", "missing-final-newline", "missing-module-docstring"]
    # SLOPPY ends with a newline: no missing-final-newline; nothing is disabled (unused-import etc. count)
    (tmp_path / name).write_text(SLOPPY)
    messages = run_pylint(tmp_path, [name])
    assert {"unused-variable", "bare-except", "unused-import", "invalid-name"} <= {m["symbol"] for m in messages}
    assert [python_items[1][key] for key in PYLINT_KEYS] == [
        sum(m["message-id"][0] == letter for m in messages) for letter in "EWCR"]


def test_pylint_fatal_and_info_are_not_counted(monkeypatch):
    def fake_run(cwd, files, disable=()):
        ids = ["F0002", "I0011", "E1101", "W0612", "W0613", "C0103", "R0903", "R1705"]
        return [{"path": str(cwd / files[0]), "message-id": message_id} for message_id in ids]

    monkeypatch.setattr(linters, "run_pylint", fake_run)
    (counts,) = measure_quality(["x = 1\n"], "python")
    assert [counts[key] for key in PYLINT_KEYS] == [1, 2, 1, 2]


BATCH = [
    DOCUMENTED, SLOPPY, SLOPPY,  # the same code twice: duplicate-code would fire across files in one run
    "import numpy as np\nfrom . import sibling\n\ndef fetch(url):\n    return np.array(requests.get(url))",
    "    return self.x",  # a body continuation: does not parse
    "",
    "class Node:\n    def __init__(self, value, children=[]):\n        self.value = value\n"
    "        self.children = children\n    def walk(self):\n        yield self.value\n",
]


@pytest.mark.slow
def test_one_pylint_run_equals_one_run_per_file():
    def key(message):
        return message["message-id"], message["line"], message["column"], message["message"]

    per_file = []
    for index, code in enumerate(BATCH):
        with tempfile.TemporaryDirectory() as tmp:
            name = pylint_file_name(index)
            Path(tmp, name).write_text(code)
            per_file.append(sorted(map(key, run_pylint(Path(tmp), [name]))))
    with tempfile.TemporaryDirectory() as tmp:
        names = [pylint_file_name(index) for index in range(len(BATCH))]
        for name, code in zip(names, BATCH):
            Path(tmp, name).write_text(code)
        batch = defaultdict(list)
        for message in run_pylint(Path(tmp), names, disable=PYLINT_CROSS_FILE):
            batch[Path(message["path"]).name].append(key(message))
    assert [sorted(batch[name]) for name in names] == per_file
    items = measure_quality(BATCH, "python")
    for item, messages in zip(items, per_file):
        assert [item[key] for key in PYLINT_KEYS] == [sum(m[0][0] == letter for m in messages) for letter in "EWCR"]
    assert [items[4][key] for key in PYLINT_KEYS] == [1, 0, 0, 0]
    assert [items[5][key] for key in PYLINT_KEYS] == [0, 0, 1, 0] and items[5]["parses"] is False  # empty file


# ---------------------------------------------------------------- PMD

FAKE_PMD = '''#!{python}
"""A stand-in for PMD's launcher: prints PMD's text report for `check -d DIR -R category/java/CAT.xml -f text`.

Per .java file: one violation line per /*CAT*/ marker in it; a processing error for a file containing UNPARSABLE.
It copies the files it is given to $FAKE_PMD_SEEN and exits with $FAKE_PMD_EXIT when that is set.
"""
import os, re, shutil, sys
args = sys.argv[1:]
assert args[0] == "check" and args[args.index("-f") + 1] == "text", args
directory, rules = args[args.index("-d") + 1], args[args.index("-R") + 1]
category = re.fullmatch(r"category/java/(\\w+)\\.xml", rules).group(1)
print("[main] WARN net.sourceforge.pmd.cli - Progressbar rendering conflicts", file=sys.stderr)
found = errors = 0
for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if os.environ.get("FAKE_PMD_SEEN"):
        shutil.copy(path, os.environ["FAKE_PMD_SEEN"])
    text = open(path).read()
    if "UNPARSABLE" in text:
        errors += 1
        print(f"{{path}}\\t-\\tParseException: Parse exception in file '{{path}}' at line 4\\nWas expecting:")
        continue
    for n in range(text.count(f"/*{{category}}*/")):
        found += 1
        print(f"{{path}}:{{n + 4}}:\\tFakeRule:\\tA fake violation of {{category}}")
if category == "design":
    print("LoosePackageCoupling\\t-\\tNo packages or classes specified")
sys.exit(int(os.environ.get("FAKE_PMD_EXIT", 5 if errors else 4 if found else 0)))
'''


@pytest.fixture()
def fake_pmd(tmp_path) -> Path:
    home = tmp_path / "pmd-bin-7.6.0"
    launcher = home / "bin" / "pmd"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(FAKE_PMD.format(python=sys.executable))
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    return home


def test_pmd_counts_from_a_launcher(fake_pmd, tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("FAKE_PMD_SEEN", str(seen))
    codes = [
        "public int f() {/*codestyle*//*codestyle*/ return 1; /*design*/}",
        "public void g() {/*bestpractices*/ /*errorprone*/ /*multithreading*/ /*performance*/ /*documentation*/}",
        "public void h( { UNPARSABLE /*codestyle*/",
        "public void i() {}",
    ]
    items = measure_quality(codes, "java", pmd=fake_pmd)
    assert [[item[key] for key in PMD_KEYS] for item in items] == [
        [0, 2, 1, 0, 0, 0], [1, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    # The study's wrapper, around the code as given (generation) ...
    wrapped = sorted(path.read_text() for path in seen.iterdir())
    assert wrapped[0] == (f"import java.util.*;\n\npublic class Generated_{0:024x} {{\n    {codes[0]}\n}}")
    # ... and around the reformatted code, in class Translation<i> (translation)
    for path in seen.iterdir():
        path.unlink()
    translated = measure_quality(["public int f() {return 1; /*design*/}"], "java", reformat=True,
                                 pmd=fake_pmd / "bin" / "pmd")
    assert translated[0]["pmd_design"] == 1
    assert {path.read_text() for path in seen.iterdir()} == {
        # a line break follows a brace, none goes before it: "/*design*/}" stays one line
        "import java.util.*;\n\npublic class Translation0 {\n    public int f() {\n    return 1;\n    /*design*/}\n}"}
    assert not any(key in measure_quality(codes[:1], "cs", pmd=fake_pmd)[0] for key in PMD_KEYS)
    assert not any(key in measure_quality(codes[:1], "java")[0] for key in PMD_KEYS)


def test_pmd_failure_and_installation_paths(fake_pmd, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PMD_EXIT", "1")
    with pytest.raises(RuntimeError, match="PMD failed"):
        measure_quality(["public void i() {}"], "java", pmd=fake_pmd)
    assert pmd_command(fake_pmd) == pmd_command(fake_pmd / "bin" / "pmd") == [str(fake_pmd / "bin" / "pmd")]
    jars = tmp_path / "pmd-jars"
    (jars / "lib").mkdir(parents=True)
    (jars / "lib" / "pmd-cli-7.6.0.jar").write_bytes(b"")
    command = pmd_command(jars)
    assert command[-3:] == ["-cp", str(jars.resolve() / "lib" / "*"), "net.sourceforge.pmd.cli.PmdCli"]
    with pytest.raises(ValueError, match="not a PMD installation"):
        pmd_command(tmp_path / "nowhere")


# Set PMD_PATH to a PMD 7.6.0 installation to check the real tool (slow: ~6 JVM starts).
REAL_PMD = os.environ.get("PMD_PATH")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_PMD, reason="PMD_PATH (a PMD 7.6.0 installation) is not set")
def test_real_pmd_gives_the_study_values():
    # The study's rows for these C#->Java translations (bestpractices, codestyle, design, errorprone,
    # multithreading, performance), each the row of most of its nine models: 7, 6, 7 and 8 of 9.
    study = {0: [0, 4, 0, 0, 0, 0], 3: [0, 3, 0, 0, 0, 0], 4: [1, 3, 0, 0, 0, 0], 9: [0, 5, 0, 0, 0, 0]}
    codes = [CODEXGLUE[index][0] for index in study] + ["public void h( {"]
    items = measure_quality(codes, "java", reformat=True, pmd=REAL_PMD)
    assert [[item[key] for key in PMD_KEYS] for item in items] == [*study.values(), [0] * 6]


# ---------------------------------------------------------------- Java/C# parsing, summaries

@pytest.mark.parametrize(
    "language, ok, unbalanced", [("java", JAVA_OK, JAVA_UNBALANCED), ("cs", CS_OK, CS_UNBALANCED)], ids=["java", "cs"]
)
def test_methods_are_parsed_in_a_wrapper_and_measured_unwrapped(language, ok, unbalanced):
    good, bad = measure_quality([ok, unbalanced], language)
    assert good["parses"] is True and bad["parses"] is False
    assert good["cyclomatic_complexity"] == good["ccn_max"] == 3 and good["detection_rate"] == 1
    assert not any(key.startswith(("pylint", "maintainability", "pmd")) for key in good)


def test_empty_input_and_bad_language():
    assert measure_quality([], "python") == [] and measure_quality([], "java") == []
    with pytest.raises(ValueError):
        measure_quality(["x = 1"], "rust")
    with pytest.raises(ValueError, match="not a PMD installation"):  # told at once, whatever the items
        measure_quality([], "java", pmd="/nonexistent")


def test_empty_answer_does_not_count_as_parsing():
    for language in ("python", "java", "cs"):
        items = measure_quality(["", "  \n"], language)
        assert [i["parses"] for i in items] == [False, False]
        assert [i["detection_rate"] for i in items] == [0, 0]


def test_java_answer_with_imports_parses():
    code = "import java.util.*;\n\npublic int add(int a, int b) {\n    return a + b;\n}"
    assert measure_quality([code], "java")[0]["parses"] is True


def summary_item(parses, lizard, functions, ccn_max, warned, **more):
    return {"parses": parses, **dict(zip(LIZARD_KEYS, lizard)), "functions": functions, "ccn_max": ccn_max,
            "lizard_warnings": warned, **more}


def test_summary_sums_study_columns():
    items = [
        summary_item(True, (1, 4, 10, 50), 2, 3, 0, maintainability_index=80.0,
             pylint_error=0, pylint_warning=2, pylint_convention=3, pylint_refactor=1),
        summary_item(True, (0, 0, 0, 0), 0, None, 0, maintainability_index=100.0,
             pylint_error=0, pylint_warning=0, pylint_convention=4, pylint_refactor=0),
        summary_item(False, (1, 18, 40, 130), 1, 18, 1, maintainability_index=None,
             pylint_error=1, pylint_warning=0, pylint_convention=0, pylint_refactor=0),
    ]
    assert summarize_quality(items, "python") == {
        "n": 3, "parse_rate": pytest.approx(2 / 3),
        "detection_rate": 2, "detection_rate_mean": pytest.approx(2 / 3),
        "cyclomatic_complexity": 22, "cyclomatic_complexity_mean": pytest.approx(22 / 3),
        "lines_of_code": 50, "lines_of_code_mean": pytest.approx(50 / 3),
        "token_count": 180, "token_count_mean": 60.0,
        "pylint_error": 1, "pylint_error_mean": pytest.approx(1 / 3), "pylint_warning": 2,
        "pylint_warning_mean": pytest.approx(2 / 3),
        "pylint_convention": 7, "pylint_convention_mean": pytest.approx(7 / 3),
        "pylint_refactor": 1, "pylint_refactor_mean": pytest.approx(1 / 3),
        "functions": 3, "lizard_warnings": 1, "ccn_max": 18, "maintainability_index_mean": 90.0,
    }


def test_summary_java_with_pmd_and_empty():
    items = [summary_item(True, (1, 3, 5, 30), 1, 3, 0, **dict(zip(PMD_KEYS, [1, 5, 0, 2, 0, 1]))),
             summary_item(False, (0, 0, 0, 0), 0, None, 0, **dict(zip(PMD_KEYS, [0] * 6)))]
    summary = summarize_quality(items, "java")
    assert summary["pmd_codestyle"] == 5 and summary["pmd_codestyle_mean"] == 2.5 and summary["pmd_errorprone"] == 2
    assert summary["detection_rate"] == 1 and summary["detection_rate_mean"] == 0.5 and summary["parse_rate"] == 0.5
    assert not any(key.startswith(("pylint", "maintainability")) for key in summary)
    without_pmd = summarize_quality([summary_item(True, (1, 1, 1, 1), 1, 1, 0)], "java")
    assert not any(key.startswith("pmd") for key in without_pmd)
    assert summarize_quality([], "python") == {
        "n": 0, "parse_rate": None, **{k: v for key in LIZARD_KEYS + PYLINT_KEYS for k, v in
                                       ((key, 0), (f"{key}_mean", None))},
        "functions": 0, "lizard_warnings": 0, "ccn_max": None, "maintainability_index_mean": None,
    }


def test_measured_items_summarize():
    summary = summarize_quality(measure_quality([JAVA_OK, JAVA_ONE_LINE], "java", reformat=True), "java")
    assert (summary["cyclomatic_complexity"], summary["lines_of_code"]) == (3 + 4, 9 + 8)
    assert summary["cyclomatic_complexity_mean"] == 3.5 and summary["n"] == 2


def test_translation_cli_reformats_for_analysis_and_runs_pmd_on_java_only(fake_pmd, tmp_path):
    """Through translation/evaluate.py: Java and C# outputs are reformatted before lizard and PMD (PMD on Java only),
    CodeBLEU scores the raw text, and --pmd takes a PMD installation."""
    import json

    from conftest import SAMPLES, load_script, read_json

    one_line = {"cs-java:0": "public int f(int a){ /*codestyle*/ if (a > 0) { return a; } return -a; }",
                "java-cs:0": "public int F(int a){ if (a > 0) { return a; } return -a; }"}
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in one_line.items()))
    out = tmp_path / "eval"
    assert load_script("translation", "evaluate").main([
        "--predictions_file", str(preds), "--translation_dataset", str(SAMPLES / "code_to_code_trans"),
        "--pmd", str(fake_pmd), "--output_dir", str(out)]) == 0
    rows = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    for key, code in one_line.items():
        quality_ = rows[key]["quality"]
        # reformatted: signature, `if` line, return, `}`, return, `}`; unformatted lizard would count 1 line
        assert (quality_["lines_of_code"], quality_["cyclomatic_complexity"], quality_["token_count"]) == (6, 2, 22)
        assert measure_quality([code], "java" if key.startswith("cs-java") else "cs")[0]["lines_of_code"] == 1
        assert rows[key]["prediction"] == code  # the metrics see the raw text
    assert rows["cs-java:0"]["quality"]["pmd_codestyle"] == 1
    assert not any(k.startswith("pmd_") for k in rows["java-cs:0"]["quality"])
    summary = read_json(out / "metrics.json")["quality"]["translation"]
    assert summary["cs-java"]["lines_of_code"] == rows["cs-java:0"]["quality"]["lines_of_code"]


def test_bad_pmd_path_is_one_line(tmp_path, capsys):
    from conftest import SAMPLES, load_script

    code = load_script("translation", "evaluate").main([
        "--predictions_file", str(tmp_path / "p.jsonl"), "--translation_dataset", str(SAMPLES / "code_to_code_trans"),
        "--pmd", str(tmp_path), "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --pmd") and "not a PMD installation" in err[0]

"""Running generated programs out of process (HumanEval canonical solutions, broken answers, escapes), and HumanEval."""

from __future__ import annotations

import tempfile
import time

import pytest

from common.benchmarks import humaneval_program, humaneval_signature, humaneval_summary, load_humaneval
from common.execution import execute_programs
from conftest import processes_with

# 10, 32, 38: helpers the tests call sit in the prompt before the entry point; 32 and 0 also need its imports.
TASKS = ("HumanEval/0", "HumanEval/2", "HumanEval/10", "HumanEval/12", "HumanEval/32", "HumanEval/38",
         "HumanEval/53", "HumanEval/100")


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return {p["task_id"]: p for p in load_humaneval()}


def _function_only(problem: dict) -> str:
    """The prompt from the entry point's `def` on: an answer that relies on the preamble for imports and helpers."""
    return problem["prompt"][problem["prompt"].index(f"def {problem['entry_point']}("):]


def test_load_humaneval(problems):
    assert len(problems) == 164
    assert all(set(p) >= {"task_id", "prompt", "canonical_solution", "test", "entry_point"} for p in problems.values())
    assert problems["HumanEval/0"]["entry_point"] == "has_close_elements"


def test_signature_and_summary(problems):
    problem = problems["HumanEval/0"]
    assert humaneval_signature(problem) == "def has_close_elements(numbers: List[float], threshold: float) -> bool:"
    summary = humaneval_summary(problem)
    assert summary.startswith("Check if in given list of numbers, are any two numbers closer to each other than\n")
    assert ">>> has_close_elements([1.0, 2.0, 3.0], 0.5)\nFalse\n" in summary and summary.endswith("True")
    # Every problem has one: the header parses on its own and the summary is a dedented docstring.
    for problem in problems.values():
        assert humaneval_signature(problem).startswith(f"def {problem['entry_point']}(")
        assert humaneval_summary(problem) and not humaneval_summary(problem).startswith(" ")


def test_program_shapes(problems):
    problem = problems["HumanEval/10"]
    continuation = humaneval_program(problem, problem["canonical_solution"])
    assert continuation.startswith(problem["prompt"] + problem["canonical_solution"].rstrip())
    assert continuation.endswith("check(make_palindrome)\n") and problem["test"].strip() in continuation
    full = humaneval_program(problem, _function_only(problem) + problem["canonical_solution"])
    assert full.count("def is_palindrome(") == 1 and full.count("def make_palindrome(") == 1


def test_canonical_solutions_pass(problems):
    programs = []
    for task in TASKS:
        problem = problems[task]
        solution = problem["canonical_solution"]
        programs += [
            humaneval_program(problem, solution),  # a body continuing the prompt
            humaneval_program(problem, problem["prompt"] + solution),  # a full function, preamble repeated
            humaneval_program(problem, _function_only(problem) + solution),  # a full function, preamble supplied
        ]
    results = execute_programs(programs, timeout=10)
    assert [r.status for r in results] == ["passed"] * len(programs), results
    assert all(r.passed and r.detail == "" for r in results)


def test_wrong_answers_fail(problems):
    problem = problems["HumanEval/0"]
    programs = [
        humaneval_program(problem, "    return not any(numbers)\n"),
        humaneval_program(problem, _function_only(problem) + "    return None\n"),
        humaneval_program(problem, "    return (\n"),  # a syntax error
    ]
    results = execute_programs(programs)
    assert [r.status for r in results] == ["failed"] * 3
    assert not any(r.passed for r in results)
    assert results[0].detail.endswith("AssertionError") and "SyntaxError" in results[2].detail


@pytest.mark.parametrize("escape", ["exit(0)", "quit()", "import sys\nsys.exit(0)", "import os\nos._exit(0)",
                                    "raise SystemExit"])
def test_exit_before_the_tests_is_incomplete(problems, escape):
    problem = problems["HumanEval/0"]
    code = problem["prompt"] + problem["canonical_solution"] + "\n\n" + escape + "\n"
    [result] = execute_programs([humaneval_program(problem, code)])
    assert (result.passed, result.status) == (False, "incomplete"), result


def test_exit_inside_the_function_is_incomplete(problems):
    problem = problems["HumanEval/0"]
    [result] = execute_programs([humaneval_program(problem, "    import os\n    os._exit(0)\n")])
    assert (result.passed, result.status) == (False, "incomplete")


def test_infinite_loop_times_out_and_its_processes_die():
    # The sandbox cannot write a pid file outside; the child is found by a marker in its command line instead.
    marker = f"{time.time_ns() % 10**9}.5"
    program = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen(['sleep', '{marker}'])\n"
        "while True:\n    pass\n"
    )
    start = time.monotonic()
    [result] = execute_programs([program], timeout=1.5)
    elapsed = time.monotonic() - start
    assert (result.passed, result.status) == (False, "timeout") and 1.5 <= elapsed < 5, (result, elapsed)
    assert not processes_with(marker), "the program's own child must be killed with it"




def test_files_stay_in_a_temporary_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where execute_programs makes each program's directory
    program = (
        "import os\n"
        "open('written.txt', 'w').write('x')\n"
        "open(os.path.expanduser('~/home.txt'), 'w').write('x')\n"
        "assert sorted(os.listdir('.')) == ['home.txt', 'written.txt'], os.listdir('.')\n"
        "os.makedirs('locked/inner'); os.chmod('locked', 0o500)\n"  # removal must cope with read-only directories
    )
    [result] = execute_programs([program])
    assert result.passed, result
    assert list(temp.iterdir()) == [], "the temporary directory must be deleted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temp"]


def test_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    program = (
        "import os, sys\n"
        "assert 'SECRET_TOKEN' not in os.environ, 'leaked'\n"
        "assert set(os.environ) == {'PATH', 'HOME', 'LANG', 'LC_ALL', 'PYTHONHASHSEED', 'PYTHONDONTWRITEBYTECODE'}, "
        "sorted(os.environ)\n"
        "assert os.environ['HOME'] == os.getcwd()\n"
        "assert sys.flags.hash_randomization == 0, 'PYTHONHASHSEED=0 was ignored'\n"
        "try:\n    input()\nexcept EOFError:\n    pass\nelse:\n    raise AssertionError('stdin is open')\n"
    )
    [result] = execute_programs([program])
    assert result.passed, result


def test_memory_is_limited():
    [result] = execute_programs(["x = bytearray(3 * 1024**3)\n"])
    assert result.status == "failed" and result.detail.endswith("MemoryError")


def test_results_keep_input_order():
    sleeps = [0.6, 0.0, 0.4, 0.1, 0.3, 0.0]
    programs = [f"import time\ntime.sleep({s})\nassert {i % 2 == 0}\n" for i, s in enumerate(sleeps)]
    results = execute_programs(programs, workers=2)  # they finish out of order
    assert [r.status for r in results] == ["passed", "failed"] * 3
    assert execute_programs([]) == []

"""Running the linters the study ran, one process for many items: pylint (Python) and PMD (Java).

Per item, pylint's message counts by category (`pylint_error`, `pylint_warning`, `pylint_convention`,
`pylint_refactor`) and PMD's violation counts in the study's six categories (`pmd_<category>`); the conventions they
reproduce are documented in common.quality.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYLINT_CATEGORIES = {"E": "error", "W": "warning", "C": "convention", "R": "refactor"}  # first letter of the id
PYLINT_KEYS = tuple(f"pylint_{name}" for name in PYLINT_CATEGORIES.values())
PMD_CATEGORIES = ("bestpractices", "codestyle", "design", "errorprone", "multithreading", "performance")
PMD_KEYS = tuple(f"pmd_{category}" for category in PMD_CATEGORIES)
# Pylint checks that compare the files of one run with each other. One file per run (as the study ran pylint) never
# triggers them, so disabling them makes one run over all items count exactly what per-file runs count.
PYLINT_CROSS_FILE = ("duplicate-code", "cyclic-import")
# Pylint takes ~1.5 s to start and ~25 ms per typical item; a hung run should fail loudly, not stall an evaluation.
PYLINT_TIMEOUT_S = (120.0, 1.0)  # base, per file
PMD_TIMEOUT_S = (300.0, 1.0)  # base, per file, per category
_PMD_MAIN = "net.sourceforge.pmd.cli.PmdCli"


# ---------------------------------------------------------------- pylint

def pylint_file_name(index: int) -> str:
    """A name like the study's `<task id>.py`: 24 hex digits, so its module name starts with a digit (invalid-name)."""
    return f"{index:024x}.py"


def pylint_counts(codes: list[str], parses: list[bool]) -> list[dict[str, int]]:
    """Pylint message counts by category per item, in one pylint run over all items (its start-up dominates).

    An item that does not parse (`parses`) gets pylint's answer for such a file, a single syntax-error, without
    running it.
    """
    counts = [dict.fromkeys(PYLINT_KEYS, 0) for _ in codes]
    linted = {}
    for index, code in enumerate(codes):
        if parses[index]:
            linted[pylint_file_name(index)] = index
        else:
            counts[index]["pylint_error"] = 1
    if not linted:
        return counts
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        for name, index in linted.items():
            # bytes as given: no newline added, none translated
            Path(tmp, name).write_bytes(codes[index].encode("utf-8", "surrogatepass"))
        messages = run_pylint(Path(tmp), sorted(linted), disable=PYLINT_CROSS_FILE)
    for message in messages:
        key = PYLINT_CATEGORIES.get(message["message-id"][:1])
        index = linted.get(Path(message["path"]).name)
        if key is not None and index is not None:
            counts[index][f"pylint_{key}"] += 1
    return counts


def run_pylint(cwd: Path, files: list[str], disable: tuple[str, ...] = ()) -> list[dict]:
    """Pylint's messages (its JSON output) for `files` in `cwd`, in one process, default configuration."""
    # No rc file, no settings from the environment or cwd, no stats in the user's cache; one process (--jobs=1).
    command = [sys.executable, "-m", "pylint", "--rcfile=/dev/null", "--output-format=json", "--score=n",
               "--persistent=n", "--jobs=1", *([f"--disable={','.join(disable)}"] if disable else []), *files]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYLINT")}
    env["PYLINTHOME"] = str(cwd / ".pylint.d")
    base_s, per_file_s = PYLINT_TIMEOUT_S
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=base_s + per_file_s * len(files), check=False)
    # The exit status is a bit mask of the message categories found; bit 32 means pylint itself failed (usage).
    try:
        messages = json.loads(result.stdout)
    except json.JSONDecodeError:
        messages = None
    if result.returncode & 32 or not isinstance(messages, list):
        raise RuntimeError(f"pylint failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return messages


# ---------------------------------------------------------------- PMD

def pmd_command(pmd: str | os.PathLike) -> list[str]:
    """The command that runs PMD's CLI, from a PMD installation: its directory, its launcher, or a jar directory."""
    path = Path(pmd).expanduser()
    if path.is_file():
        return [str(path.resolve())]
    launcher = path / "bin" / "pmd"
    if launcher.is_file():
        return [str(launcher.resolve())]
    if any((path / "lib").glob("pmd-cli-*.jar")):  # jars without the launcher script (e.g. as some packages ship PMD)
        java = shutil.which("java")
        if java is None:
            raise ValueError(f"PMD at {path} needs java on PATH")
        return [java, "-cp", str((path / "lib").resolve() / "*"), _PMD_MAIN]
    raise ValueError(f"not a PMD installation (no bin/pmd or lib/pmd-cli-*.jar): {path}")


def pmd_source(code: str, class_name: str) -> str:
    """The study's wrapper around a Java method for PMD: the item goes in as is, after four spaces."""
    return "import java.util.*;\n\npublic class " + class_name + " {\n    " + code + "\n}"


_PMD_VIOLATION = re.compile(r"^(?P<path>.+?\.java):\d+:\t")


def pmd_counts(launcher: list[str], sources: list[str]) -> list[dict[str, int]]:
    """PMD violations per item and category: one PMD run per category over all items' files.

    PMD's Java rules look at one file at a time, so this counts what the study's per-file runs counted: the report
    lines containing ":\\t" (violations); a file PMD cannot parse yields a processing-error line instead, not counted.
    """
    counts = [dict.fromkeys(PMD_KEYS, 0) for _ in sources]
    if not sources:
        return counts
    with tempfile.TemporaryDirectory(prefix="quality-pmd-") as tmp:
        names = {}
        for index, source in enumerate(sources):
            name = f"item_{index:06d}.java"
            Path(tmp, name).write_bytes(source.encode("utf-8", "surrogatepass"))
            names[name] = index
        for category in PMD_CATEGORIES:
            for line in _run_pmd(launcher, Path(tmp), category, len(sources)):
                match = _PMD_VIOLATION.match(line)
                index = names.get(Path(match["path"]).name) if match else None
                if index is not None and ":\t" in line:
                    counts[index][f"pmd_{category}"] += 1
    return counts


def _run_pmd(launcher: list[str], directory: Path, category: str, files: int) -> list[str]:
    command = [*launcher, "check", "-d", str(directory), "-R", f"category/java/{category}.xml", "-f", "text",
               "--no-progress", "--no-cache"]
    base_s, per_file_s = PMD_TIMEOUT_S
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, errors="replace",
                            timeout=base_s + per_file_s * files, check=False)
    # 0: no violations, 4: violations found, 5: some files could not be processed (e.g. do not parse)
    if result.returncode not in (0, 4, 5):
        raise RuntimeError(f"PMD failed (exit {result.returncode}) for {category}: {result.stderr.strip()[-2000:]}")
    return result.stdout.splitlines()

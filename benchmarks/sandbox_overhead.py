"""Per-program cost of each way `common.execution` can run a generated program.

Runs N trivial programs (`assert 1 + 1 == 2`) one at a time (workers=1) through every mode that works here:
bubblewrap, unshare, and the unsafe plain subprocess; prints the median and 90th-percentile wall time per program
and the ratio of the median to the plain subprocess's.

    python benchmarks/sandbox_overhead.py [-n 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import execution  # noqa: E402

PROGRAM = "assert 1 + 1 == 2\n"


def measure(mode: str, n: int) -> list[float] | None:
    """Milliseconds per program in `mode` (a CODETUNE_SANDBOX value), or None when that mode does not work here."""
    os.environ[execution.SANDBOX_ENV] = mode
    tool, _ = execution._probe()
    if tool != mode and not (mode == "none" and tool == "none"):
        return None
    times = []
    for _ in range(n):
        start = time.perf_counter()
        [result] = execution.execute_programs([PROGRAM], workers=1, unsafe=True)
        times.append((time.perf_counter() - start) * 1000)
        assert result.passed, (mode, result)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="programs per mode (default 50)")
    args = parser.parse_args(argv)
    previous = os.environ.get(execution.SANDBOX_ENV)
    rows = {}
    try:
        for mode, label in (("none", "plain (unsafe)"), ("bwrap", "bwrap"), ("unshare", "unshare")):
            times = measure(mode, args.n)
            if times is not None:
                rows[label] = (statistics.median(times), statistics.quantiles(times, n=10)[-1])
    finally:
        if previous is None:
            os.environ.pop(execution.SANDBOX_ENV, None)
        else:
            os.environ[execution.SANDBOX_ENV] = previous
    plain = rows.get("plain (unsafe)", (None,))[0]
    print(f"{args.n} programs per mode, workers=1")
    print(f"{'mode':<16}{'median ms':>10}{'p90 ms':>10}{'x plain':>9}")
    for label, (median, p90) in rows.items():
        ratio = f"{median / plain:.2f}" if plain else "-"
        print(f"{label:<16}{median:>10.1f}{p90:>10.1f}{ratio:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every entry point shares: logging set-up; a UserError as one line and exit code 2; Ctrl-C as one line and
exit code 130."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from common.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """The toolkit's log lines on stderr; the libraries' own chatter only from warnings up."""
    import datasets
    import transformers

    logging.basicConfig(format=LOG_FORMAT, level=level, force=False)
    logging.getLogger("common").setLevel(level)
    transformers.utils.logging.set_verbosity_warning()
    datasets.utils.logging.set_verbosity_warning()


def run(main: Callable[[], object], interrupted_hint: str | Callable[[], str] | None = None) -> int:
    """0 when `main` returns; 2 with `error: ...` on stderr (no traceback) when it raises a UserError; 130 with
    `interrupted: <hint>` on stderr (no traceback) on Ctrl-C. `interrupted_hint` says what to do next (a callable is
    asked only then, so it can name what `main` got to know, e.g. the output folder)."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _close_progress_bars()  # else they redraw at exit, after the line below
        hint = interrupted_hint() if callable(interrupted_hint) else interrupted_hint
        print(f"interrupted: {hint}" if hint else "interrupted", file=sys.stderr)
        return 130
    return 0


def _close_progress_bars() -> None:
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()

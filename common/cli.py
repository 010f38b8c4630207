"""What every entry point shares: logging set-up, and turning a UserError into one line and exit code 2."""

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


def run(main: Callable[[], object]) -> int:
    """0 when `main` returns, 2 with `error: ...` on stderr (no traceback) when it raises a UserError."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0

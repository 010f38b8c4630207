"""Evaluate one (multi-task) model on all three tasks.

    python multitask/evaluate.py --model_path runs/multitask-qlora-Qwen2.5-Coder-1.5B-Instruct
    python multitask/evaluate.py --predictions_file other_system.jsonl     # score another system's outputs

`--help` lists every option. The recipe is `common.evaluation.evaluate`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.evaluation import run_cli  # noqa: E402


def main(argv=None) -> int:
    return run_cli("multitask", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a model on code generation: CodeXGLUE-derived test split, HumanEval (pass@1) or CoderEval.

    python generation/evaluate.py --model_path runs/generation-qlora-Qwen2.5-Coder-1.5B-Instruct --benchmark humaneval
    python generation/evaluate.py --predictions_file other_system.jsonl     # score another system's outputs

`--help` lists every option. The recipe is `common.evaluation.evaluate`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.evaluation import run_cli  # noqa: E402


def main(argv=None) -> int:
    return run_cli("generation", argv)


if __name__ == "__main__":
    sys.exit(main())

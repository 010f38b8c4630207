"""Multi-task (summarization + generation + translation in one model), QLoRA (4-bit base + LoRA adapters).

The study's run:

    python multitask/qlora_train.py --base_model_name Qwen/Qwen2.5-Coder-1.5B-Instruct --device_batch_size 2 --gradient_accumulation_steps 16 --save_processed_data True --sample_size -1 --val_sample_size -1 --eval_samples 400 --early_stopping_patience 3 --early_stopping_threshold 0.001 --num_train_epochs 5

Offline demo (tiny local model, shipped sample data, CPU, under a minute):

    python multitask/qlora_train.py --demo

Every TrainingArguments flag is accepted too; `--help` lists them all. The recipe is `common.recipe.finetune`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.recipe import run_cli  # noqa: E402


def main(argv=None) -> int:
    return run_cli("multitask", "qlora", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Every `UserError` raise site not covered elsewhere, provoked through a task script's `main(argv)`.

Each case asserts: exit code 2; stderr's last line starts with "error: " and names the flag or file at fault; no
traceback; nothing written (the --output_dir does not exist, and every file under tmp_path is byte-identical).
Sites already covered by test_errors.py, test_evaluation.py, test_study_files.py, test_quality.py,
test_training.py and test_smoke.py are not repeated here. The ids name the raise site (module-function-what).
"""

from __future__ import annotations

import json

import datasets  # noqa: F401 - imported here, their log handlers bind to the session's stderr, not a test's capture
import pytest
import transformers  # noqa: F401

from conftest import SAMPLES, eval_case as _eval, expect_user_error, train_case as _train

DATA = ["--summarization_dataset", str(SAMPLES / "code_to_text"),
        "--translation_dataset", str(SAMPLES / "code_to_code_trans")]
HUMANLABEL = [
    {"question_id": "q1", "input": 'def f(a):\n\t"""Add one."""\n', "signature": "def f(a):", "docstring": "Add one."},
    {"question_id": "q2", "input": 'def g(a):\n\t"""Sub one."""\n', "signature": "def g(a):", "docstring": "Sub one."},
]
CE = "{t}/CEPythonHumanLabel.jsonl"
PREDS = "{t}/preds.jsonl"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _text(content):
    return lambda path, model: path.write_text(content)


def _empty_saved_split(path, model):
    datasets.Dataset.from_dict({"id": [0], "java": ["a"], "cs": ["b"]}).select([]).save_to_disk(
        str(path / "test"), num_shards=1)


def _dir_with(files):
    def write(path, model):
        path.mkdir()
        for name, content in files.items():
            (path / name).write_text(content.replace("{model}", str(model)))
    return write


def _code_to_text_without_functions(path, model):
    rows = [json.loads(line) for line in (SAMPLES / "code_to_text" / "python" / "train.jsonl").read_text().splitlines()]
    (path / "python").mkdir(parents=True)
    for split in ("train", "validation"):
        (path / "python" / f"{split}.jsonl").write_text(_jsonl(dict(r, code="x = 1") for r in rows[:4]))


def _run_of_an_unregistered_task(path, model):
    path.mkdir()
    (path / "run_config.json").write_text(json.dumps({"arguments": {"tasks": ["summarization", "function_name"]}}))


# Inputs, created only when a case's argv names them as {t}/NAME.
FILES = {
    "run": _run_of_an_unregistered_task,
    "run_config_as_config.yaml": _text("arguments: {tasks: [summarization]}\n"),
    "CEPythonHumanLabel.jsonl": _text(_jsonl(HUMANLABEL)),
    "preds.jsonl": _text(_jsonl({"id": f"python:{r['question_id']}", "prediction": r["signature"] + "\n    return a"}
                                for r in HUMANLABEL)),
    "res.jsonl": _text(_jsonl([{"_id": "q1", "generate_results": [{"is_pass": True}]}])),
    "res_noid.jsonl": _text(_jsonl([{"generate_results": [{"is_pass": True}]}])),
    "res_twice.jsonl": _text(_jsonl([{"_id": "q1", "generate_results": [{"is_pass": True}]}] * 2)),
    "ids_not_utf8.txt": lambda path, model: path.write_bytes(b"\xff\xfe not text"),
    "ids_bad.json": _text("{bad"),
    "ids_not_lists.json": _text(json.dumps({"CoderEval Python Ids": "q1"})),
    "ids_none.json": _text("[]"),
    "ids_all.json": _text(json.dumps(["q1", "q2"])),
    "p_blank.jsonl": _text("\n"),
    "p_not_json.jsonl": _text("not json\n"),
    "p_no_id.jsonl": _text(_jsonl([{"prediction": "x"}])),
    "p_wrong_task.jsonl": _text(_jsonl([{"id": "python:0", "task": "translation", "prediction": "x"}])),
    "data.txt": _text("some text"),
    "broken_java.jsonl": _text("not json{\n"),
    "gen_python.jsonl": _text(_jsonl([{"id": 1, "input": "write a function", "output": "def f(): pass"}])),
    "CE_not_dict.jsonl": _text("[1, 2]\n"),
    "tasks.jsonl": _text(_jsonl(HUMANLABEL)),
    "CoderEval4Python.json": _text(json.dumps({"RECORDS": [{"_id": "a1", "code": "def f(a):\n    return a"}]})),
    "no_function": _dir_with({"CoderEval4Python.json": json.dumps(
        {"RECORDS": [{"_id": "a1", "human_label": "Add one.", "code": "x = 1"}]})}),
    "empty_folder": _dir_with({}),
    "CE_not_utf8_python.jsonl": lambda path, model: path.write_bytes(b"\xff\xfe not text"),
    "CE_bad_python.json": _text("{bad"),
    "CE_bad_line_python.jsonl": _text(_jsonl(HUMANLABEL[:1]) + "not json\n"),
    "empty_split": _empty_saved_split,
    "bad.gguf": _text("not a GGUF file"),
    "adapter_no_base": _dir_with({"adapter_config.json": "{}"}),
    "adapter_gone_base": _dir_with({"adapter_config.json": json.dumps(
        {"base_model_name_or_path": "/nonexistent/base"})}),
    "adapter_no_weights": _dir_with({"adapter_config.json": json.dumps({
        "base_model_name_or_path": "{model}", "peft_type": "LORA", "r": 4, "lora_alpha": 8,
        "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"})}),
    "c2t_no_functions": _code_to_text_without_functions,
}


# ----------------------------------------------------------------------------------- before any model or data loads

FAST = [
    # common/args.py: parse_args and its checks (the model path is never opened)
    pytest.param(_train("multitask", "qlora", save_strategy="no", load_best_model_at_end="True"),
                 ["--save_strategy no with --eval_strategy steps", "--load_best_model_at_end False"],
                 id="args-resolve_strategies-load_best"),
    pytest.param(_train("multitask", "fft", logging_steps=0), ["--logging_steps"],
                 id="args-instantiate-TrainingArguments"),
    pytest.param(_train("multitask", "qlora", bnb_4bit_quant_type="int8"), ["--bnb_4bit_quant_type int8"],
                 id="args-validate-quant_type"),
    pytest.param(_train("summarization", "fft", fp16="True", bf16="True"), ["--fp16 and --bf16"],
                 id="args-validate-fp16_bf16"),
    pytest.param(_train("generation", "fft", device_batch_size=0), ["--device_batch_size"],
                 id="args-validate-device_batch_size"),
    pytest.param(_train("translation", "qlora", max_seq_length=8), ["--max_seq_length"],
                 id="args-validate-max_seq_length"),
    pytest.param(_train("multitask", "fft", early_stopping_patience=0), ["--early_stopping_patience"],
                 id="args-validate-early_stopping_patience"),
    # common/gguf.py: resolve_model (reached from the tokenizer, before any data)
    pytest.param(_train("summarization", "fft", base_model_name="{t}/missing.gguf"),
                 ["no such GGUF file", "{t}/missing.gguf"], id="gguf-resolve_model-missing"),
    pytest.param(_train("summarization", "qlora", base_model_name="{t}/bad.gguf"),
                 ["cannot read GGUF file", "{t}/bad.gguf"], id="gguf-convert-unreadable"),
    # common/eval_args.py: parse_eval_args
    pytest.param(_eval("multitask", "--test_dataset", CE, "--predictions_file", PREDS),
                 ["--test_dataset is for single-task entry points"], id="eval_args-test_dataset_multitask"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--export_codereval", "{t}/x.jsonl"),
                 ["--export_codereval", "CoderEval"], id="eval_args-export_without_codereval"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--codereval_results", "{t}/res.jsonl"),
                 ["--codereval_results", "CoderEval"], id="eval_args-results_without_codereval"),
    pytest.param(_eval("summarization", *DATA, "--predictions_file", PREDS, "--benchmark", "humaneval"),
                 ["--benchmark humaneval", "generation"], id="eval_args-benchmark_wrong_task"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--benchmark", "codereval"),
                 ["--benchmark codereval", "--test_dataset"], id="eval_args-codereval_without_file"),
    pytest.param(_eval("multitask", *DATA, "--predictions_file", PREDS, "--benchmark", "codereval"),
                 ["--benchmark codereval", "--generation_dataset"], id="eval_args-codereval_without_file_multitask"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--max_new_tokens", "0"),
                 ["--max_new_tokens 0"], id="eval_args-max_new_tokens"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--timeout", "0"),
                 ["--timeout"], id="eval_args-timeout"),
    pytest.param(_eval("translation", *DATA, "--predictions_file", PREDS, "--max_prompt_length", "8"),
                 ["--max_prompt_length"], id="eval_args-max_prompt_length"),
    pytest.param(_eval("summarization", *DATA, "--predictions_file", PREDS, "--batch_size", "0"),
                 ["--batch_size"], id="eval_args-batch_size"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--languages", "rust"),
                 ["--languages: unknown value rust"], id="eval_args-split_choices-languages"),
    # the task registry: --tasks, flags and benchmarks of other tasks
    pytest.param(_train("summarization", "qlora", tasks="translation"), ["--tasks is for the multitask scripts"],
                 id="run_args-tasks-single_task_script"),
    pytest.param(_train("multitask", "fft", tasks="summarization,review"), ["--tasks: unknown task review"],
                 id="tasks-parse_tasks-unknown"),
    pytest.param(_eval("translation", *DATA, "--predictions_file", PREDS, "--tasks", "generation"),
                 ["--tasks is for multitask/evaluate.py"], id="eval_args-tasks-single_task_script"),
    pytest.param(_eval("multitask", *DATA, "--predictions_file", PREDS, "--tasks", "review"),
                 ["--tasks: unknown task review"], id="eval_args-tasks-unknown"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--benchmark", "mbpp"),
                 ["--benchmark mbpp: choose from codexglue"], id="eval_args-benchmark-unknown"),
    pytest.param(_eval("multitask", *DATA, "--tasks", "summarization,translation", "--predictions_file", PREDS,
                       "--benchmark", "humaneval"), ["--benchmark humaneval is a generation benchmark"],
                 id="eval_args-benchmark-task_not_evaluated"),
    pytest.param(_eval("translation", *DATA, "--predictions_file", PREDS, "--codereval_results", PREDS),
                 ["--codereval_results is for the generation task"], id="eval_args-task_flags-other_task"),
    pytest.param(_eval("multitask", *DATA, "--tasks", "summarization", "--predictions_file", PREDS,
                       "--side_model", "{t}"), ["--side_model", "no config.json"], id="eval_args-side_model-unusable"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--no_such_flag", "1"),
                 ["unrecognized arguments: --no_such_flag 1"], id="eval_args-parser-unknown_flag"),
    pytest.param(_eval("multitask", *DATA, "--model_path", "{t}/run", "--predictions_file", PREDS),
                 ["the run was trained on function_name, which is not a registered task"],
                 id="eval_args-tasks-run_task_not_registered"),
    pytest.param(_train("summarization", "qlora", config="{t}/run_config_as_config.yaml"),
                 ["--config", "unknown setting 'arguments'"], id="configs-unknown_setting"),
    pytest.param(_eval("generation", *DATA, "--predictions_file", PREDS, "--quality", "maybe"),
                 ["--quality", "'maybe'"], id="eval_args-parser_error-bad_bool"),
    # common/eval_items.py: build_items, read_id_list, read_predictions
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS, "--exclude_ids",
                       "{t}/ids_all.json"), ["nothing to evaluate for generation"], id="eval_items-nothing_left"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS, "--exclude_ids",
                       "{t}/ids_not_utf8.txt"), ["--exclude_ids", "ids_not_utf8.txt", "not UTF-8"],
                 id="eval_items-exclude_ids-not_utf8"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS, "--exclude_ids",
                       "{t}/ids_bad.json"), ["--exclude_ids", "ids_bad.json", "not valid JSON"],
                 id="eval_items-exclude_ids-bad_json"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS, "--exclude_ids",
                       "{t}/ids_not_lists.json"), ["--exclude_ids", "ids_not_lists.json", "must hold lists of ids"],
                 id="eval_items-exclude_ids-not_lists"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS, "--exclude_ids",
                       "{t}/ids_none.json"), ["--exclude_ids", "ids_none.json", "lists no ids"],
                 id="eval_items-exclude_ids-no_ids"),
    pytest.param(_eval("summarization", *DATA, "--predictions_file", "{t}/p_not_json.jsonl"),
                 ["--predictions_file: line 1 of", "p_not_json.jsonl", "is not JSON"],
                 id="eval_items-predictions-not_json"),
    pytest.param(_eval("summarization", *DATA, "--predictions_file", "{t}/p_no_id.jsonl"),
                 ["--predictions_file: line 1 of", "needs `id` and `prediction`"], id="eval_items-predictions-no_id"),
    pytest.param(_eval("multitask", *DATA, "--predictions_file", "{t}/p_wrong_task.jsonl"),
                 ["--predictions_file: line 1: no translation item with id 'python:0'"],
                 id="eval_items-predictions-wrong_task"),
    pytest.param(_eval("summarization", *DATA, "--predictions_file", "{t}/p_blank.jsonl"),
                 ["--predictions_file", "p_blank.jsonl", "is empty"], id="eval_items-predictions-empty"),
    # common/evaluation.py: _check_export_targets
    pytest.param(_eval("multitask", *DATA, "--benchmark", "codereval", "--generation_dataset", CE,
                       "--predictions_file", PREDS, "--exclude_ids", "{t}/ids_all.json",
                       "--export_codereval", "{t}/export.jsonl"),
                 ["--export_codereval: none of the evaluated items is a CoderEval task"],
                 id="evaluation-export-no_codereval_items"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS,
                       "--export_codereval", "{t}/no_folder/x.jsonl"),
                 ["--export_codereval", "{t}/no_folder", "does not exist"], id="evaluation-export-no_folder"),
    # common/codereval.py: load_codereval, _codereval_files, _read_records, read_codereval_results
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/CE_not_dict.jsonl",
                       "--predictions_file", PREDS),
                 ["--test_dataset: record 1 of", "CE_not_dict.jsonl", "not a JSON object"],
                 id="codereval-load-record_not_object"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/tasks.jsonl",
                       "--predictions_file", PREDS),
                 ["--test_dataset: cannot tell the language of record 1 of tasks.jsonl", "--language"],
                 id="codereval-load-unknown_language"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/CoderEval4Python.json",
                       "--predictions_file", PREDS),
                 ["--test_dataset: record 1 of", "CoderEval4Python.json", "needs `human_label` or `docstring`"],
                 id="codereval-load-no_description"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/no_function",
                       "--predictions_file", PREDS),
                 ["--test_dataset: record 1 of", "CoderEval4Python.json", "no python function found in `code`"],
                 id="codereval-load-no_function"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/missing.jsonl",
                       "--predictions_file", PREDS),
                 ["--test_dataset: no CoderEval file at", "missing.jsonl"], id="codereval-files-missing"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/empty_folder",
                       "--predictions_file", PREDS),
                 ["--test_dataset: no CoderEval file at", "empty_folder"], id="codereval-files-empty_folder"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/CE_not_utf8_python.jsonl",
                       "--predictions_file", PREDS),
                 ["--test_dataset", "CE_not_utf8_python.jsonl", "not UTF-8"], id="codereval-read-not_utf8"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/CE_bad_python.json",
                       "--predictions_file", PREDS),
                 ["--test_dataset", "CE_bad_python.json", "not valid JSON"], id="codereval-read-bad_json"),
    pytest.param(_eval("generation", "--benchmark", "codereval", "--test_dataset", "{t}/CE_bad_line_python.jsonl",
                       "--predictions_file", PREDS),
                 ["--test_dataset: line 2 of", "CE_bad_line_python.jsonl", "not JSON"], id="codereval-read-bad_line"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS,
                       "--codereval_results", "{t}/res_noid.jsonl"),
                 ["--codereval_results: record 1 of", "res_noid.jsonl", "needs `_id`"], id="codereval-results-no_id"),
    pytest.param(_eval("generation", "--test_dataset", CE, "--predictions_file", PREDS,
                       "--codereval_results", "{t}/res_twice.jsonl"),
                 ["--codereval_results: task q1 appears twice", "res_twice.jsonl"], id="codereval-results-twice"),
    # common/sources.py: load_split, _read_files, _load_local
    pytest.param(_eval("translation", "--translation_dataset", "{t}/empty_split", "--predictions_file", PREDS),
                 ["--translation_dataset: the test split of", "empty_split", "is empty"],
                 id="sources-load_split-empty"),
    pytest.param(_eval("summarization", "--test_dataset", "{t}/broken_java.jsonl", "--predictions_file", PREDS),
                 ["--test_dataset: cannot read", "broken_java.jsonl", "line 1 is not valid JSON"],
                 id="sources-read_files-malformed"),
    pytest.param(_eval("summarization", "--test_dataset", "{t}/data.txt", "--predictions_file", PREDS),
                 ["--test_dataset", "data.txt", "expected a .jsonl, .json, .parquet or .csv file"],
                 id="sources-load_local-extension"),
    # common/data.py: _generation_from_io
    pytest.param(_eval("generation", "--test_dataset", "{t}/gen_python.jsonl", "--predictions_file", PREDS),
                 ["--test_dataset", "gen_python.jsonl", "row 1", "Summary: ... Signature: ..."],
                 id="data-generation_from_io-input"),
    # common/inference.py and common/modeling.py, reached from --model_path without loading any weights
    pytest.param(_eval("summarization", *DATA, "--model_path", "{t}/adapter_no_base", "--num_samples", "1"),
                 ["--model_path", "adapter_no_base/adapter_config.json names no base model"],
                 id="inference-load-adapter_without_base"),
    pytest.param(_eval("summarization", *DATA, "--model_path", "{t}/adapter_gone_base", "--num_samples", "1"),
                 ["--model_path (its base model): no such directory", "/nonexistent/base"],
                 id="model_files-check_model_source-adapter_base"),
    pytest.param(_eval("summarization", *DATA, "--model_path", "nobody/no-such-model", "--num_samples", "1"),
                 ["--model_path", "nobody/no-such-model", "--model_path PATH"], id="modeling-load-hub_model"),
]


@pytest.mark.parametrize("case,needles", FAST)
def test_user_error_before_loading(case, needles, tmp_path, capsys):
    expect_user_error(case, tmp_path / "no-model", tmp_path, capsys, FILES, *needles)


# ------------------------------------------------------------------------------ with the tiny model's tokenizer/weights

NEEDS_MODEL = [
    pytest.param(_train("summarization", "fft", eval_steps=2, save_steps=3, save_processed_data="True"),
                 ["--save_steps 3 must be a multiple of --eval_steps 2"], id="training-set_eval_and_save_steps"),
    pytest.param(_train("translation", "fft", max_seq_length=16),
                 ["every train example is longer than --max_seq_length 16"], id="recipe-prepare_data-too_long"),
    pytest.param(_train("generation", "fft", summarization_dataset="{t}/c2t_no_functions", languages="python"),
                 ["no usable train examples for generation"], id="data-build_split-no_usable_rows"),
    pytest.param(_eval("summarization", *DATA, "--model_path", "{t}/adapter_no_weights", "--num_samples", "1"),
                 ["--model_path: cannot load the adapter in", "adapter_no_weights"], id="inference-adapter-no_weights"),
]


@pytest.mark.parametrize("case,needles", NEEDS_MODEL)
def test_user_error_with_model(case, needles, tiny_model, tmp_path, capsys):
    expect_user_error(case, tiny_model, tmp_path, capsys, FILES, *needles)

"""An evaluation that survives being killed, and never overwrites another one.

Generated answers are appended, batch by batch, to `predictions.partial.jsonl` in the output folder; rerun with the
same arguments, the evaluation continues from them (a kill mid-write loses at most the batch being written, whose
torn line is ignored). Batches are fixed over the whole item list (`common.inference.generate`) and a batch is
reused only whole, so a resumed evaluation generates exactly what an uninterrupted one would, and its final files
are the same. A finished evaluation keeps its raw outputs in predictions.jsonl: rerun with the same arguments, it is
scored again from them without generating.

Sharded (`--shard I/N`): shard I appends the batches it owns (every N-th) to `predictions.shard-I-of-N.partial.jsonl`,
renamed `predictions.shard-I-of-N.jsonl` when it has generated all of them. The run without --shard reads every
shard file as answers already generated -- the same whole batches a single run computes -- folds them into its own
partial file, deletes them, generates whatever no shard did, and writes the three outputs.

What decides the generations is recorded: the arguments that change a number (`comparable`), and a fingerprint of
the items, their prompts and the model's files (`generation_fingerprint`). A rerun whose arguments differ is refused
naming the keys, before the model loads; one whose model or test data changed is refused once the prompts are
built; `--overwrite_output_dir` starts afresh. Only this module's files and the evaluation's three outputs are ever
written into the folder, and a folder that holds any of them from something else is refused.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from common.errors import UserError

logger = logging.getLogger("common")

PARTIAL = "predictions.partial.jsonl"
OUTPUTS = ("predictions.jsonl", "metrics.json", "report.md")
# Arguments that change no number: where the outputs go, what to do with an existing folder, whether running
# generated code unisolated is permitted (the same programs run the same way either way), which shard of the answers
# a run generates, and where the CoderEval harness input is written.
NEUTRAL = frozenset({"output_dir", "overwrite_output_dir", "unsafe_execution", "shard", "export_codereval"})
SHARD_GLOB = "predictions.shard-*.jsonl"  # finished and partial shard files
_PATH_KEYS = ("model_path", "predictions_file", "exclude_ids", "pmd", "bertscore_model", "side_model")
_MODEL_FILES = {"config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json"}
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".gguf"}


def comparable(args) -> dict:
    """The evaluation's arguments that change its numbers, local paths made absolute (so `./run` equals `run`)."""
    return _comparable(asdict(args))


def _comparable(arguments: dict) -> dict:
    values = {k: v for k, v in arguments.items() if k not in NEUTRAL}
    for key, value in values.items():
        if isinstance(value, str) and (key in _PATH_KEYS or key.endswith("_dataset")):
            values[key] = ",".join(_absolute(v) for v in value.split(","))
    return values


def _absolute(path: str) -> str:
    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else path


def model_stamp(model_path: str | None) -> list:
    """Names, sizes and modification times of a local model's weight and configuration files (not of the run's other
    outputs, such as earlier evaluations inside it); a hub id stands for itself."""
    if not model_path:
        return []
    path = Path(model_path).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name in _MODEL_FILES))
    else:
        return [model_path]
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def shard_file(shard: tuple[int, int], finished: bool) -> str:
    index, count = shard
    return f"predictions.shard-{index}-of-{count}{'' if finished else '.partial'}.jsonl"


def item_key(item: dict) -> str:
    return f"{item['task']}\t{item['id']}"


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted((set(old) | set(new)) - NEUTRAL)
    return [f"{k} ({_short(old.get(k))} -> {_short(new.get(k))})" for k in keys if old.get(k) != new.get(k)]


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class EvaluationFolder:
    """The output folder of one evaluation (or of one shard of it): what earlier runs left there, and the partial
    generations."""

    def __init__(self, out: Path, args, shard: tuple[int, int] | None = None):
        self.out = Path(out)
        self.args = comparable(args)
        self.shard = shard
        self.partial = self.out / (PARTIAL if shard is None else shard_file(shard, finished=False))
        self.done: dict[str, str] = {}  # item key -> raw output, from an earlier run with the same arguments
        self.finished = False  # a shard run found the whole evaluation done: nothing to generate
        self.generated = 0  # answers generated (and recorded) by this run
        self._earlier: dict[str, str | None] = {}  # file -> fingerprint of the generations reused from it
        self._earlier_final = False
        self._shard_files: list[Path] = []  # whole evaluation: shard files whose answers it reuses
        self._replaced: list[str] = []  # --overwrite_output_dir: removed once the new evaluation is under way

    def check(self, overwrite: bool) -> None:
        """Refuse a folder whose files are not an evaluation with these arguments (unless `overwrite`, and then only
        files of an evaluation are removed); otherwise remember what earlier runs generated. Runs before the model
        loads and writes nothing."""
        partial, metrics = self.out / PARTIAL, self.out / "metrics.json"
        headers = {}
        for path in ([partial] if partial.exists() else []) + sorted(self.out.glob(SHARD_GLOB)):
            try:
                headers[path] = _partial_header(path)
            except FileNotFoundError:  # another shard renamed its partial file just now: its finished one is read
                continue
        shards = [path for path in headers if path != partial]
        present = [name for name in OUTPUTS if (self.out / name).exists()] + [f.name for f in headers]
        if not present:
            return
        report = _read_json(metrics) if metrics.exists() else None
        recorded = [(f.name, (header or {}).get("arguments")) for f, header in headers.items()]
        if metrics.exists():
            recorded.append((metrics.name, _report_arguments(report)))
        elif not headers:  # predictions.jsonl or report.md alone
            recorded.append((present[0], None))
        for name, arguments in recorded:
            if arguments is None:
                raise UserError(f"--output_dir {self.out} holds {name} from something other than an evaluation of "
                                f"this toolkit; pick another --output_dir")
        if overwrite:
            self._replaced = present
            return
        for name, arguments in recorded:
            changed = _differences(arguments, self.args)
            if changed:
                raise UserError(f"--output_dir {self.out} holds an evaluation with other arguments: "
                                f"{'; '.join(changed)}; pass --overwrite_output_dir to replace it, or pick another "
                                f"--output_dir")
        final = (report or {}).get("evaluation_record", {}).get("generation_fingerprint")
        if self.shard is not None:
            if final:
                self.finished = True
                return
            # every answer any run left here (an interrupted merge's partial file, other shards of any N): batches
            # are the same whatever the split, and only whole ones are reused
            for path, header in headers.items():
                try:
                    self._reuse(path, header)
                except FileNotFoundError:
                    continue
            return
        if partial.exists():
            self._reuse(partial, headers[partial])
        elif final:
            self._earlier[metrics.name] = final
            self._earlier_final = True
            self.done = _final_rows(self.out / "predictions.jsonl")
            logger.info("%s holds this evaluation already: scoring its %d answers again", self.out, len(self.done))
        for shard in shards:
            self._reuse(shard, headers[shard])
            self._shard_files.append(shard)

    def _reuse(self, path: Path, header: dict) -> None:
        rows = _partial_rows(path)
        self._earlier[path.name] = header.get("fingerprint")
        self.done = {**rows, **self.done}
        logger.info("resuming the evaluation in %s: %d answers already generated in %s are reused", self.out,
                    len(rows), path.name)

    def start(self, fingerprint: str) -> None:
        """Before the first answer is generated: the earlier generations are reused only for the same items, prompts
        and model files; then the partial file is opened (with its header) for appending. A whole evaluation folds
        the shards' answers into its own partial file and deletes the shard files."""
        for name, earlier in self._earlier.items():
            if earlier != fingerprint:
                raise UserError(f"--output_dir {self.out} holds an evaluation ({name}) of other items, prompts, model "
                                f"files or runtime (the model or the test data changed since, or it ran on another "
                                f"device, dtype or library version); pass --overwrite_output_dir to replace it")
        self._remove_replaced()
        if self.shard is not None:
            if not self.partial.exists() and not (self.out / shard_file(self.shard, finished=True)).exists():
                self._write_partial(fingerprint, {})
        elif not self.partial.exists() or self._earlier_final or self._shard_files:
            # a finished evaluation's answers move into the partial file, so that a kill now loses nothing
            self._write_partial(fingerprint, self.done)
            for shard in self._shard_files:
                shard.unlink(missing_ok=True)
            self._shard_files = []

    def _write_partial(self, fingerprint: str, rows: dict[str, str]) -> None:
        from common.files import write_text

        self.out.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"arguments": self.args, "fingerprint": fingerprint}, default=str)]
        lines += [json.dumps({"key": k, "output": v}, ensure_ascii=False) for k, v in rows.items()]
        write_text(self.partial, "\n".join(lines) + "\n")

    def record(self, answers: dict[str, str]) -> None:
        """Append one batch's raw outputs, durably (a kill after this returns loses none of them)."""
        with open(self.partial, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps({"key": k, "output": v}, ensure_ascii=False) + "\n"
                            for k, v in answers.items()))
            f.flush()
            os.fsync(f.fileno())
        self.done.update(answers)
        self.generated += len(answers)

    def finish(self) -> None:
        """The final files are written: the partial file has served its purpose (and, rescoring a predictions file
        over an evaluation replaced with --overwrite_output_dir, so has the earlier one's). A shard's partial file
        becomes its finished shard file."""
        self._remove_replaced()
        if self.shard is not None:
            if self.partial.exists():
                os.replace(self.partial, self.out / shard_file(self.shard, finished=True))
            return
        self.partial.unlink(missing_ok=True)

    def start_afresh(self) -> None:
        """--overwrite_output_dir under torchrun: the earlier evaluation's files go now, before the shards write."""
        self._remove_replaced()

    def _remove_replaced(self) -> None:
        """Not in `check`: a run that fails before it generates (a bad model, say) leaves the earlier one whole."""
        if self._replaced:
            for name in self._replaced:
                (self.out / name).unlink(missing_ok=True)
            logger.info("--overwrite_output_dir: removed the earlier evaluation's %s", ", ".join(self._replaced))
            self._replaced = []


def record(args, fingerprint: str | None) -> dict:
    """What metrics.json keeps so that a rerun can tell whether it is the same evaluation."""
    return {"arguments": comparable(args), "generation_fingerprint": fingerprint}


def _report_arguments(report: dict | None) -> dict | None:
    if not report:
        return None
    kept = report.get("evaluation_record")
    if isinstance(kept, dict) and isinstance(kept.get("arguments"), dict):
        return kept["arguments"]
    return _comparable(report["arguments"]) if isinstance(report.get("arguments"), dict) else None


def _partial_header(path: Path) -> dict | None:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    try:
        header = json.loads(first)
    except ValueError:
        return None
    return header if isinstance(header, dict) and "arguments" in header else None


def _partial_rows(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        next(f, None)
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # the line being written when the run was killed
            if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("output"), str):
                rows[row["key"]] = row["output"]
    return rows


def _final_rows(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
                rows[item_key(row)] = row["output"]
            except (ValueError, KeyError, TypeError):
                return {}  # not this toolkit's file after all: generate again
    return rows

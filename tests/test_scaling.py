"""Scale-out settings checked in one process: the shipped accelerate configs, what a launcher's environment turns on
(FSDP, DeepSpeed, mixed precision), the 4-bit storage FSDP needs, and the guards around FSDP saving.

The launches themselves (torchrun, accelerate launch, two processes) are in tests/test_distributed.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from safetensors.torch import save_file

from common.errors import UserError
from common.modeling import build_model, load_tokenizer
from common.run_args import parse_args
from conftest import ROOT, base_args

CONFIGS = ROOT / "configs" / "accelerate"


def _config(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(CONFIGS / name))


def test_the_shipped_accelerate_configs_load_and_say_what_they_are():
    from accelerate.utils import DistributedType

    ddp = _config("ddp.yaml")
    assert ddp.distributed_type == DistributedType.MULTI_GPU and not ddp.use_cpu
    fsdp = _config("fsdp.yaml")
    assert fsdp.distributed_type == DistributedType.FSDP and fsdp.mixed_precision == "bf16"
    assert fsdp.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    layer = fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
    import transformers

    assert layer == "Qwen2DecoderLayer" and hasattr(transformers.models.qwen2.modeling_qwen2, layer)
    assert fsdp.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"  # checkpoints; the final save is whole
    qlora = _config("fsdp_qlora.yaml")
    assert qlora.distributed_type == DistributedType.FSDP and qlora.fsdp_config["fsdp_version"] == 2
    for name, stage in (("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)):
        ds = _config(name)
        assert ds.distributed_type == DistributedType.DEEPSPEED and ds.deepspeed_config["zero_stage"] == stage
        assert ds.deepspeed_config["gradient_accumulation_steps"] == "auto"  # the script's flag decides
    assert _config("deepspeed_zero3.yaml").deepspeed_config["zero3_save_16bit_model"] is True
    for path in CONFIGS.glob("*.yaml"):
        assert "accelerate launch --config_file configs/accelerate/" + path.name in path.read_text(), path


def test_every_config_the_readme_names_is_shipped():
    named = set(re.findall(r"configs/accelerate/([\w.-]+\.yaml)", (ROOT / "README.md").read_text()))
    assert named == {p.name for p in CONFIGS.glob("*.yaml")}


@pytest.mark.parametrize("env, argv, message", [
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, [], "DeepSpeed (--deepspeed, or a DeepSpeed accelerate config) needs the "
                                               "deepspeed package"),
    ({}, ["--deepspeed", "ds.json"], "DeepSpeed (--deepspeed, or a DeepSpeed accelerate config) needs"),
    ({"ACCELERATE_USE_FSDP": "true"}, [], "FSDP needs GPUs"),
    ({"ACCELERATE_MIXED_PRECISION": "bf16"}, ["--bf16", "False"], "--bf16 False, but the accelerate config runs "
                                                                  "mixed_precision bf16"),
])
def test_what_a_launcher_asks_for_and_this_machine_cannot_do_is_one_line(env, argv, message, tiny_model, tmp_path,
                                                                        monkeypatch):
    if "deepspeed" in message.lower():
        import importlib.util

        if importlib.util.find_spec("deepspeed") is not None:
            pytest.skip("deepspeed is installed here")
    if "FSDP" in message and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UserError) as error:
        parse_args("multitask", "qlora", base_args(tiny_model, tmp_path / "out", **{"bnb_4bit_compute_dtype": "float32"})
                   + argv)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


def test_the_launchers_mixed_precision_is_what_the_run_records(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    run = parse_args("generation", "fft", base_args(tiny_model, tmp_path, use_cpu=True))
    assert run.training.bf16 is True and run.to_dict()["training"]["bf16"] is True
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert parse_args("generation", "fft", base_args(tiny_model, tmp_path, use_cpu=True)).training.bf16 is False


def _storage(modules) -> set:
    return {m.weight.dtype for m in modules if isinstance(m, bnb.nn.Linear4bit)}


def test_fsdp_stores_the_4bit_weights_in_the_compute_dtype(tiny_model, tmp_path, monkeypatch):
    """FSDP shards float tensors only, one dtype per wrapped unit: 4-bit weights stored in bf16 here, nothing
    upcast to float32 (norms, embeddings, adapters), the model left for FSDP to place; without FSDP uint8."""
    import common.run_args

    argv = base_args(tiny_model, tmp_path, bnb_4bit_compute_dtype="bfloat16")
    plain = parse_args("multitask", "qlora", argv)
    assert plain.to_dict()["qlora"]["bnb_4bit_quant_storage"] == "uint8"

    monkeypatch.setattr(common.run_args, "_accelerator_available", lambda: True)  # FSDP is refused on CPUs
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")  # what accelerate launch sets for configs/accelerate/fsdp.yaml
    with pytest.raises(UserError, match="QLoRA under FSDP version 1 saves an adapter without weights"):
        parse_args("multitask", "qlora", argv)
    monkeypatch.setenv("FSDP_VERSION", "2")  # configs/accelerate/fsdp_qlora.yaml
    run = parse_args("multitask", "qlora", argv)
    assert run.to_dict()["qlora"]["bnb_4bit_quant_storage"] == "bfloat16"
    with pytest.raises(UserError, match="FSDP shards the 4-bit weights only when they are stored in the compute"):
        parse_args("multitask", "qlora", argv + ["--bnb_4bit_quant_storage", "uint8"])
    model = build_model("qlora", run.model, run.strategy_args, run.training, load_tokenizer(run.model))
    assert _storage(model.modules()) == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # one dtype: FSDP can flatten every unit
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert all(m.weight.quant_state.quant_type == "nf4" for m in quantized)
    # still 4-bit: a bf16 word packs 4 nf4 values
    assert all(m.weight.numel() * 4 == m.in_features * m.out_features for m in quantized)

    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    model = build_model("qlora", plain.model, plain.strategy_args, plain.training, load_tokenizer(plain.model))
    assert _storage(model.modules()) == {torch.uint8}


def test_an_adapter_without_lora_weights_is_not_called_done(tmp_path):
    from common.recipe import _check_adapter

    save_file({"base_model.model.lm_head.weight": torch.zeros(2, 2)}, tmp_path / "adapter_model.safetensors")
    with pytest.raises(UserError, match="holds no LoRA weights"):
        _check_adapter(tmp_path)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(2, 2)},
              tmp_path / "adapter_model.safetensors")
    _check_adapter(tmp_path)


def test_fsdp_checkpoint_folder_exists_before_the_trainer_looks_for_it(tmp_path, monkeypatch):
    """Sharded FSDP checkpoints are written after save_model returns, and the Trainer checks for the best
    checkpoint's folder in between: every process must find it, or they part ways and hang."""
    from transformers import Trainer

    from common.training import TaskTrainer

    seen = []
    monkeypatch.setattr(Trainer, "save_model", lambda self, output_dir=None, _internal_call=False:
                        seen.append(Path(output_dir).is_dir()))
    trainer = TaskTrainer.__new__(TaskTrainer)
    trainer.is_fsdp_enabled = True
    trainer.save_model(str(tmp_path / "checkpoint-3"), _internal_call=True)
    trainer.is_fsdp_enabled = False
    trainer.save_model(str(tmp_path / "checkpoint-6"), _internal_call=True)
    assert seen == [True, False]
    assert os.path.isdir(tmp_path / "checkpoint-3") and not os.path.exists(tmp_path / "checkpoint-6")


def test_a_run_whose_final_adapter_came_out_empty_is_not_complete(tiny_model, tmp_path, monkeypatch, capsys):
    from common.training import TaskTrainer
    from conftest import run_script

    real = TaskTrainer.save_model

    def empty_final_save(self, output_dir=None, _internal_call=False):
        real(self, output_dir, _internal_call)
        if output_dir is None:  # the final save, as FSDP version 1 leaves it: no LoRA tensor
            save_file({}, Path(self.args.output_dir) / "adapter_model.safetensors")

    monkeypatch.setattr(TaskTrainer, "save_model", empty_final_save)
    out = tmp_path / "run"
    assert run_script("generation", "qlora", tiny_model, out, max_steps=1) == 2
    assert "holds no LoRA weights" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (out / "run_complete.json").exists()


def test_two_runs_on_one_machine_never_share_a_data_handoff(tmp_path):
    from common.recipe import handoff_folder

    a, b = handoff_folder("key", str(tmp_path / "a")), handoff_folder("key", str(tmp_path / "b"))
    assert a != b and a == handoff_folder("key", str(tmp_path / "x" / ".." / "a"))
    assert a.parent == b.parent and a.name.startswith("key-")

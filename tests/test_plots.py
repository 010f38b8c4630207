"""Charts: loss.png at the end of a training run, the comparison bar charts, and a chart failure that costs nothing."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import pytest

from common import plots
from conftest import ROOT, read_json, run_script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _state(*rows: dict) -> dict:
    return {"global_step": 4, "log_history": list(rows)}


STATE = _state(
    {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 0.5, "step": 1},
    {"loss": 1.5, "step": 2},
    {"eval_loss": 1.8, "eval_alpha_loss": 1.6, "eval_beta_loss": 2.0, "eval_runtime": 0.1, "step": 2},
    {"loss": float("nan"), "step": 3},
    {"loss": 1.0, "step": 4},
    {"eval_loss": 1.4, "eval_alpha_loss": 1.3, "eval_beta_loss": 1.5, "eval_runtime": 0.1, "step": 4},
    {"train_loss": 1.5, "train_runtime": 2.0, "total_flos": 1.0, "step": 4},
)


def test_training_run_writes_loss_png(tiny_model, tmp_path):
    out = tmp_path / "run"
    assert run_script("multitask", "qlora", tiny_model, out, eval_steps=2) == 0
    assert (out / "run_complete.json").exists()
    png = (out / "loss.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert not list(out.glob("*.tmp"))
    from matplotlib.image import imread

    pixels = imread(out / "loss.png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels[..., :3].var() > 1e-3  # not a blank image
    labels = [line.get_label() for line in plots.loss_figure(read_json(out / "trainer_state.json")).axes[0].lines]
    assert labels == ["train", "eval", "eval generation", "eval summarization", "eval translation"]


def test_loss_figure_draws_train_eval_and_one_line_per_task(tmp_path):
    fig = plots.loss_figure(STATE)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert list(lines) == ["train", "eval", "eval alpha", "eval beta"]
    assert list(lines["train"].get_xdata()) == [1, 2, 4]  # the NaN step and the summary row are left out
    assert list(lines["train"].get_ydata()) == [2.0, 1.5, 1.0]
    assert list(lines["eval"].get_xdata()) == [2, 4] and list(lines["eval"].get_ydata()) == [1.8, 1.4]
    assert list(lines["eval alpha"].get_ydata()) == [1.6, 1.3]
    assert list(lines["eval beta"].get_ydata()) == [2.0, 1.5]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(lines)

    (tmp_path / "trainer_state.json").write_text(json.dumps(STATE))
    assert plots.write_loss_plot(tmp_path) == tmp_path / "loss.png"
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "trainer_state.json"]


def test_nothing_to_plot_writes_nothing(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="common.plots"):
        assert plots.write_loss_plot(tmp_path) is None
        assert "trainer_state.json does not exist" in caplog.text
        (tmp_path / "trainer_state.json").write_text(json.dumps(_state({"train_loss": 1.0, "step": 4})))
        assert plots.write_loss_plot(tmp_path) is None
        assert "logs no finite loss" in caplog.text
    assert not (tmp_path / "loss.png").exists()


VALUES = {
    "bleu": {"fft": 0.21, "qlora": 0.19, "base": 0.05},
    "cyclomatic complexity": {"fft": 345.0, "qlora": 360.0, "base": 400.0},
    "pass@1": {"fft": 0.3, "qlora": 0.25, "base": 0.1},
    "rouge_l": {"fft": 0.4, "qlora": 0.35, "base": 0.2},
    "meteor": {"fft": 0.5, "qlora": 0.45, "base": 0.3},
}
ERRORS = {"bleu": {"fft": (0.19, 0.23), "qlora": (0.17, 0.20)}}


def test_bar_figure_panels_bars_colours_values_and_errors():
    fig = plots.bar_figure("summarization", VALUES, errors=ERRORS)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(VALUES)
    assert len(fig.axes) == 8  # up to 4 per row: 2 rows, the 3 unused panels hidden
    colours = None
    for ax, by_config in zip(panels, VALUES.values()):
        assert [bar.get_height() for bar in ax.patches] == list(by_config.values())
        panel_colours = [bar.get_facecolor() for bar in ax.patches]
        assert len(set(panel_colours)) == 3
        assert colours in (None, panel_colours)  # one colour per configuration in every panel
        colours = panel_colours
    assert [t.get_text() for t in panels[0].texts] == ["0.210", "0.190", "0.050"]
    assert [t.get_text() for t in panels[1].texts] == ["345", "360", "400"]
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["fft", "qlora", "base"]
    assert fig.get_suptitle() == "summarization"

    error_bars = [c for c in panels[0].collections if c.get_segments()]
    assert len(error_bars) == 2  # fft and qlora have an interval, base has none
    segments = sorted(tuple(map(tuple, seg)) for bar in error_bars for seg in bar.get_segments())
    assert [(s[0][1], s[1][1]) for s in segments] == [pytest.approx((0.19, 0.23)), pytest.approx((0.17, 0.20))]
    assert all(not ax.collections for ax in panels[1:])
    assert panels[0].texts[0].xy[1] == pytest.approx(0.23)  # the value sits above its error bar


def test_bar_charts_file_is_deterministic(tmp_path):
    first = plots.bar_charts(tmp_path / "a.png", "summarization", VALUES, errors=ERRORS)
    second = plots.bar_charts(tmp_path / "b.png", "summarization", VALUES, errors=ERRORS)
    assert first == tmp_path / "a.png"
    data = first.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data == second.read_bytes()
    assert b"Software" not in data and b"matplotlib" not in data  # no version text in the file
    other = plots.bar_charts(tmp_path / "c.png", "generation", VALUES, errors=ERRORS)
    assert other.read_bytes() != data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]


def test_a_chart_that_fails_leaves_the_run_complete(tiny_model, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts here")

    monkeypatch.setattr(plots, "loss_figure", broken)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert run_script("summarization", "qlora", tiny_model, out, max_steps=2, save_strategy="no",
                          load_best_model_at_end=False) == 0
    assert "loss.png not written (RuntimeError: no fonts here)" in caplog.text
    done = read_json(out / "run_complete.json")
    assert math.isfinite(done["metrics"]["train_loss"])
    assert not (out / "loss.png").exists() and not (out / "loss.png.tmp").exists()


def test_importing_the_recipe_does_not_import_matplotlib():
    code = "import sys, common.recipe, common.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)

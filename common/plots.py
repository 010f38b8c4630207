"""Charts as PNG files: a training run's loss curves and the bar charts that compare configurations.

    write_loss_plot(output_dir)                  # {output_dir}/loss.png from trainer_state.json, or None
    bar_charts(path, "summarization", {"bleu": {"fft": 0.21, "qlora": 0.19}}, errors={"bleu": {"fft": (0.2, 0.22)}})

`loss_figure` and `bar_figure` build the figures, the writers save them. matplotlib is imported inside the functions
(importing the training stack stays fast) and draws on its Agg canvas only: no pyplot, no display. A file is written
whole (a temporary name in its folder, then renamed over it), and the same input gives byte-identical PNG files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

LOSS_PNG = "loss.png"
PANELS_PER_ROW = 4
DPI = 100
_TASK_LOSS = re.compile(r"eval_(.+)_loss")  # common.training logs each task's eval loss as eval_{task}_loss


def loss_series(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Label -> [(step, loss)]: "train" (the logged training loss), "eval" (eval_loss), "eval <task>" (each task's
    eval loss); only finite values, only labels that have some."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in log_history:
        step = row.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key, value in row.items():
            if key == "loss":
                label = "train"
            elif key == "eval_loss":
                label = "eval"
            elif match := _TASK_LOSS.fullmatch(key):
                label = f"eval {match.group(1)}"
            else:
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(label, []).append((int(step), float(value)))
    return series


def loss_figure(state: dict, title: str = "loss"):
    """The loss curves of a trainer_state.json (a Figure with one line per series), or None with nothing to plot."""
    series = loss_series(state.get("log_history") or [])
    if not series:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for label, points in sorted(series.items(), key=lambda item: (item[0] != "train", item[0] != "eval", item[0])):
        steps, losses = zip(*points)
        if label == "train":
            ax.plot(steps, losses, label=label, color="tab:blue", linewidth=1.5)
        elif label == "eval":
            ax.plot(steps, losses, label=label, color="black", linewidth=2, marker="o")
        else:  # one dashed line per task
            ax.plot(steps, losses, label=label, linestyle="--", marker=".")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def write_loss_plot(output_dir) -> Path | None:
    """Draw {output_dir}/trainer_state.json's train and eval losses (overall and per task) into {output_dir}/loss.png;
    returns its path, or None (the reason logged) when there is nothing to plot."""
    out = Path(output_dir)
    state_file = out / "trainer_state.json"
    if not state_file.is_file():
        logger.info("no %s written: %s does not exist", LOSS_PNG, state_file)
        return None
    state = json.loads(state_file.read_text(encoding="utf-8"))
    fig = loss_figure(state, title=f"loss: {out.name}")
    if fig is None:
        logger.info("no %s written: %s logs no finite loss with a step", LOSS_PNG, state_file)
        return None
    path = _save(fig, out / LOSS_PNG)
    logger.info("loss curves: %s", path)
    return path


def bar_figure(title: str, values: dict[str, dict[str, float]],
               errors: dict[str, dict[str, tuple[float, float]]] | None = None):
    """One panel per metric (each on its own scale), one bar per configuration with its value written on it, the
    same colour per configuration in every panel, one legend; errors[metric][configuration] = (low, high)."""
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    if not values:
        raise ValueError("bar_figure: no metrics to chart")
    configurations = list(dict.fromkeys(name for by_config in values.values() for name in by_config))
    palette = colormaps["tab10" if len(configurations) <= 10 else "tab20"]
    colours = {name: palette(i % palette.N) for i, name in enumerate(configurations)}
    columns = min(PANELS_PER_ROW, len(values))
    rows = math.ceil(len(values) / columns)
    fig = _figure(figsize=(3.2 * columns, 2.8 * rows + 0.8))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (metric, by_config) in zip(axes, values.items()):
        names = [name for name in configurations if name in by_config]
        x = [configurations.index(name) for name in names]
        heights = [float(by_config[name]) for name in names]
        ax.bar(x, heights, color=[colours[name] for name in names], width=0.8)
        spans = (errors or {}).get(metric) or {}
        for xi, name, height in zip(x, names, heights):
            top = height
            if name in spans:
                low, high = (float(v) for v in spans[name])
                ax.errorbar(xi, height, yerr=[[max(0.0, height - low)], [max(0.0, high - height)]], fmt="none",
                            ecolor="black", capsize=3, linewidth=1)
                top = high if height >= 0 else low
            ax.annotate(_number(height), (xi, top if math.isfinite(top) else 0), xytext=(0, 2 if height >= 0 else -2),
                        textcoords="offset points", ha="center", va="bottom" if height >= 0 else "top", fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.set_xticks([])
        ax.set_xlim(-0.6, len(configurations) - 0.4)
        ax.margins(y=0.15)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(values):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.legend(handles=[Patch(facecolor=colours[name], label=name) for name in configurations],
               loc="outside lower center", ncols=min(len(configurations), 4), fontsize=9)
    return fig


def bar_charts(path, title: str, values: dict[str, dict[str, float]], *,
               errors: dict[str, dict[str, tuple[float, float]]] | None = None) -> Path:
    """Write `bar_figure(title, values, errors)` to the PNG file `path`; returns the path."""
    return _save(bar_figure(title, values, errors), Path(path))


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def _figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    """PNG written whole; no "Software" text, so the bytes depend on the figure alone."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

"""Pictures: one episode as a grid (``tfmeta show-episode``) and a run's learning curves
(``tfmeta plot``). matplotlib is an optional extra (``pip install 'tfmeta[plots]'``); without it
these say how to install it. :func:`episode_grid` (numpy only) is also what the trainer logs to
TensorBoard.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from tfmeta.errors import ConfigError

MISTAKE = (1.0, 0.0, 0.0)  # red frame around a wrongly classified query


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("pictures need matplotlib: pip install 'tfmeta[plots]'") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _rows(support_y, query_y):
    """Per class: indices of its support images and of its queries."""
    ways = int(np.max(support_y)) + 1
    return [(np.flatnonzero(support_y == c), np.flatnonzero(query_y == c)) for c in range(ways)]


def episode_grid(support_x, support_y, query_x, query_y, predicted=None, max_queries: int = 5,
                 pad: int = 2) -> np.ndarray:
    """One episode as an RGB image ``[H, W, 3]`` in [0, 1]: a row per class, its support images
    first, a gap, then up to ``max_queries`` of its queries; a query whose ``predicted`` class is
    not its true one gets a red frame."""
    support_x, query_x = np.asarray(support_x, np.float32), np.asarray(query_x, np.float32)
    support_y, query_y = np.asarray(support_y), np.asarray(query_y)
    rows = _rows(support_y, query_y)
    h, w = support_x.shape[1:3]
    shots = max(len(s) for s, _ in rows)
    queries = min(max_queries, max(len(q) for _, q in rows))
    cell_h, cell_w = h + 2 * pad, w + 2 * pad
    grid = np.ones((len(rows) * cell_h, (shots + 1 + queries) * cell_w, 3), np.float32)

    def put(image, row, column, frame=None):
        top, left = row * cell_h, column * cell_w
        if frame is not None:
            grid[top:top + cell_h, left:left + cell_w] = frame
        rgb = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
        grid[top + pad:top + pad + h, left + pad:left + pad + w] = np.clip(rgb, 0, 1)

    for row, (support, query) in enumerate(rows):
        for column, i in enumerate(support):
            put(support_x[i], row, column)
        grid[row * cell_h:(row + 1) * cell_h, shots * cell_w:(shots + 1) * cell_w] = 0.85
        for column, i in enumerate(query[:queries]):
            wrong = predicted is not None and predicted[i] != query_y[i]
            put(query_x[i], row, shots + 1 + column, MISTAKE if wrong else None)
    return grid


def save_episode(path: str, support_x, support_y, query_x, query_y, predicted=None,
                 class_names=None, max_queries: int = 5, title: str = "") -> dict:
    """Write one episode as a PNG: a row per class (its name on the left), support images, then
    queries titled with the predicted class (green when right, red and framed when wrong).
    Returns ``{"ways", "queries", "mistakes"}`` of what is drawn."""
    plt = _pyplot()
    support_y, query_y = np.asarray(support_y), np.asarray(query_y)
    rows = _rows(support_y, query_y)
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(rows))]
    shots = max(len(s) for s, _ in rows)
    queries = min(max_queries, max(len(q) for _, q in rows))
    columns = shots + queries
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.2 * columns, 1.3 * len(rows)),
                                squeeze=False)
    mistakes = drawn = 0
    for row, (support, query) in enumerate(rows):
        cells = [(support_x[i], None) for i in support] + [(query_x[i], i) for i in query[:queries]]
        for column in range(columns):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column >= len(cells):
                axis.axis("off")
                continue
            image, index = cells[column]
            image = np.asarray(image, np.float32)
            axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                        vmin=0, vmax=1)
            if column == 0:
                axis.set_ylabel(names[row], fontsize=8)
            if index is None:
                if row == 0:
                    axis.set_title("support", fontsize=8)
                continue
            drawn += 1
            if predicted is None:
                axis.set_title("query", fontsize=8)
                continue
            right = predicted[index] == query_y[index]
            mistakes += not right
            color = "green" if right else "red"
            axis.set_title(("" if right else "x ") + names[predicted[index]], fontsize=8,
                           color=color)
            if not right:
                for spine in axis.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(3)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return {"ways": len(rows), "queries": drawn, "mistakes": mistakes}


def read_scalars(run_dir: str) -> dict:
    """``{tag: [(step, value), ...]}`` of the scalars a run wrote to ``RUN/tensorboard``."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    files = sorted(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no TensorBoard logs (RUN/tensorboard) to plot")
    scalars: dict = {}
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.dtype.kind not in "fiu" or array.size != 1:
                        continue  # an image (the validation episode), not a scalar
                    number = float(array)
                else:
                    number = float(value.simple_value)
                scalars.setdefault(value.tag, {})[int(event.step)] = number  # a resume rewrites
    return {tag: sorted(values.items()) for tag, values in scalars.items()}


def save_learning_curves(run_dir: str, path: str) -> dict:
    """Write a run's learning curves as a PNG: meta-training loss, and accuracy (meta-training,
    and validation with its 95 % confidence band). Returns ``{tag: number of points}``."""
    plt = _pyplot()
    scalars = read_scalars(run_dir)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    if "train/loss" in scalars:
        steps, values = zip(*scalars["train/loss"])
        loss_axis.plot(steps, values, color="tab:blue", lw=1)
    loss_axis.set(title="meta-training loss", xlabel="meta-step")
    if "train/accuracy" in scalars:
        steps, values = zip(*scalars["train/accuracy"])
        accuracy_axis.plot(steps, values, color="tab:blue", lw=1, label="meta-training")
    if "val/accuracy" in scalars:
        steps, values = map(np.array, zip(*scalars["val/accuracy"]))
        accuracy_axis.plot(steps, values, "o-", color="tab:orange", label="validation")
        ci = dict(scalars.get("val/ci95", []))
        half = np.array([ci.get(int(s), 0.0) for s in steps])
        accuracy_axis.fill_between(steps, values - half, values + half, color="tab:orange",
                                   alpha=0.25, label="validation 95% CI")
    accuracy_axis.set(title="accuracy", xlabel="meta-step", ylim=(0, 1))
    accuracy_axis.legend(fontsize=8)
    figure.suptitle(os.path.basename(os.path.normpath(run_dir)), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return {tag: len(points) for tag, points in scalars.items()}

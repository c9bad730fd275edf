"""Pictures (issue 14): an episode grid, a run's learning curves, the validation episode in
TensorBoard; without matplotlib the commands say what to install."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tfmeta.plots import MISTAKE, episode_grid, read_scalars


def test_episode_grid_rows_by_class_and_frames_the_mistakes():
    support_x = np.stack([np.full((4, 4, 1), c / 3, np.float32) for c in (0, 1, 2)])
    query_x = np.stack([np.full((4, 4, 1), c / 3, np.float32) for c in (0, 1, 2, 0)])
    query_y, predicted = np.array([0, 1, 2, 0]), np.array([0, 2, 2, 0])
    grid = episode_grid(support_x, np.array([0, 1, 2]), query_x, query_y, predicted, pad=1)
    cell = 6
    assert grid.shape == (3 * cell, (1 + 1 + 2) * cell, 3)
    for row in range(3):  # the support image of class c sits at the start of row c
        np.testing.assert_allclose(grid[row * cell + 1:row * cell + 5, 1:5], row / 3)
    # class 1's query was called class 2: red frame; the others have none
    np.testing.assert_allclose(grid[cell, 2 * cell], MISTAKE)
    np.testing.assert_allclose(grid[0, 2 * cell], 1.0)
    np.testing.assert_allclose(grid[0, 3 * cell], 1.0)  # class 0's second query, right


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from tfmeta.data import EpisodeConfig
    from tfmeta.run import RunConfig, TrainConfig, train

    out = str(tmp_path_factory.mktemp("plots") / "run")
    train(RunConfig(algorithm="protonet", episode=EpisodeConfig(3, 1, 2), width=8,
                    train=TrainConfig(steps=4, meta_batch=2, val_every=2, val_episodes=2,
                                      test_episodes=2)), out, progress=False)
    return out


@pytest.mark.xdist_group("plots_run")  # its tests share one trained run (one worker)
def test_the_trainer_logs_the_validation_episode_and_plot_draws_the_curves(run, capsys):
    pytest.importorskip("matplotlib")
    from tfmeta.cli import main

    images = []
    for name in os.listdir(os.path.join(run, "tensorboard")):
        for record in tf.data.TFRecordDataset(os.path.join(run, "tensorboard", name)):
            event = event_pb2.Event.FromString(record.numpy())
            images += [v for v in event.summary.value if v.tag == "val/episode"]
    assert len(images) == 1  # validations at steps 2 and 4: the image at the last
    png = tf.make_ndarray(images[0].tensor)[2]  # [width, height, encoded PNG]
    assert tf.io.decode_png(png).shape[-1] == 3
    scalars = read_scalars(run)
    assert [step for step, _ in scalars["val/accuracy"]] == [2, 4]
    assert len(scalars["train/loss"]) == 4 and "val/episode" not in scalars
    out = os.path.join(run, "curves.png")
    assert main(["plot", run]) == 0 and "val/accuracy (2 points)" in capsys.readouterr().out
    assert tf.io.decode_png(tf.io.read_file(out)).shape[0] > 100
    episode = os.path.join(run, "episode.png")
    assert main(["show-episode", "--checkpoint", run, "--out", episode]) == 0
    said = capsys.readouterr().out
    assert "3 classes, 6 queries" in said and os.path.getsize(episode) > 1000


@pytest.mark.xdist_group("plots_run")  # its tests share one trained run (one worker)
def test_without_matplotlib_the_commands_say_what_to_install(run, monkeypatch, capsys, tmp_path):
    from tfmeta.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for command in (["plot", run, "--out", str(tmp_path / "c.png")],
                    ["show-episode", "--out", str(tmp_path / "e.png")]):
        assert main(command) == 2
        assert "pip install 'tfmeta[plots]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

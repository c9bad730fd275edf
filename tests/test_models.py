import keras
import numpy as np
import tensorflow as tf

from tfmeta.models import DropBlock, build_model, conv4, resnet12


def test_conv4_shapes():
    assert conv4((28, 28, 1)).output_shape == (None, 64)
    assert conv4((84, 84, 3)).output_shape == (None, 1600)
    assert conv4((28, 28, 1), outputs=5, width=32).output_shape == (None, 5)


def test_resnet12_shapes_and_widths():
    model = resnet12((84, 84, 3))
    assert model.output_shape == (None, 640)
    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert sorted(set(convs)) == [64, 160, 320, 640] and len(convs) == 16  # 4 x (3 + shortcut)
    small = build_model("resnet12", (28, 28, 1), "logits", ways=5, width=8)
    assert small.output_shape == (None, 5)
    assert small(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 5)
    assert build_model("resnet12", (28, 28, 1), "features", width=8).output_shape == (None, 80)
    assert build_model("resnet12", (28, 28, 1), "feature_maps", width=8).output_shape[-1] == 80
    assert build_model("conv4", (28, 28, 1), "feature_maps", width=8).output_shape == (
        None, 7, 7, 8)  # Relation Networks' Conv4: the last two blocks unpooled


def test_dropblock_drops_blocks_only_in_training_and_keeps_the_mean():
    tf.random.set_seed(0)
    layer = DropBlock(rate=0.2, block_size=3)
    x = tf.ones((64, 12, 12, 4))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    y = layer(x, training=True).numpy()
    dropped = np.mean(y == 0)
    assert 0.1 < dropped < 0.3
    assert abs(y.mean() - 1.0) < 0.05  # rescaled to keep the expectation
    # Dropped cells come in blocks: a dropped cell usually has a dropped neighbour.
    zero = y[..., 0] == 0
    neighbours = zero[:, 1:, :] & zero[:, :-1, :]
    assert neighbours.sum() > 0.5 * zero[:, 1:, :].sum()

"""Any keras.applications network as a backbone (issue 14): its input convention inside the model
matches Keras' own preprocess_input, pretrained weights come from a local file and can stay
frozen, and a run on such a backbone trains, reloads and predicts by name. Random weights here
(nothing can be downloaded on these machines)."""

import os

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeConfig, EpisodeSampler, generate_glyphs
from tfmeta.errors import ConfigError
from tfmeta.learners import create
from tfmeta.models.applications import ApplicationInput

MOBILENET = "keras_applications:MobileNetV3Small"
EPISODE = EpisodeConfig(3, 1, 2)


@pytest.mark.parametrize("mode, module", [("caffe", keras.applications.resnet50),
                                          ("torch", keras.applications.densenet),
                                          ("tf", keras.applications.mobilenet_v2)])
def test_application_input_is_kerass_preprocess_input_on_0_to_1_images(mode, module):
    rgb = np.random.default_rng(0).uniform(size=(2, 5, 5, 3)).astype(np.float32)
    expected = module.preprocess_input(rgb * 255.0)
    got = ApplicationInput(mode)(rgb)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-4)
    gray = rgb[..., :1]
    np.testing.assert_allclose(np.asarray(ApplicationInput(mode)(gray)), np.asarray(
        module.preprocess_input(np.repeat(gray, 3, -1) * 255.0)), rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def batch():
    glyphs = generate_glyphs(num_classes=12, samples_per_class=4, image_size=32, seed=3)
    sampler = EpisodeSampler(glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


def test_pretrained_weights_load_from_a_file_and_stay_frozen(batch, tmp_path):
    network = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                  input_shape=(32, 32, 3), pooling="avg")
    path = str(tmp_path / "mobilenet.weights.h5")
    network.save_weights(path)
    learner = create("maml", MOBILENET, episode=EPISODE, input_shape=(32, 32, 1), weights=path,
                     freeze_backbone=True)
    inner = next(layer for layer in learner.model.layers if isinstance(layer, keras.Model))
    for loaded, saved in zip(inner.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    head = learner.model.get_layer("head")
    assert learner.meta_variables == head.trainable_variables  # only the 3-way head learns
    before = head.get_weights()
    assert np.isfinite(float(learner.meta_train_step(batch)["loss"]))
    assert not np.array_equal(head.get_weights()[1], before[1])
    for loaded, saved in zip(inner.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(loaded, saved)


def test_bad_backbone_settings_are_one_line_errors(tmp_path):
    for settings, message in (
            ({"backbone": "keras_applications:NoSuchNet"}, "unknown keras.applications network"),
            ({"backbone": MOBILENET, "weights": str(tmp_path / "none.h5")}, "no such file"),
            ({"backbone": MOBILENET, "freeze_backbone": True}, "nothing to meta-learn"),
            ({"backbone": "conv4", "weights": str(tmp_path)}, "are for keras_applications"),
            ({"backbone": MOBILENET, "dropout": 0.2}, "dropout is for the built-in"),
            ({"backbone": MOBILENET, "input_shape": (8, 8, 1)}, "cannot take 8x8x1 images")):
        kwargs = dict({"episode": EPISODE, "input_shape": (32, 32, 1)}, **settings)
        with pytest.raises(ConfigError, match=message):
            create("protonet", kwargs.pop("backbone"), **kwargs)
    (tmp_path / "junk.weights.h5").write_bytes(b"not weights")
    with pytest.raises(ConfigError, match="not weights of MobileNetV3Small"):
        create("protonet", MOBILENET, episode=EPISODE, input_shape=(32, 32, 1),
               weights=str(tmp_path / "junk.weights.h5"))


def test_a_keras_applications_backbone_is_a_setting_of_a_run():
    """A run names it like conv4 (and reloads by name: the keras_file run below goes the same
    way through tfmeta.load); its settings are checked before anything runs."""
    from tfmeta.run import RunConfig

    config = RunConfig(algorithm="maml", model=MOBILENET, freeze_backbone=True).validate()
    assert RunConfig.from_tree(config.to_dict()).model == MOBILENET
    with pytest.raises(ConfigError, match="dropout is for the built-in"):
        RunConfig(model=MOBILENET, dropout=0.1).validate()


def _own_model(path, input_shape=(28, 28, 1)):
    keras.utils.set_random_seed(1)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)  # feature maps: flattened
    model = keras.Model(inputs, x)
    model.save(path)
    return model


@pytest.mark.parametrize("algorithm", ["maml"])  # a head added to it; metric: as applications
def test_your_own_keras_file_is_a_backbone_and_the_run_keeps_a_copy(algorithm, tmp_path, batch):
    import tfmeta
    from tfmeta.cli import main

    path = tmp_path / "mine.keras"
    own = _own_model(str(path))
    out = str(tmp_path / "run")
    assert main(["train", "--algorithm", algorithm, "--model", f"keras_file:{path}",
                 "--ways", "3", "--shots", "1", "--queries", "2", "--steps", "2",
                 "--meta-batch", "2", "--val-every", "2", "--val-episodes", "2",
                 "--episodes", "2", "--no-progress", "--out", out]) == 0
    path.unlink()  # the run reloads from its own copy
    assert os.path.exists(os.path.join(out, "backbone.keras"))
    learner = tfmeta.load(out)
    inner = next(layer for layer in learner.model.layers if isinstance(layer, keras.Model))
    assert [w.shape for w in inner.get_weights()] == [w.shape for w in own.get_weights()]
    assert not np.allclose(inner.get_weights()[0], own.get_weights()[0])  # meta-trained
    images = np.random.default_rng(0).uniform(size=(6, 28, 28, 1)).astype(np.float32)
    labels = np.array([0, 1, 2] * 2)
    a = learner.predict_proba(images, labels, images)[1]
    np.testing.assert_allclose(tfmeta.load(out).predict_proba(images, labels, images)[1], a,
                               atol=1e-6)


def test_a_keras_file_that_does_not_fit_is_one_line(tmp_path):
    path = str(tmp_path / "rgb.keras")
    _own_model(path, input_shape=(32, 32, 3))
    with pytest.raises(ConfigError, match=r"takes images of shape \(32, 32, 3\), the data are "
                                          r"\(28, 28, 1\)"):
        create("protonet", f"keras_file:{path}", episode=EPISODE, input_shape=(28, 28, 1))
    (tmp_path / "junk.keras").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a Keras model file"):
        create("protonet", f"keras_file:{tmp_path / 'junk.keras'}", episode=EPISODE)
    with pytest.raises(ConfigError, match="no such file"):
        create("protonet", f"keras_file:{tmp_path / 'none.keras'}", episode=EPISODE)


def _hub_preset(path, converter=True):
    """A small KerasHub ResNet saved as a preset folder, with the ImageNet image converter a
    classifier preset carries (random weights: presets cannot be downloaded here)."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    if not converter:
        backbone.save_to_preset(path)
        return backbone, None
    image_converter = keras_hub.layers.ResNetImageConverter(
        image_size=(28, 28), scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=10,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(image_converter))
    classifier.save_to_preset(path)
    return backbone, image_converter


def test_a_keras_hub_preset_folder_is_a_backbone_with_its_own_input_convention(tmp_path):
    """The preset's image converter (scale and offset on 0-255 pixels, as its pretraining fed
    them) is a layer inside the model, which takes [0, 1] images; the preset's weights are the
    starting point, and stay with --freeze-backbone."""
    from tfmeta.models.hub import PresetInput

    path = str(tmp_path / "resnet")
    backbone, converter = _hub_preset(path)
    images = np.random.default_rng(1).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    learner = create("maml", f"keras_hub:{path}", episode=EPISODE, input_shape=(28, 28, 1),
                     freeze_backbone=True)
    preset_input = next(l for l in learner.model.layers if isinstance(l, PresetInput))
    rgb = np.repeat(images, 3, axis=-1)
    np.testing.assert_allclose(preset_input(images), converter(rgb * 255.0), atol=1e-4)
    inner = next(l for l in learner.model.layers if type(l).__name__ == "ResNetBackbone")
    for mine, theirs in zip(inner.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert not inner.trainable and learner.model.get_layer("head").trainable


def test_a_keras_hub_run_trains_and_reloads_without_the_preset_folder(tmp_path):
    import shutil

    import tfmeta
    from tfmeta.cli import main

    path = tmp_path / "resnet"
    _hub_preset(str(path), converter=False)  # a bare backbone: the images go in as they are
    out = str(tmp_path / "run")
    assert main(["train", "--algorithm", "protonet", "--model", f"keras_hub:{path}",
                 "--ways", "3", "--shots", "1", "--queries", "2", "--steps", "2",
                 "--meta-batch", "2", "--val-every", "2", "--val-episodes", "2",
                 "--episodes", "2", "--no-progress", "--out", out]) == 0
    learner = tfmeta.load(out)
    images = np.random.default_rng(0).uniform(size=(6, 28, 28, 1)).astype(np.float32)
    labels = np.array([0, 1, 2] * 2)
    before = learner.predict_proba(images, labels, images)[1]
    shutil.rmtree(path)  # the run reloads from its own copy
    assert os.path.isfile(os.path.join(out, "backbone_preset", "config.json"))
    np.testing.assert_allclose(tfmeta.load(out).predict_proba(images, labels, images)[1], before,
                               atol=1e-6)


def test_a_keras_hub_spec_that_is_not_a_preset_folder_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as where it is not installed
    with pytest.raises(ConfigError, match=r"keras-hub package: pip install 'tfmeta\[hub\]'"):
        create("protonet", f"keras_hub:{tmp_path}", episode=EPISODE)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="not a KerasHub preset folder.*never downloads"):
        create("protonet", "keras_hub:resnet_50_imagenet", episode=EPISODE)
    with pytest.raises(ConfigError, match="preset folder holds its weights"):
        create("protonet", f"keras_hub:{tmp_path}", episode=EPISODE, weights=str(tmp_path))


def test_image_size_and_channels_follow_the_data_and_the_backbone(tmp_path, capsys):
    """Issue 27: a folder of 24x24 RGB images on MobileNetV3Small (which takes at least 32x32)
    trains without --image-size / --channels: colour from the data, the size raised to the
    backbone's smallest input, said in the run's first lines and recorded in run.json (it failed
    with "cannot take 28x28x1 images" while the defaults were fixed at 28x28x1)."""
    import json

    from PIL import Image

    from tfmeta.cli import main

    rng = np.random.default_rng(0)
    for c in range(14):
        os.makedirs(tmp_path / "data" / f"class{c}")
        colour = rng.integers(0, 256, 3)
        for i in range(4):
            pixels = np.clip(colour + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / f"class{c}" / f"{i}.png")
    out = str(tmp_path / "run")
    assert main(["train", "--algorithm", "protonet", "--model", MOBILENET, "--dataset",
                 f"folder:{tmp_path / 'data'}", "--ways", "2", "--queries", "2", "--steps", "1",
                 "--meta-batch", "1", "--val-every", "1", "--val-episodes", "1", "--episodes",
                 "1", "--no-progress", "--out", out]) == 0
    said = capsys.readouterr().out
    assert "images 32x32x3 (from the data, raised to the backbone's smallest input" in said
    data = json.load(open(os.path.join(out, "run.json")))["data"]
    assert (data["image_size"], data["channels"]) == (32, 3)


def test_image_shape_from_folders_archives_and_named_datasets(tmp_path):
    import zipfile

    from PIL import Image

    from tfmeta.data import DataConfig
    from tfmeta.data.image_shape import with_image_shape

    for c, (size, mode) in enumerate([(40, "L"), (40, "L"), (36, "L")]):
        os.makedirs(tmp_path / "gray" / f"c{c}")
        Image.new(mode, (size, size)).save(tmp_path / "gray" / f"c{c}" / "0.png")
    gray, note = with_image_shape(DataConfig(f"folder:{tmp_path / 'gray'}"))
    assert (gray.image_size, gray.channels) == (40, 1) and "from the data" in note
    with zipfile.ZipFile(tmp_path / "gray.zip", "w") as z:
        for c in range(3):
            z.write(tmp_path / "gray" / f"c{c}" / "0.png", f"gray/c{c}/0.png")
    assert with_image_shape(DataConfig(f"zip:{tmp_path / 'gray.zip'}"))[0] == dataclass_with(
        gray, dataset=f"zip:{tmp_path / 'gray.zip'}")
    assert with_image_shape(DataConfig("glyphs"))[0].image_size == 28
    given = DataConfig(f"folder:{tmp_path / 'gray'}", image_size=20, channels=3)
    assert with_image_shape(given) == (given, "")  # given values are kept, nothing said


def dataclass_with(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)

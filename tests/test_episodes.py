import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import DataError, EpisodeConfig, EpisodeSampler, ImageSource


def _indexed_source(counts):
    """Each image's pixels encode (class, index), so an episode can be traced back exactly."""
    images, c_of = [], []
    for c, n in enumerate(counts):
        for i in range(n):
            images.append(np.full((4, 4, 1), 0, np.uint8))
            images[-1][0, 0, 0], images[-1][0, 1, 0] = c, i
            c_of.append(c)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ImageSource(np.stack(images), tuple(f"c{c}" for c in range(len(counts))), offsets)


def _decode(x):
    pixels = np.round(x[..., 0, :2, 0] * 255).astype(int)
    return pixels[..., 0], pixels[..., 1]


def test_meta_batch_shapes_labels_and_disjointness():
    source = _indexed_source([8] * 12)
    sampler = EpisodeSampler(source, EpisodeConfig(ways=5, shots=2, queries=3), meta_batch=4, seed=7)
    batch = next(iter(sampler.dataset()))
    sx, sy, qx, qy = [t.numpy() for t in batch]
    assert sx.shape == (4, 10, 4, 4, 1) and sy.shape == (4, 10)
    assert qx.shape == (4, 15, 4, 4, 1) and qy.shape == (4, 15)
    assert sx.dtype == np.float32 and sy.dtype == np.int32
    label_orders = set()
    for b in range(4):
        sc, si = _decode(sx[b])
        qc, qi = _decode(qx[b])
        assert np.bincount(sy[b]).tolist() == [2] * 5 and np.bincount(qy[b]).tolist() == [3] * 5
        for label in range(5):  # one class per label, in support and query alike
            assert len(set(sc[sy[b] == label]) | set(qc[qy[b] == label])) == 1
        assert len(set(sc)) == 5
        support = set(zip(sc, si))
        query = set(zip(qc, qi))
        assert len(support) == 10 and len(query) == 15 and not support & query
        label_orders.add(tuple(sc[sy[b] == k][0] for k in range(5)))
    assert len(label_orders) == 4  # labels assigned at random per task


def test_same_seed_same_episodes_and_resume_position():
    source = _indexed_source([6] * 10)
    e = EpisodeConfig(3, 1, 2)
    a = [b[0].numpy() for b in EpisodeSampler(source, e, 2, seed=5).dataset(num_batches=5)]
    b = [b[0].numpy() for b in EpisodeSampler(source, e, 2, seed=5).dataset(num_batches=5)]
    c = [b[0].numpy() for b in EpisodeSampler(source, e, 2, seed=6).dataset(num_batches=5)]
    resumed = [b[0].numpy() for b in EpisodeSampler(source, e, 2, seed=5).dataset(start=3,
                                                                                  num_batches=2)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))
    np.testing.assert_array_equal(np.stack(a[3:]), np.stack(resumed))


def test_every_class_comes_from_the_split_and_all_are_used():
    source = _indexed_source([5] * 7)
    sampler = EpisodeSampler(source, EpisodeConfig(5, 1, 1), 8, seed=0)
    seen = set()
    for batch in sampler.dataset(num_batches=10):
        seen |= set(_decode(batch[0].numpy())[0].ravel())
    assert seen == set(range(7))


def test_small_classes_are_left_out_with_a_warning():
    source = _indexed_source([3, 10, 10, 10, 2, 10])
    with pytest.warns(UserWarning, match=r"2 of 6 classes have fewer than shots \+ queries = 5 "
                                         r"images and are left out: c0 \(3\), c4 \(2\)"):
        sampler = EpisodeSampler(source, EpisodeConfig(3, 2, 3), 2)
    classes = set(_decode(next(iter(sampler.dataset()))[0].numpy())[0].ravel())
    assert classes <= {1, 2, 3, 5}


def test_too_few_classes_is_a_clear_error():
    with pytest.raises(DataError, match="need 5 classes of at least 6 images, but only 3"):
        with pytest.warns(UserWarning):
            EpisodeSampler(_indexed_source([6, 6, 6, 2]), EpisodeConfig(5, 1, 5))
    with pytest.raises(DataError, match="shots must be a positive integer"):
        EpisodeConfig(5, 0, 5)


def test_sampler_works_inside_a_traced_function_twice():
    sampler = EpisodeSampler(_indexed_source([4] * 5), EpisodeConfig(2, 1, 1), 1)

    @tf.function
    def first_label(i):
        return sampler.episode_at(i)[1][0]

    assert int(first_label(tf.constant(0, tf.int64))) == 0
    assert next(iter(sampler.dataset()))[0].shape == (1, 2, 4, 4, 1)


def test_within_group_episodes_draw_every_class_from_one_group(small_glyphs):
    from tfmeta.data.episodes import parent_folder

    names = tuple(f"alphabet{c % 3}/char{c}" for c in range(small_glyphs.num_classes))
    source = ImageSource(small_glyphs.images, names, small_glyphs.offsets)
    group_of_image = {}
    for c in range(source.num_classes):
        for image in source.class_images(c):
            group_of_image[image.tobytes()] = c % 3
    sampler = EpisodeSampler(source, EpisodeConfig(5, 1, 1), 1, seed=2, group_of=parent_folder)
    seen = set()
    for i in range(12):
        support_x = (sampler.episode_at(i)[0].numpy() * 255).round().astype(np.uint8)
        groups = {group_of_image[x.tobytes()] for x in support_x}
        assert len(groups) == 1
        seen |= groups
    assert seen == {0, 1, 2}  # every group is drawn
    with pytest.raises(DataError, match="within one group"):
        EpisodeSampler(source.subset(range(12)), EpisodeConfig(5, 1, 1), group_of=parent_folder)


def test_a_share_of_training_episodes_within_one_group(tmp_path):
    """Issue 28 point 5: ``within_group`` of the episodes draw every class from one group (an
    alphabet), the others from all classes; each episode's choice follows its seed."""
    from tfmeta.data import from_arrays
    from tfmeta.data.episodes import group_function, parent_folder
    from tfmeta.errors import ConfigError
    from tfmeta.run import RunConfig

    names = [f"alphabet{g}/char{c}" for g in range(4) for c in range(6)]
    labels = np.repeat(np.arange(len(names)), 3)
    # each class's images hold its index as their pixel value: an episode shows its classes
    images = np.broadcast_to(labels[:, None, None, None], (len(labels), 8, 8, 1)).astype(np.uint8)
    source = from_arrays(images, np.array(names)[labels])
    group = group_function("parent-folder")

    def one_group_share(share, episodes=400):
        sampler = EpisodeSampler(source, EpisodeConfig(4, 1, 1), 1, seed=3, group_of=group,
                                 within_group=share)
        single = 0
        for i in range(episodes):
            support_x = sampler.episode_at(i)[0].numpy()
            classes = np.unique(np.round(support_x * 255).astype(int))
            assert len(classes) == 4
            single += len({parent_folder(names[c]) for c in classes}) == 1
        return single / episodes

    assert one_group_share(1.0) == 1.0
    # from all 24 classes, 4 share a group with probability 4 * (5*4*3)/(23*22*21) = 2.3 %
    assert one_group_share(0.0) < 0.06
    assert 0.40 < one_group_share(0.5) < 0.60
    assert group_function("folder:1")("a/b/c@rot90") == "a"
    (tmp_path / "groups.csv").write_text("x,animals\ny,animals\nz,tools\n")
    groups = group_function(str(tmp_path / "groups.csv"))
    assert groups("x") == groups("y@rot180") == "animals" != groups("z")
    with pytest.raises(ConfigError, match="needs data.class_groups"):
        RunConfig().with_values({"train.within_group": 0.5}).validate()
    with pytest.raises(DataError, match="class_groups must be"):
        RunConfig().with_values({"train.within_group": 0.5,
                                 "data.class_groups": "grandparent"}).validate()

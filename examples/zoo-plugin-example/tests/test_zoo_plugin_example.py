"""zoo-plugin-example's own tests: zoo's contract kit first, then what is ours alone.

Run with ``python -m pytest examples/zoo-plugin-example/tests`` once the package is
installed (``pip install -e examples/zoo-plugin-example``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import zoo
import zoo.testing

from zoo_plugin_example import builders, gratings

#: Small enough to check in a second or two.
TINY = {"gratings": {"num_images": 40, "min_size": 24, "max_size": 40}}


def test_every_component_keeps_zoos_contracts():
    zoo.testing.check_plugin("example", params=TINY)


def params(**changes: object) -> dict[str, object]:
    """gratings' declared defaults, with ``changes``."""
    return {p.name: p.default for p in gratings.PARAMS} | changes


def change(gray: np.ndarray, dx: int, dy: int) -> float:
    """Mean brightness change from each pixel to the one ``(dx, dy)`` away."""
    h, w = gray.shape
    here = gray[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    there = gray[max(0, dy) : h + min(0, dy) or None, max(0, dx) : w + min(0, dx) or None]
    return float(np.abs(there - here).mean())


@pytest.mark.parametrize("name", list(gratings.ORIENTATIONS))
def test_the_stripes_run_along_the_class_orientation(name: str):
    angle = math.radians(gratings.ORIENTATIONS[name])
    rng = np.random.default_rng(0)
    image = gratings.draw(rng, math.degrees(angle), params(noise=0.0, jitter=0.0, min_size=48))
    gray = image.mean(axis=-1)

    # One pixel along the stripes the brightness stays; one pixel across, it changes.
    across = change(gray, round(math.cos(angle)), round(math.sin(angle)))
    along = change(gray, round(-math.sin(angle)), round(math.cos(angle)))
    assert along < across / 10


def test_the_same_seed_draws_the_same_images_and_a_balanced_set():
    first, labels = gratings.generate(params(num_images=20, classes=4))
    again, _ = gratings.generate(params(num_images=20, classes=4))

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.bincount(labels).tolist() == [5, 5, 5, 5]


def test_min_image_size_is_exact_for_the_number_of_blocks():
    sizes = [builders.min_image_size(blocks) for blocks in (1, 2, 3)]
    built = builders.build_separable_cnn((sizes[2], sizes[2], 3), params_for_backbone(blocks=3))

    assert sizes == [3, 7, 15]
    assert built.model.output_shape[1:3] == (1, 1)
    with pytest.raises(zoo.ZooError, match="at least 15x15"):
        builders.build_separable_cnn((14, 14, 3), params_for_backbone(blocks=3))


def params_for_backbone(**changes: object) -> dict[str, object]:
    return {"width": 4, "blocks": 3, "trainable": True} | changes


def test_attention_pool_refuses_feature_vectors_with_a_clear_error():
    import keras

    with pytest.raises(zoo.ZooError, match=r"needs a feature map \[batch, h, w, c\]"):
        builders.build_attention_pool(keras.Input((8,)), 2, {"dropout": 0.0})


def test_attention_pooling_averages_until_it_learns_where_to_look():
    from zoo_plugin_example.layers import AttentionPooling

    features = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    features[:, 1, 2, 0] = 50.0  # one position stands out in the first channel
    pooling = AttentionPooling()
    pooling.build(features.shape)

    untrained = np.asarray(pooling(features))  # zero scores: every position weighs the same
    pooling.score.assign(np.array([[1.0], [0.0], [0.0], [0.0]], "float32"))
    looking = np.asarray(pooling(features))  # a score on channel 0 picks that position

    np.testing.assert_allclose(untrained, features.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(looking, features[:, 1, 2, :], atol=1e-4)

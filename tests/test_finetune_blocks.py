"""What --fine-tune-layers unfreezes: the top layers, an encoder counted in blocks, and
never a batch norm, not even one inside a block.

KerasHub's ViT, DeiT and DINOv2 keep all their transformer blocks in one encoder layer;
its MobileNet and EfficientNet keep batch norms inside their blocks. The model here has
both, in plain Keras.
"""

from __future__ import annotations

from typing import Any

import keras
import pytest

import zoo
from zoo.train.finetune import unfreeze_top


class Block(keras.layers.Layer):
    """A dense layer and its batch norm, as a convolution block holds them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, name="dense")
        self.norm = keras.layers.BatchNormalization(name="norm")

    def call(self, x: Any) -> Any:
        return self.norm(self.dense(x))


class Encoder(keras.layers.Layer):
    """Three blocks and a final norm in one layer, as KerasHub's ViTEncoder holds them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blocks = [Block(name=f"block{i}") for i in range(3)]
        self.final = keras.layers.LayerNormalization(name="final_norm")

    def call(self, x: Any) -> Any:
        for block in self.blocks:
            x = block(x)
        return self.final(x)


def frozen_backbone() -> keras.Model:
    inputs = keras.Input((4,))
    features = Encoder(name="encoder")(Block(name="stem")(inputs))
    model = keras.Model(inputs, features, name="backbone")
    model.trainable = False
    return model


def trainable(model: keras.Model) -> set[str]:
    return {weight.path for weight in model.trainable_weights}


def test_an_encoder_of_blocks_is_counted_in_blocks():
    backbone = frozen_backbone()

    unfrozen = unfreeze_top(backbone, "2", "blocks")

    assert unfrozen.layers == ("block2", "final_norm")
    assert trainable(backbone) == {
        "encoder/block2/dense/kernel",
        "encoder/block2/dense/bias",
        "encoder/final_norm/gamma",
        "encoder/final_norm/beta",
    }


def test_a_block_of_plain_layers_stays_one_layer_and_its_batch_norm_frozen():
    backbone = frozen_backbone()

    unfrozen = unfreeze_top(backbone, "stem", "blocks")  # from the stem to the top: everything

    assert unfrozen.layers == ("stem", "block0", "block1", "block2", "final_norm")
    assert not any("/norm/" in path for path in trainable(backbone))
    assert len(trainable(backbone)) == 4 * 2 + 2


def test_counting_beyond_the_blocks_is_a_clear_error():
    with pytest.raises(zoo.ZooError, match="has 5 layers"):
        unfreeze_top(frozen_backbone(), "6", "blocks")

"""The KerasHub presets zoo names: one row per curated backbone of ``keras_hub.py``.

Names, presets and cards only, apart from the code that builds them, in the manner of
KerasHub's own ``keras_hub/src/models/*/*_presets.py`` (where the presets and their
metadata come from; ``tests/test_keras_hub.py`` checks them against the installed
KerasHub).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Curated:
    """A KerasHub preset under a short name.

    Args:
        name: The backbone's name in zoo.
        preset: The KerasHub preset it loads by default.
        family: The network family.
        description: The network, its paper and its training data.
        parameters: The parameters of the image model zoo builds, as Keras counts them.
        image_size: The image side of the preset's image converter.
        handle: Where KerasHub downloads the preset from (its ``kaggle_handle``), so
            ``zoo list`` and ``zoo fetch`` know its files without importing KerasHub.
    """

    name: str
    preset: str
    family: str
    description: str
    parameters: int
    image_size: int
    handle: str


# Parameters: KerasHub's own count in keras_hub/src/models/*/*_presets.py, except
# EfficientNet (that table gives timm's count with the classifier; 4,049,564 is
# EfficientNetBackbone built from keras_hub's timm b0 configuration) and CLIP and
# SigLIP, whose tables count both encoders (149,620,934 and 203,156,230, which the
# image encoders counted here plus the text encoders add up to exactly). Handles:
# KerasHub's ``kaggle_handle`` of each preset.
CURATED: tuple[Curated, ...] = (
    Curated(
        name="hub_resnet50", preset="resnet_50_imagenet", family="ResNet",
        description="ResNet-50 v1 (He et al. 2015), ImageNet-1k",
        parameters=23_561_152, image_size=224,
        handle="kaggle://keras/resnetv1/keras/resnet_50_imagenet/3",
    ),
    Curated(
        name="hub_efficientnet_b0", preset="efficientnet_b0_ra_imagenet", family="EfficientNet",
        description="EfficientNet-B0 (Tan and Le 2019), ImageNet-1k, RandAugment",
        parameters=4_049_564, image_size=224,
        handle="kaggle://keras/efficientnet/keras/efficientnet_b0_ra_imagenet/2",
    ),
    Curated(
        name="hub_mobilenet_v3_large", preset="mobilenet_v3_large_100_imagenet",
        family="MobileNet", description="MobileNet v3 Large (Howard et al. 2019), ImageNet-1k",
        parameters=2_996_352, image_size=224,
        handle="kaggle://keras/mobilenetv3/keras/mobilenet_v3_large_100_imagenet/1",
    ),
    Curated(
        name="hub_vit_base16", preset="vit_base_patch16_224_imagenet", family="ViT",
        description="ViT-B/16 (Dosovitskiy et al. 2021), ImageNet-1k",
        parameters=85_798_656, image_size=224,
        handle="kaggle://keras/vit/keras/vit_base_patch16_224_imagenet/4",
    ),
    Curated(
        name="hub_deit_base16", preset="deit_base_distilled_patch16_224_imagenet",
        family="DeiT", description="DeiT-B/16 distilled (Touvron et al. 2021), ImageNet-1k",
        parameters=85_800_192, image_size=224,
        handle="kaggle://keras/deit/keras/deit_base_distilled_patch16_224_imagenet/1",
    ),
    Curated(
        name="hub_dinov2_small", preset="dinov2_small", family="DINOv2",
        description="DINOv2 ViT-S/14 (Oquab et al. 2023), self-supervised",
        parameters=22_582_656, image_size=518,
        handle="kaggle://keras/dinov2/keras/dinov2_small/1",
    ),
    Curated(
        name="hub_dinov2_base", preset="dinov2_base", family="DINOv2",
        description="DINOv2 ViT-B/14 (Oquab et al. 2023), self-supervised",
        parameters=87_632_640, image_size=518,
        handle="kaggle://keras/dinov2/keras/dinov2_base/1",
    ),
    Curated(
        name="hub_clip_base16", preset="clip_vit_base_patch16", family="CLIP",
        description="CLIP ViT-B/16 image encoder (Radford et al. 2021)",
        parameters=85_799_621, image_size=224,
        handle="kaggle://keras/clip/keras/clip_vit_base_patch16/3",
    ),
    Curated(
        name="hub_siglip_base16", preset="siglip_base_patch16_224", family="SigLIP",
        description="SigLIP ViT-B/16 image encoder (Zhai et al. 2023), WebLi",
        parameters=92_884_420, image_size=224,
        handle="kaggle://keras/siglip/keras/siglip_base_patch16_224/1",
    ),
)  # fmt: skip

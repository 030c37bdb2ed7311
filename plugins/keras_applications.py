"""Keras Applications as backbones: the tutorial's ResNet50 and its family.

Each backbone is ``keras.applications.<Constructor>(include_top=False)`` with ImageNet
weights, frozen by default, as in the tutorial. The family is one table,
:data:`APPLICATIONS`; each row says which preprocessing the network was trained with
(the mode of its ``keras.applications.<module>.preprocess_input``), the smallest image
Keras accepts (``min_size`` in its ``obtain_input_shape`` call) and the ImageNet file
it loads.

The ``weights`` parameter is ``imagenet``, ``none`` (random) or the path of a weights
file (``.h5``, ``.weights.h5`` or ``.keras``). For ``imagenet`` and a path alike, the
model is built exactly as Keras builds it for ImageNet weights (EfficientNet adds a
rescaling layer then), and Keras's request for its weights file is answered by zoo
(:func:`zoo.fetch_weights`): from the Keras cache when the file is there and intact,
else downloaded (a damaged copy moved aside to ``NAME.damaged`` first); offline, an
error says which file to put where. Each backbone
declares that file, its URL and Keras's MD5 (:func:`downloads`) for ``zoo fetch`` and
``zoo list``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zoo

#: What each preprocessing mode does, for descriptions.
_PREPROCESSING = {
    "caffe": "caffe preprocessing (BGR, minus mean)",
    "tf": "tf preprocessing (to -1..1)",
    "torch": "torch preprocessing (mean/std)",
    "none": "preprocesses inside",
}
#: The weights files Keras can load: Keras 3 files and legacy HDF5 files.
_WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".keras", ".weights.json")


@dataclass(frozen=True)
class Application:
    """One Keras application and what zoo needs to know about it.

    Args:
        name: The backbone's name in zoo.
        constructor: The function in ``keras.applications``.
        module: The ``keras.applications`` submodule whose ``preprocess_input`` the
            network expects; ``preprocessing`` is the same computation.
        preprocessing: A preprocessing mode (``zoo.model.layers.preprocessing_layer``).
        min_size: The smallest height and width Keras accepts.
        title: The network and its paper, for descriptions.
        weights_file: The ImageNet file (without the classifier) Keras loads.
        family: The network family, for tables.
        parameters: Keras's count for the network without the classifier.
        native_size: The image side its ImageNet weights were trained at.
        weights_at: The folder URL Keras downloads ``weights_file`` from.
        weights_md5: The MD5 Keras publishes for it (``None``: Keras publishes none).
    """

    name: str
    constructor: str
    module: str
    preprocessing: str
    min_size: int
    title: str
    weights_file: str
    family: str
    parameters: int
    native_size: int
    weights_at: str
    weights_md5: str | None

    @property
    def description(self) -> str:
        return f"{self.title}; ImageNet weights; {_PREPROCESSING[self.preprocessing]}"

    @property
    def weights_url(self) -> str:
        return self.weights_at + self.weights_file


#: Where Keras publishes application weights; EfficientNet's are in another bucket.
#: The MD5s of the table are Keras's own (``keras/src/applications/*.py``; a test
#: checks each row against the request Keras makes).
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"


APPLICATIONS: tuple[Application, ...] = (
    Application(
        "resnet50", "ResNet50", "resnet", "caffe", 32,
        "ResNet-50 (He et al. 2015), the tutorial's",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="ResNet", parameters=23_587_712, native_size=224,
        weights_at=_KERAS + "resnet/", weights_md5="4d473c1dd8becc155b73f8504c6f6626",
    ),
    Application(
        "resnet101", "ResNet101", "resnet", "caffe", 32,
        "ResNet-101 (He et al. 2015)",
        "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="ResNet", parameters=42_658_176, native_size=224,
        weights_at=_KERAS + "resnet/", weights_md5="88cf7a10940856eca736dc7b7e228a21",
    ),
    Application(
        "resnet50_v2", "ResNet50V2", "resnet_v2", "tf", 32,
        "ResNet-50 v2, pre-activation (He et al. 2016)",
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="ResNet", parameters=23_564_800, native_size=224,
        weights_at=_KERAS + "resnet/", weights_md5="fac2f116257151a9d068a22e544a4917",
    ),
    Application(
        "densenet121", "DenseNet121", "densenet", "torch", 32,
        "DenseNet-121 (Huang et al. 2017)",
        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="DenseNet", parameters=7_037_504, native_size=224,
        weights_at=_KERAS + "densenet/", weights_md5="30ee3e1110167f948a6b9946edeeb738",
    ),
    Application(
        "inception_v3", "InceptionV3", "inception_v3", "tf", 75,
        "Inception v3 (Szegedy et al. 2016)",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="Inception", parameters=21_802_784, native_size=299,
        weights_at=_KERAS + "inception_v3/", weights_md5="bcbd6486424b2319ff4ef7d526e38f63",
    ),
    Application(
        "xception", "Xception", "xception", "tf", 71,
        "Xception (Chollet 2017)",
        "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="Xception", parameters=20_861_480, native_size=299,
        weights_at=_KERAS + "xception/", weights_md5="b0042744bf5b25fce3cb969f33bebb97",
    ),
    Application(
        # Keras picks the file trained at the image size if it is 96, 128, 160 or 192;
        # zoo declares the 224 one, which every other size loads.
        "mobilenet_v2", "MobileNetV2", "mobilenet_v2", "tf", 32,
        "MobileNet v2, width 1.0 (Sandler et al. 2018)",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        family="MobileNet", parameters=2_257_984, native_size=224,
        weights_at=_KERAS + "mobilenet_v2/", weights_md5=None,
    ),
    Application(
        "mobilenet_v3_large", "MobileNetV3Large", "mobilenet_v3", "none", 32,
        "MobileNet v3 Large (Howard et al. 2019)",
        "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        family="MobileNet", parameters=2_996_352, native_size=224,
        weights_at=_KERAS + "mobilenet_v3/", weights_md5="07fb09a5933dd0c8eaafa16978110389",
    ),
    Application(
        "efficientnet_b0", "EfficientNetB0", "efficientnet", "none", 32,
        "EfficientNet-B0 (Tan and Le 2019)",
        "efficientnetb0_notop.h5",
        family="EfficientNet", parameters=4_049_571, native_size=224,
        weights_at=_EFFICIENTNET, weights_md5="50bc09e76180e00e4465e1a485ddc09d",
    ),
    Application(
        "vgg16", "VGG16", "vgg16", "caffe", 32,
        "VGG-16 (Simonyan and Zisserman 2014)",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="VGG", parameters=14_714_688, native_size=224,
        weights_at=_KERAS + "vgg16/", weights_md5="6d6bbae143d832006294945121d1f1fc",
    ),
    Application(
        "vgg19", "VGG19", "vgg19", "caffe", 32,
        "VGG-19 (Simonyan and Zisserman 2014)",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        family="VGG", parameters=20_024_384, native_size=224,
        weights_at=_KERAS + "vgg19/", weights_md5="253f8cb515780f3b799900260a226db6",
    ),
)  # fmt: skip


def build(
    app: Application, image_shape: tuple[int, int, int], params: Mapping[str, Any]
) -> zoo.BuiltBackbone:
    """``keras.applications.<constructor>(include_top=False)`` with the weights asked for."""
    import keras

    construct = functools.partial(
        getattr(keras.applications, app.constructor),
        include_top=False,
        input_shape=tuple(image_shape),
    )
    source = weights_source(app, params["weights"])
    if source is None:
        model, weights_file = construct(weights=None), None
    else:
        model, weights_file = _pretrained(app, construct, source)
    model.trainable = params["trainable"]
    return zoo.BuiltBackbone(
        model,
        app.preprocessing,
        str(weights_file) if weights_file else None,
        pretrained=source is not None,
    )


def weights_source(app: Application, value: str) -> str | Path | None:
    """``"imagenet"``, ``None`` for ``none``, or the weights file the value names.

    Raises:
        ZooError: the value is a path to no file, or to a file Keras cannot read.
    """
    choice = value.strip().lower()
    if choice == "none":
        return None
    if choice == "imagenet":
        return "imagenet"
    path = Path(value).expanduser()
    if not path.is_file() or not path.name.endswith(_WEIGHTS_SUFFIXES):
        problem = "is not a file" if not path.is_file() else "is not a Keras weights file"
        raise zoo.ZooError(
            f"{app.name}: the weights path {path} {problem}.",
            expected="'imagenet', 'none', or the path of a weights file ("
            + ", ".join(_WEIGHTS_SUFFIXES)
            + f") for {app.constructor}",
            fix=f"check the path, or use --set backbone.weights=imagenet (it loads "
            f"{app.weights_file} from the Keras cache)",
            got=value,
        )
    return path.resolve()


def _pretrained(
    app: Application, construct: Callable[..., Any], source: str | Path
) -> tuple[Any, Path]:
    """Build the ImageNet model, its weights file answered by zoo; return both."""
    purpose = f"the ImageNet weights of backbone '{app.name}'"
    asked: list[Path] = []

    def answer(file_name: str, origin: str, file_hash: str | None) -> Path:
        if isinstance(source, Path):
            path = source
        else:
            path = zoo.fetch_weights(file_name, origin, file_hash, purpose=purpose)
        asked.append(path)
        return path

    try:
        with _keras_weights_requests(answer):
            model = construct(weights="imagenet")
    except Exception as exc:
        # Once Keras has the file, all it does is model.load_weights(file).
        if not asked or isinstance(exc, zoo.ZooError):
            raise
        raise _does_not_fit(app, asked[0], exc) from exc
    if not asked:
        raise RuntimeError(
            f"keras.applications.{app.constructor}(weights='imagenet') never asked "
            "keras.src.utils.file_utils.get_file for its weights file; zoo's "
            "keras_applications plugin needs updating for this Keras version"
        )
    return model, asked[0]


@contextlib.contextmanager
def _keras_weights_requests(answer: Callable[[str, str, str | None], Path]) -> Iterator[None]:
    """Route Keras applications' ``get_file(name, url, file_hash=...)`` calls to ``answer``.

    Keras applications fetch weights through ``keras.src.utils.file_utils.get_file``
    (module attribute, looked up at call time). Answering there lets zoo use the file a
    user put in the cache instead of Keras deleting it on a hash mismatch, and lets a
    user's path be loaded into the very model Keras builds for ImageNet weights.
    """
    from unittest import mock

    from keras.src.utils import file_utils

    def get_file(fname: str, origin: str, **kwargs: Any) -> str:
        return str(answer(fname, origin, kwargs.get("file_hash")))

    with mock.patch.object(file_utils, "get_file", get_file):
        yield


def _does_not_fit(app: Application, path: Path, exc: Exception) -> zoo.ZooError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return zoo.ZooError(
        f"{app.name}: the weights in {path} do not load into {app.constructor}: {detail}",
        expected=f"{app.constructor} weights without the classifier (include_top=False), "
        f"such as Keras's {app.weights_file}",
        fix="pass weights saved from this backbone, or delete a damaged file from the Keras "
        "cache to download it again (zoo fetch NAME --to DIR on a machine with internet, "
        "then zoo fetch --from DIR here, when this one is offline)",
        got=str(path),
    )


def downloads(app: Application, params: Mapping[str, Any]) -> list[zoo.Download]:
    """The ImageNet file, into the Keras cache, when ``weights`` is ``imagenet``."""
    if params["weights"].strip().lower() != "imagenet":
        return []  # random weights, or a file of the user's
    return [zoo.keras_download(app.weights_file, app.weights_url, app.weights_md5)]


def _params(app: Application) -> tuple[zoo.Param, ...]:
    return (
        zoo.Param(
            "weights",
            str,
            "imagenet",
            f"'imagenet' ({app.weights_file} from the Keras cache, ~/.keras/models or "
            "$KERAS_HOME/models; downloaded if missing), 'none' (random), or a file path",
        ),
        zoo.Param("trainable", bool, False, "train the backbone too (default: frozen)"),
    )


@zoo.hookimpl
def register_backbones(register: Callable[[zoo.Backbone], None]) -> None:
    for app in APPLICATIONS:
        register(
            zoo.Backbone(
                name=app.name,
                description=app.description,
                params=_params(app),
                build=functools.partial(build, app),
                downloads=functools.partial(downloads, app),
                min_image_size=app.min_size,
                family=app.family,
                parameters=app.parameters,
                native_image_size=app.native_size,
                source="Keras Applications",
            )
        )

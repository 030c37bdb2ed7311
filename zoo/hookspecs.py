"""The hooks a zoo plugin implements.

A plugin is a module (or any object) with functions marked ``@zoo.hookimpl`` whose
names match the hookspecs below. Each hook receives a ``register`` callback; call it
once per component. zoo validates every entry, rejects bad ones, and records which
plugin registered it, so ``zoo list`` can say where each component comes from.

Builders run only when a component is used, so keep heavy imports (``tensorflow``,
``keras``, ``tensorflow_datasets``) inside them: ``zoo list`` never imports TensorFlow.
``register_keras_objects`` is optional and different: zoo calls it only when it loads a
saved model that one of the plugin's components built.

The plugin author's guide, ``docs/plugins.md``, shows each hook with its signature and
a complete example, and states the contracts; ``tests/test_docs.py`` keeps it in step
with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from zoo.components import Backbone, Dataset, Head, Observer

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register dataset providers.

    Call ``register(zoo.Dataset(...))`` once per dataset. The builder receives the
    resolved parameters and returns ``zoo.Splits``: train, validation and test
    ``tf.data.Dataset`` objects of unbatched ``(uint8 image [h, w, 3], int label)``
    pairs, the class names, the split sizes and the number of skipped files.

    :param register: Call it with a :class:`zoo.Dataset`.

    Example::

        @zoo.hookimpl
        def register_datasets(register):
            register(zoo.Dataset(
                name="flowers",
                description="My flower photos",
                params=[zoo.Param("path", str, required=True, help="image folder")],
                build=build_flowers,
            ))
    """


@hookspec
def register_backbones(register: Callable[[Backbone], None]) -> None:
    """Register backbones: feature extractors, pretrained or trained from scratch.

    Call ``register(zoo.Backbone(...))`` once per backbone. The builder receives the
    image shape ``(height, width, 3)`` and the resolved parameters, and returns
    ``zoo.BuiltBackbone(model, preprocessing)``: a Keras model from preprocessed
    images to features (a feature map ``[batch, h, w, c]``, a token sequence
    ``[batch, tokens, c]`` or a vector ``[batch, c]``), and the preprocessing that turns
    raw 0..255 pixels into its input. Freeze the model (``model.trainable = False``)
    when it is pretrained.

    :param register: Call it with a :class:`zoo.Backbone`.

    Example::

        @zoo.hookimpl
        def register_backbones(register):
            register(zoo.Backbone(
                name="two_conv",
                description="Conv 3x3 + MaxPool + Conv 3x3, trained from scratch",
                params=[zoo.Param("filters", int, 16, "filters of the first conv")],
                build=build_two_conv,   # (image_shape, params) -> zoo.BuiltBackbone
                min_image_size=8,
            ))
    """


@hookspec
def register_heads(register: Callable[[Head], None]) -> None:
    """Register heads: the layers on top of a backbone, with their loss and metrics.

    Call ``register(zoo.Head(...))`` once per head, saying how many classes it supports
    (``min_classes``, ``max_classes``). The builder receives the backbone's symbolic
    output tensor (rank 4, 3 or 2), the number of classes and the resolved parameters,
    and returns ``zoo.BuiltHead(outputs, loss, metrics)``.

    :param register: Call it with a :class:`zoo.Head`.

    Example::

        @zoo.hookimpl
        def register_heads(register):
            register(zoo.Head(
                name="gmp_softmax",
                description="GlobalMaxPooling2D + Dense(n, softmax)",
                build=build_gmp_softmax,
                min_classes=2,
            ))
    """


@hookspec
def register_observers(register: Callable[[Observer], None]) -> None:
    """Register run observers: trackers, notifiers, loggers that are told what happens
    during a run.

    Call ``register(zoo.Observer(...))`` once per observer. A run uses the observers it
    names (``zoo run ... --track NAME[,NAME]``, or ``[run] track`` in registry.toml). The
    builder receives the resolved parameters (``[components.observer.NAME] defaults``
    in registry.toml) and a :class:`zoo.ObservedRun` (the run's settings, where its run
    directories go, the versions of zoo and its plugins), and returns a
    :class:`zoo.Callback`, whose methods are told the run's placement, data, model,
    warnings, stages and epochs, evaluation and end, in the order they happen, after zoo's
    own callbacks have saved each epoch and before the console shows it. Only the chief
    worker builds observers; a dry run builds none.

    A builder raises ``zoo.ZooError`` for a user error (a package missing, a bad
    parameter): the run does not start. An observer that raises while the run goes on
    is reported once, naming its plugin, and the run continues without it. An observer
    cannot stop a run (its ``should_stop`` is not asked), and it keeps its work off the
    training thread when it talks to the network.

    :param register: Call it with a :class:`zoo.Observer`.

    Example::

        @zoo.hookimpl
        def register_observers(register):
            register(zoo.Observer(
                name="epoch_log",
                description="Append each epoch's metrics to a CSV file",
                params=[zoo.Param("path", str, "epochs.csv", "the file, in the run directory")],
                build=EpochLog,   # (params, run) -> zoo.Callback
            ))
    """


@hookspec
def register_keras_objects(register: Callable[[Any], None]) -> None:
    """Declare the Keras classes and functions your components put into models (optional).

    zoo calls this hook only when it loads a saved model (``zoo predict``, ``zoo
    export``, ``zoo.load_model``) holding a class of a component of yours that Keras
    does not find registered; never while listing or training. So import Keras and your
    layers inside it. Call ``register(obj)`` once per class or function; zoo hands them
    to Keras as ``custom_objects``, so they need not be decorated with
    ``keras.saving.register_keras_serializable``.

    Without this hook zoo still finds a decorated class: it imports the module the class
    was defined in, and failing that (a class defined inside a builder) builds the
    component again, which runs the decorator.

    :param register: Call it with a class or function that Keras serialises.

    Example::

        @zoo.hookimpl
        def register_keras_objects(register):
            from zoo_mine.layers import AttentionPooling

            register(AttentionPooling)
    """

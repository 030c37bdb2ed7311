"""Names that vulture (the dead-code check in .ci/run) cannot see used.

Each is used by name by a framework or a reader outside zoo/ and plugins/: pluggy,
Keras, importlib, ``dataclasses.asdict`` or the public API. vulture matches names only,
so ``_.name`` below counts every attribute, function or class called ``name`` as used.
Add a name here only with the reason it is alive; remove dead code instead.
"""

from __future__ import annotations


class _Any:
    """Stands for any object: each attribute read from it names one used name."""

    def __getattr__(self, _name: str) -> _Any:
        return self


def used(*_names: object) -> None:
    """Marks the names passed as used; never called."""


_ = _Any()

# pluggy calls hook specifications and implementations by their names
# (zoo/hookspecs.py, the built-in plugins' @zoo.hookimpl functions).
used(_.register_datasets, _.register_backbones, _.register_heads, _.register_keras_objects)
used(_.register_observers)

# Keras finds a registered serializable class by its registered name (zoo>Preprocess)
# when it loads an older model, never by the Python name.
used(_._Zoo010Preprocess)

# importlib calls a loader's create_module (zoo/runtime/deferred.py); PEP 562 calls a
# module's __getattr__ and __dir__ (zoo/runtime/loader.py, zoo/__init__.py).
used(_.create_module, _.__getattr__, _.__dir__)

# Dataclass fields read through dataclasses.asdict for --json output and tables:
# zoo doctor's Finding.topic, zoo info's fine-tune rows (zoo/train/finetune.py).
used(_.topic, _.holds_weights)

# Public API: zoo.testing.Report.round_trips, read by plugin authors' tests.
used(_.round_trips)

# TensorFlow reads tf.data.Options attributes that zoo sets (zoo/train/loop.py).
used(_.auto_shard_policy)

# zoo export's check is written to export.json through dataclasses.asdict; ONNX Runtime
# reads its session options by name.
used(_.size_bytes, _.intra_op_num_threads, _.log_severity_level)

# tf2onnx finds an op handler by the op it registers (@tf_op("Erfc")) and calls its
# version_N method for the opset; NNCF reads its telemetry object by attribute name.
used(_.Erfc, _.version_9, _.telemetry)

# Optuna draws a study's trials from study.sampler, which zoo tune sets per process
# (zoo/tune/search.py).
used(_.sampler)

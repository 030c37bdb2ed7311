"""The training loop: one Keras model, one strategy, any number of replicas and workers.

zoo trains with its own loop rather than ``model.fit``: under
``MultiWorkerMirroredStrategy`` Keras 3's ``fit`` fails (keras-team/keras#20585,
tensorflow/tensorflow#72388), and one loop for every strategy keeps single-device,
mirrored and multi-worker runs identical. Each step runs on every replica with
``strategy.run``; the loss is the sum of the (class-weighted) per-example losses over
the *global* batch size, as Keras's ``class_weight`` weights them (Keras's optimizer
all-reduces the gradients); metrics are updated once, in cross-replica context, from
the gathered labels and predictions, so every worker reports the same numbers.

The loop reports progress to a callback and leaves judging it (a NaN loss) to the
callbacks of :mod:`zoo.train.callbacks`.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from zoo.runtime import patches
from zoo.runtime.loader import keras, tf, without_autotuning

if TYPE_CHECKING:
    from zoo.train.distribute import Placement

#: Progress is read back from the device at most this often (reading syncs the device).
REPORT_SECONDS = 0.25

StepReport = Callable[[int, dict[str, float]], None]


class Loop:
    """Trains and evaluates ``model`` under ``placement``'s strategy.

    Args:
        model: Built under the strategy's scope.
        loss: A Keras loss name or object; it is applied per example.
        metrics: Keras metric names or objects (``"accuracy"`` picks binary or sparse
            categorical accuracy from the model's output width).
        placement: Where to run.
        optimizer: Built under the strategy's scope; ``None`` for evaluation only.
        class_weights: Each class's weight in the training loss (one per class, by
            label); the reported training ``loss`` is the weighted one. Evaluation is
            never weighted.
        training_loss: What training minimises and reports, when not ``loss`` (labels
            smoothed); evaluation uses ``loss``.
    """

    def __init__(
        self,
        model: keras.Model,
        loss: Any,
        metrics: Sequence[Any],
        placement: Placement,
        optimizer: keras.optimizers.Optimizer | None = None,
        class_weights: Sequence[float] | None = None,
        training_loss: Any = None,
    ) -> None:
        self.model = model
        self.class_weights = tuple(class_weights) if class_weights is not None else None
        self.strategy = placement.strategy
        self.optimizer = optimizer
        self.units = int(model.outputs[0].shape[-1])
        self.loss = _per_example(loss)
        self.training_loss = self.loss if training_loss is None else _per_example(training_loss)
        self.mean_loss = keras.metrics.Mean(name="loss")
        self.metrics = [_metric(m, self.units) for m in metrics]
        self._train_step: Callable[..., Any] | None = None
        self._eval_step: Callable[..., Any] | None = None

    def train_epoch(
        self, dataset: tf.data.Dataset, report: StepReport | None = None
    ) -> dict[str, float]:
        """One pass over ``dataset`` (batched with the global batch size).

        ``report(step, metrics so far)`` is called at most every :data:`REPORT_SECONDS`
        and after the last batch.
        """
        if self._train_step is None:
            if self.optimizer is None:
                raise ValueError("this Loop has no optimizer: it only evaluates")
            optimizer = self.optimizer
            self._train_step = self._compile(
                lambda images, labels: self._replica_train(optimizer, images, labels)
            )
        return self._run(self._train_step, dataset, report)

    def evaluate(
        self, dataset: tf.data.Dataset, report: StepReport | None = None
    ) -> dict[str, float]:
        """Loss and metrics over ``dataset``, in inference mode."""
        if self._eval_step is None:
            self._eval_step = self._compile(self._replica_eval)
        return self._run(self._eval_step, dataset, report)

    def results(self) -> dict[str, float]:
        """The metrics accumulated so far in this pass (reads them off the device)."""
        return {m.name: float(m.result()) for m in (self.mean_loss, *self.metrics)}

    def _run(
        self, step_fn: Any, dataset: tf.data.Dataset, report: StepReport | None
    ) -> dict[str, float]:
        for metric in (self.mean_loss, *self.metrics):
            metric.reset_state()
        last_report = time.perf_counter()
        step = -1
        for step, batch in enumerate(distribute(self.strategy, dataset)):
            step_fn(batch)
            now = time.perf_counter()
            if now - last_report >= REPORT_SECONDS:
                last_report = now
                self._report(step, report)
        return self._report(step, report)

    def _report(self, step: int, report: StepReport | None) -> dict[str, float]:
        results = self.results()
        if report is not None and step >= 0:
            report(step, results)
        return results

    def _compile(self, replica_fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(batch: Any) -> None:
            labels, predictions, losses = self.strategy.run(replica_fn, args=batch)
            self._update_metrics(labels, predictions, losses)

        return tf.function(step)

    def _replica_train(
        self, optimizer: keras.optimizers.Optimizer, images: tf.Tensor, labels: tf.Tensor
    ) -> tuple[Any, Any, Any]:
        # The mean over the global batch, however it is split: the same gradient as one
        # device would compute, including for a short last batch. One replica's batch is
        # the global one: all_reduce is left out there, since in a traced step it
        # registers a custom gradient that TensorFlow never unregisters, which keeps the
        # step's graph alive (15-40 MB a run: zoo tune's trials grew without end).
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        if self.strategy.num_replicas_in_sync > 1:
            count = tf.distribute.get_replica_context().all_reduce("sum", count)
        with tf.GradientTape() as tape:
            predictions = self.model(images, training=True)
            losses = self.training_loss(labels, predictions)
            if self.class_weights is not None:
                losses *= tf.gather(tf.constant(self.class_weights, losses.dtype), labels)
            loss = tf.reduce_sum(losses) / tf.maximum(count, 1.0)
            if self.model.losses:
                loss += tf.add_n(self.model.losses) / self.strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return labels, predictions, losses

    def _replica_eval(self, images: tf.Tensor, labels: tf.Tensor) -> tuple[Any, Any, Any]:
        predictions = self.model(images, training=False)
        return labels, predictions, self.loss(labels, predictions)

    def _update_metrics(self, labels: Any, predictions: Any, losses: Any) -> None:
        gather = self.strategy.gather
        # Fixed ranks keep Keras from broadcasting labels [n] against predictions [n, 1].
        labels = tf.reshape(gather(labels, axis=0), [-1])
        predictions = tf.reshape(gather(predictions, axis=0), [-1, self.units])
        losses = tf.reshape(gather(losses, axis=0), [-1])
        self.mean_loss.update_state(losses)
        for metric in self.metrics:
            metric.update_state(labels, predictions)


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> Any:
    """``dataset`` (batched with the global batch size) spread over the strategy's replicas."""
    options = tf.data.Options()
    # Every worker builds the same dataset (seeded); each takes its share of batches.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Autotuning's thread can stall the end of a pass: see without_autotuning.
    dataset = without_autotuning(dataset.with_options(options))
    patches.untuned_device_datasets(without_autotuning)  # and the strategy's per-device ones
    return strategy.experimental_distribute_dataset(dataset)


def predict_batches(
    model: keras.Model, placement: Placement, dataset: tf.data.Dataset
) -> Iterator[tuple[Any, Any]]:
    """``(outputs, labels)`` as NumPy arrays, one global batch at a time, on every replica."""
    strategy = placement.strategy
    step = _predict_step(model, strategy)
    for batch in distribute(strategy, dataset):
        outputs, labels = step(batch)
        yield outputs.numpy(), labels.numpy()


#: The traced prediction step of each model, with the strategy it was traced for:
#: tracing a ResNet50 costs seconds, and every split (and the test set) goes through the
#: same step. Weak keys, and a step that holds its model weakly, so a finished run's model
#: can be freed.
_PREDICT_STEPS: weakref.WeakKeyDictionary[Any, tuple[Any, Callable[[Any], Any]]] = (
    weakref.WeakKeyDictionary()
)


def _predict_step(model: keras.Model, strategy: tf.distribute.Strategy) -> Callable[[Any], Any]:
    cached = _PREDICT_STEPS.get(model)
    if cached is not None and cached[0] is strategy:
        return cached[1]
    weak_model = weakref.ref(model)

    def forward(images: Any) -> Any:
        alive = weak_model()
        assert alive is not None, "the step is only called while its model predicts"
        return alive(images, training=False)

    # reduce_retracing: the last, shorter batch reuses the graph instead of a new trace.
    @tf.function(reduce_retracing=True)
    def step(batch: Any) -> tuple[Any, Any]:
        images, labels = batch
        outputs = strategy.run(forward, args=(images,))
        return strategy.gather(outputs, axis=0), strategy.gather(labels, axis=0)

    _PREDICT_STEPS[model] = (strategy, step)
    return step


def _per_example(loss: Any) -> Callable[[Any, Any], Any]:
    """A Keras loss that returns one value per example (no reduction)."""
    if isinstance(loss, keras.losses.Loss):
        return type(loss).from_config({**loss.get_config(), "reduction": None})
    function = keras.losses.get(loss)
    if isinstance(function, keras.losses.Loss):
        return type(function).from_config({**function.get_config(), "reduction": None})
    return _PerExample(function)


class _PerExample(keras.losses.Loss):
    """A loss function (``y_true, y_pred -> per-example values``) without reduction."""

    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        super().__init__(name=getattr(function, "__name__", "loss"), reduction=None)
        self.function = function

    def call(self, y_true: Any, y_pred: Any) -> Any:
        # Integer labels [n] against one sigmoid output [n, 1], as Keras's wrapper does.
        if len(y_true.shape) == len(y_pred.shape) - 1 and y_pred.shape[-1] == 1:
            y_true = keras.ops.expand_dims(y_true, -1)
        return self.function(y_true, y_pred)


def _metric(spec: Any, units: int) -> keras.metrics.Metric:
    """A metric object for ``spec``; ``"accuracy"`` as Keras's compile would resolve it."""
    if isinstance(spec, keras.metrics.Metric):
        return spec
    if spec in ("accuracy", "acc"):
        if units == 1:
            return keras.metrics.BinaryAccuracy(name="accuracy")
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    metric = keras.metrics.get(spec)
    if isinstance(metric, type):
        return metric()
    if isinstance(metric, keras.metrics.Metric):
        return metric
    return keras.metrics.MeanMetricWrapper(metric, name=str(spec))

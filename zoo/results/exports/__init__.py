"""Exports for other runtimes: LiteRT (TFLite), ONNX and OpenVINO, each checked by its own.

One module per format writes the file (Keras' own exporter where it fits) and opens it
with that format's runtime (:mod:`zoo.results.exports.litert`, ``onnx``, ``openvino``);
:mod:`~zoo.results.exports.signature` writes what a deployer needs beside it (class
names, input spec); :mod:`~zoo.results.exports.check` runs the written file on the run's
test images and compares it with the Keras model. ``zoo export`` (the ``.keras`` file and
SavedModel included) starts in :mod:`zoo.results.export`.
"""

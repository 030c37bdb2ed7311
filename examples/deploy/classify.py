"""Classify images with a folder `zoo export` wrote, using only the model's runtime.

    pip install onnxruntime pillow numpy       # an ONNX export
    pip install ai-edge-litert pillow numpy    # a LiteRT export
    python classify.py EXPORT_FOLDER IMAGE...

Prints one line per image: its path, class and probability, separated by tabs. Neither
zoo nor TensorFlow is needed: signature.json says what the model takes (docs/deploy.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

Model = Callable[[np.ndarray], np.ndarray]  # pixels [1, height, width, 3] -> probabilities


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear to size x size as tf.image.resize (and so training) does it: half-pixel
    centres, no antialiasing. Pillow's resize antialiases when it shrinks, so it differs."""

    def taps(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = np.float32(length / size)
        centres = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        low = np.floor(centres)
        near, far = (np.clip(low + i, 0, length - 1).astype(int) for i in (0, 1))
        return near, far, centres - low

    pixels = image.astype(np.float32)
    top, bottom, dy = taps(image.shape[0])
    left, right, dx = taps(image.shape[1])
    rows = pixels[:, left] + (pixels[:, right] - pixels[:, left]) * dx[:, None]
    return rows[top] + (rows[bottom] - rows[top]) * dy[:, None, None]


def open_onnx(folder: Path) -> Model:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    name = session.get_inputs()[0].name
    return lambda pixels: session.run(None, {name: pixels})[0]


def open_litert(folder: Path) -> Model:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    interpreter.allocate_tensors()
    [given], [answer] = interpreter.get_input_details(), interpreter.get_output_details()

    def run(pixels: np.ndarray) -> np.ndarray:
        scale, zero_point = given["quantization"]
        if given["dtype"] != np.float32:  # an int8 file with --io uint8 takes quantized pixels
            limits = np.iinfo(given["dtype"])
            pixels = np.clip(np.round(pixels / scale + zero_point), limits.min, limits.max)
        interpreter.set_tensor(given["index"], pixels.astype(given["dtype"]))
        interpreter.invoke()
        output = interpreter.get_tensor(answer["index"]).astype(np.float32)
        scale, zero_point = answer["quantization"]
        return output if answer["dtype"] == np.float32 else (output - zero_point) * scale

    return run


def read_rgb(path):
    """An image file's pixels as zoo decodes them: uint8 [height, width, 3]."""
    with Image.open(path) as image:  # an animation opens on its first frame
        image = ImageOps.exif_transpose(image)  # upright, as its EXIF orientation says
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):  # 16-bit grey: the high byte
        grey = (np.asarray(image) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))  # alpha dropped; palette, CMYK, grey to RGB


def classify(folder: Path, images: list[str]) -> None:
    signature = json.loads((folder / "signature.json").read_text(encoding="utf-8"))
    labels = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    model = {"onnx": open_onnx, "litert": open_litert}[signature["format"]](folder)
    size = signature["input"]["shape"][1]  # None: any size, the model resizes inside
    for path in images:
        pixels = read_rgb(path)
        if size is not None:
            pixels = resize(pixels, size)
        [output] = model(pixels[None].astype(np.float32))
        if signature["output"]["kind"] == "sigmoid":  # P(second class), which wins from 0.5
            output, best = np.array([1.0 - output[0], output[0]]), int(output[0] >= 0.5)
        else:  # softmax: one probability per class
            best = int(np.argmax(output))
        print(f"{path}\t{labels[best]}\t{output[best]:.6f}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python classify.py EXPORT_FOLDER IMAGE...")
    classify(Path(sys.argv[1]), sys.argv[2:])

"""Quiet by default: what TensorFlow, Keras, TFDS and urllib3 say on their own stays off
the terminal unless ``--verbose`` (``zoo/runtime/loader.py``); zoo's own output stays."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from helpers import library_noise, offline_env, run_process, run_zoo

#: What users start with: TensorFlow's logging as it comes (conftest quiets it for the suite).
USER_ENV: dict[str, str | None] = {"TF_CPP_MIN_LOG_LEVEL": None}

#: Commands that make the libraries talk, and what zoo itself says there.
COMMANDS = {
    # Builds MobileNetV2 at 32x32: Keras warns that its ImageNet weights are for 224x224
    # (its stacklevel points the warning at the plugin's line), then cannot download them.
    "info": (["info", "mobilenet_v2", "--layers"], "the default weights could not be loaded"),
    # TFDS tries to download cats_vs_dogs through a closed port, twice.
    "tfds": (
        ["run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", "--set", "dataset.data_dir=tfds"],
        "could not download kagglecatsanddogs_5340.zip",
    ),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_commands_keep_the_libraries_output_off_the_terminal(name: str, isolated: Path):
    args, zoos_own = COMMANDS[name]

    result = run_zoo(*args, cwd=isolated, env={**offline_env(), **USER_ENV})

    assert library_noise(result.stderr) == []
    assert zoos_own in " ".join(result.stderr.split())


def test_verbose_shows_what_the_libraries_say(isolated: Path):
    args, _ = COMMANDS["tfds"]

    result = run_zoo(*args, "--verbose", cwd=isolated, env={**offline_env(), **USER_ENV})

    for line in ("I0000 ", "Dl Completed", "WARNING:urllib3.connectionpool:Retrying"):
        assert line in result.stderr


#: A plugin whose head warns on its own and makes Keras warn.
KIT_SCRIPT = """
import sys
import warnings

import zoo
import zoo.testing


def build(features, num_classes, params):
    import keras

    warnings.warn("the noisy head's own warning")
    x = keras.layers.Flatten()(features)
    dense = keras.layers.Dense(num_classes, activation="softmax", input_shape=(3,))
    return zoo.BuiltHead(outputs=dense(x), loss="sparse_categorical_crossentropy")


class Noisy:
    @staticmethod
    @zoo.hookimpl
    def register_heads(register):
        register(zoo.Head(name="noisy", description="Flatten + Dense", build=build))


print(zoo.testing.check_plugin(Noisy, verbose=sys.argv[1] == "verbose"))
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_the_contract_kit_is_quiet_unless_verbose(verbose: bool, isolated: Path):
    script = isolated / "check.py"
    script.write_text(textwrap.dedent(KIT_SCRIPT))

    result = run_process(
        [sys.executable, str(script), "verbose" if verbose else "quiet"], env=USER_ENV
    )

    assert result.exit_code == 0, result.stderr
    assert "components checked: no problems" in result.stdout
    assert "UserWarning: the noisy head's own warning" in result.stderr  # a plugin's own
    noise = [line for line in library_noise(result.stderr) if "noisy head's own" not in line]
    if verbose:
        assert "UserWarning: Do not pass an `input_shape`" in result.stderr  # Keras's
        assert "I0000 " in result.stderr  # TensorFlow's C++ logging
    else:
        assert noise == []

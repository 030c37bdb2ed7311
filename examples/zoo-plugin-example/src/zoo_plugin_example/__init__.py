"""An example zoo plugin: ``gratings``, ``separable_cnn`` and ``attention_pool``.

zoo finds it through the entry point ``example`` in the group ``zoo`` (see
``pyproject.toml``), which names :mod:`zoo_plugin_example.plugin`. Importing this
package imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

__version__ = "0.1.0"

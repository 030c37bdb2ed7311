"""Where a KerasHub preset's files come from: a directory, kagglehub's cache, or Kaggle.

:func:`locate` resolves what the user gave (a preset name, a ``kaggle://`` or
``hf://`` handle, or a local preset directory). Presets come from the KerasHub cache
(kagglehub's, ``$KAGGLEHUB_CACHE``, default ``~/.cache/kagglehub``), downloaded when
missing. Offline, a preset that is not there fails at once (exit 2) naming the cache
folder to fill and the local-directory way out (:func:`not_downloaded`).

For ``zoo fetch`` each preset declares the three files zoo reads (:data:`READS`), laid
out as kagglehub lays them out, with its completion markers (:func:`downloads`). Before
KerasHub reads them from the cache, zoo checks them (:func:`zoo.set_aside_if_damaged`:
the size and SHA-256 zoo recorded when it stored or first met each file, since Kaggle
publishes none); a damaged file is moved aside with a warning, and KerasHub downloads
it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zoo

from .keras_hub_presets import CURATED

#: The files of a preset zoo reads (``save_to_preset`` writes them; a test traces the
#: files KerasHub asks kagglehub for when zoo builds a preset).
READS = ("config.json", "model.weights.h5", "image_converter.json")
PRESET_FILES = f"{READS[0]}, {READS[1]} and {READS[2]}"
#: Kaggle's public REST API, which serves each file of a model version by its path.
KAGGLE_API = "https://www.kaggle.com/api/v1/models"
#: KerasHub's handles of the curated presets, so declarations need no KerasHub import.
HANDLES = {row.preset: row.handle for row in CURATED}
#: Exceptions of these packages mean a download failed (network, cache, hub API).
_DOWNLOAD_PACKAGES = ("requests", "urllib3", "kagglehub", "kagglesdk", "huggingface_hub", "httpx")


@dataclass(frozen=True)
class Where:
    """Where a preset comes from: what the user gave, and what KerasHub is asked for.

    Args:
        value: The ``preset`` parameter as given.
        preset: A local directory, or a preset name or handle KerasHub resolves.
        directory: The local preset directory, if ``value`` is one.
        handle: The ``kaggle://`` or ``hf://`` handle a name or handle resolves to.
    """

    value: str
    preset: str
    directory: Path | None = None
    handle: str | None = None


def locate(value: str) -> Where:
    """Resolve ``value``: a preset directory, a handle, or a KerasHub preset name.

    Raises:
        ZooError: a path that is no preset directory, or a name KerasHub does not know.
    """
    import keras_hub

    path = Path(value).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise zoo.ZooError(
                f"{path} is not a KerasHub preset directory: it has no config.json.",
                expected=f"a directory with {PRESET_FILES}, as save_to_preset writes them",
                fix="check the path, or give a KerasHub preset name",
                got=value,
            )
        return Where(value, str(path.resolve()), directory=path.resolve())
    if "://" in value:
        return Where(value, value, handle=checked(value))
    presets = keras_hub.models.Backbone.presets
    if value in presets:
        return Where(value, value, handle=presets[value]["kaggle_handle"])
    hint = zoo.closest(value, presets)
    raise zoo.ZooError(
        f"there is no KerasHub preset '{value}', and no preset directory at {path.resolve()}.",
        expected="a KerasHub preset name (keras_hub.models.Backbone.presets), a kaggle:// "
        f"or hf:// handle, or a directory with {PRESET_FILES}",
        fix=(f"did you mean {', '.join(hint)}? " if hint else "")
        + "`zoo list backbones` shows the curated ones (hub_*)",
        got=value,
    )


def cached(where: Where) -> list[zoo.Download]:
    """The files of ``where`` in kagglehub's cache that zoo can name without KerasHub."""
    if where.handle is None:
        return []  # a local directory: the user's own files
    try:
        return downloads({"preset": where.handle})
    except zoo.ZooError:
        return []  # a Hugging Face or unversioned handle: left to its library's cache


def check(files: Sequence[zoo.Download], where: Where) -> list[zoo.SetAside]:
    """Check the cached files before KerasHub reads them; move damaged ones aside."""
    purpose = f"a file of the KerasHub preset '{where.value}'"
    moved = [zoo.set_aside_if_damaged(d, purpose) for d in files]
    return [m for m in moved if m is not None]


def fetch(where: Where, kind: Any, damaged: Sequence[zoo.SetAside] = ()) -> Any:
    """``kind.from_preset(...)``: from the directory, the cache, or downloaded.

    Raises:
        ZooError: offline and not in the cache, or a preset directory that does not load.
    """
    try:
        return kind.from_preset(where.preset)
    except Exception as exc:
        if where.directory is not None:
            raise _does_not_load(where, exc) from exc
        failure = download_failure(exc)
        if failure is not None:
            raise not_downloaded(where, failure, damaged) from exc
        raise


def fetch_converter(where: Where, kind: Any, damaged: Sequence[zoo.SetAside] = ()) -> Any:
    """:func:`fetch` of the image converter, which a backbone-only directory lacks.

    Raises:
        ZooError: as :func:`fetch`, or a directory without ``image_converter.json``.
    """
    if where.directory is not None and not (where.directory / READS[2]).is_file():
        raise _no_converter(where.directory, where.value)
    return fetch(where, kind, damaged)


def download_failure(exc: BaseException) -> BaseException | None:
    """The network or hub error behind ``exc``, if a download is what failed."""
    seen: BaseException | None = exc
    while seen is not None:
        package = type(seen).__module__.partition(".")[0]
        if isinstance(seen, ConnectionError | TimeoutError) or package in _DOWNLOAD_PACKAGES:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class Cache:
    """Where KerasHub's downloads of one preset go.

    Args:
        root: The cache folder (kagglehub's, or Hugging Face's for ``hf://``).
        folder: The preset's folder in it.
        variable: The environment variable that moves ``root``.
    """

    root: Path
    folder: Path
    variable: str


def cache_of(handle: str) -> Cache:
    """Where KerasHub keeps ``handle`` (a ``kaggle://`` or ``hf://`` handle) once downloaded."""
    scheme, _, rest = handle.partition("://")
    if scheme == "hf":
        from huggingface_hub import constants

        root = Path(constants.HF_HUB_CACHE)
        return Cache(root, root / f"models--{rest.replace('/', '--')}", "HF_HUB_CACHE")
    root = zoo.kagglehub_cache()
    return Cache(root, root / "models" / rest, "KAGGLEHUB_CACHE")


def not_downloaded(
    where: Where, failure: BaseException, damaged: Sequence[zoo.SetAside] = ()
) -> zoo.ZooError:
    """Offline: the preset is not in the cache (or was damaged); say what to fill, and how."""
    handle = where.handle or where.preset
    cache = cache_of(handle)
    detail = (str(failure).strip().splitlines() or [""])[0]
    page = ""
    if handle.startswith("kaggle://"):
        page = f" (https://www.kaggle.com/models/{handle.removeprefix('kaggle://')})"
    before = "".join(f"; before that, {moved}" for moved in damaged)
    return zoo.ZooError(
        f"the KerasHub preset '{where.value}' is not in the KerasHub cache and could not "
        f"be downloaded: {type(failure).__name__}: {detail}{before}",
        expected=f"the preset's files in {cache.folder} (the KerasHub cache; "
        f"${cache.variable} moves it), or a local preset directory",
        fix=f"on a machine with internet, write a bundle with zoo fetch keras_hub --set "
        f"backbone.preset={handle} --to DIR, bring DIR here and install it with zoo fetch "
        f"--from DIR (or copy the cache folder, {cache.root}, to the same place here, or point "
        f"${cache.variable} at the copy); or download the preset{page}, unpack it and pass "
        f"--set backbone.preset=DIR (a directory with {PRESET_FILES})",
        got=where.value,
    )


def downloads(params: Mapping[str, Any]) -> list[zoo.Download]:
    """The preset's files zoo reads, into kagglehub's cache as kagglehub lays them out.

    Kaggle publishes no sizes or hashes for preset files: a download is checked against
    the length the server announces, and a bundle records the SHA-256 of each file.
    Each file gets kagglehub's completion marker, without which kagglehub downloads it
    again. A local preset directory needs nothing.

    Raises:
        ZooError: a preset zoo cannot declare files for without KerasHub: a name outside
            the curated table, a Hugging Face handle, or a Kaggle handle without version.
    """
    value = params["preset"]
    if Path(value).expanduser().exists():
        return []
    handle = HANDLES.get(value, value)
    if not handle.startswith("kaggle://"):
        raise _undeclared(value)
    parts = checked(handle).removeprefix("kaggle://").split("/")
    if len(parts) != 5:
        raise _undeclared(value)
    owner, model, framework, variation, version = parts
    root = zoo.kagglehub_cache()
    folder = root / "models" / owner / model / framework / variation
    url = f"{KAGGLE_API}/{owner}/{model}/{framework}/{variation}/{version}/download"
    return [
        zoo.Download(
            name,
            f"{url}/{name}",
            folder / version / name,
            marker=folder / ".complete" / version / f"{name}.complete",
            root=root,
        )
        for name in READS
    ]


def checked(handle: str) -> str:
    """``handle`` when each part between its slashes can name a folder in the cache.

    kagglehub and zoo make a handle's parts folders of the cache, so ``..``, empty
    parts, backslashes or NUL (from a bundle, a saved run, a typo) could lead outside it.

    Raises:
        ZooError: a part that is no plain folder name, naming the handle.
    """
    scheme, _, rest = handle.partition("://")
    if scheme not in ("kaggle", "hf"):
        return handle
    for part in rest.split("/"):
        zoo.plain_name(
            part,
            what=f"the KerasHub preset handle '{handle}'",
            folder=cache_of(handle).root,
            fix="give the handle as Kaggle or Hugging Face shows it, "
            "kaggle://OWNER/MODEL/keras/VARIATION/VERSION or hf://OWNER/MODEL (a bundle's "
            "handles are in its zoo-bundle.json: install only bundles from people you trust)",
            got=handle,
        )
    return handle


def _undeclared(value: str) -> zoo.ZooError:
    return zoo.ZooError(
        f"zoo cannot tell which files the KerasHub preset '{value}' needs without importing "
        "KerasHub.",
        expected="a curated preset (zoo list backbones shows the hub_* ones), a local preset "
        "directory, or a versioned Kaggle handle, kaggle://OWNER/MODEL/keras/VARIATION/VERSION",
        fix="pass the preset's Kaggle handle, --set backbone.preset=kaggle://...; "
        "keras_hub.models.Backbone.presets[NAME]['kaggle_handle'] holds it (a Hugging Face "
        "preset: download it with huggingface_hub and pass its folder)",
        got=value,
    )


def _no_converter(path: Path, value: str) -> zoo.ZooError:
    """A directory ``Backbone.save_to_preset`` wrote alone: zoo cannot guess the pixels."""
    return zoo.ZooError(
        f"the preset directory {path} has no {READS[2]}, so zoo cannot know how the "
        "backbone's images were preprocessed (Backbone.save_to_preset writes only "
        f"{READS[0]} and {READS[1]}).",
        expected=f"a directory with {PRESET_FILES}: what Backbone.save_to_preset and "
        "ImageConverter.save_to_preset write together",
        fix="save the image converter into the same directory too: "
        f"converter.save_to_preset('{path}'), where converter is the "
        "keras_hub.layers.ImageConverter the backbone was trained with (a preset's own: "
        "keras_hub.layers.ImageConverter.from_preset(NAME))",
        got=value,
    )


def _does_not_load(where: Where, exc: Exception) -> zoo.ZooError:
    detail = (str(exc).strip().splitlines() or [""])[0]
    return zoo.ZooError(
        f"the preset directory {where.directory} does not load: {type(exc).__name__}: {detail}",
        expected=f"a KerasHub preset directory with {PRESET_FILES}, as "
        "Backbone.save_to_preset and ImageConverter.save_to_preset write them",
        fix="write it again with save_to_preset, or give a KerasHub preset name",
        got=where.value,
    )


def weights_file(where: Where) -> str | None:
    """The preset's weights file when it is on disk (a directory, or the Kaggle cache)."""
    if where.directory is not None:
        folder = where.directory
    elif where.handle is not None and where.handle.startswith("kaggle://"):
        folder = cache_of(where.handle).folder
    else:
        return None
    path = folder / "model.weights.h5"
    return str(path) if path.is_file() else None

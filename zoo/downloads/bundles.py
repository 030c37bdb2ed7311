"""Making components ready offline: into the caches, into a bundle, from a bundle.

``zoo fetch NAME...`` downloads what the components declare into their caches;
``--to DIR`` writes the same files into a portable bundle with a manifest
(:data:`MANIFEST`) that records each component, the values it was resolved with and
every file's size and SHA-256; ``--from DIR`` installs a bundle on another machine,
into that machine's caches (its own declarations say where, and a bundle's values may
not move a file out of them: :func:`zoo.downloads.readiness.bundled`), verifying every file.

Each function returns one row per file (plain data: ``--json`` prints it, the table
shows it) and stops at the first failure with a :class:`zoo.ZooError` that says what,
what was expected, and how to fix it. Files are moved by :mod:`zoo.downloads.transfer`, so nothing
half-written is ever left under a file's name, and no existing file is replaced: a
cached file is checked in full (its size, the published hashes, and the SHA-256 zoo
recorded when it stored it, :mod:`zoo.downloads.records`), and a damaged one is moved aside to
``NAME.damaged`` with a warning, then fetched again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.downloads import records, transfer, weights
from zoo.downloads.readiness import Needs, Target, bundled
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.storage import confine, runs
from zoo.storage.declared import Download, FileState

MANIFEST = "zoo-bundle.json"
FORMAT = "zoo-bundle"
VERSION = 1
#: How to get files to a machine without internet, for error messages.
BUNDLE_HOWTO = (
    "on a machine with internet, write a bundle (zoo fetch NAME... --to DIR), carry DIR "
    "here and install it (zoo fetch --from DIR)"
)


def into_caches(wanted: Sequence[Needs], dry_run: bool = False) -> list[dict[str, Any]]:
    """Download what is missing into the caches; check what is there. ``dry_run``: only look.

    A cached file that is damaged (another size, no completion marker, other hashes than
    published or than zoo recorded when it stored it) is moved aside, with a warning,
    and downloaded again.

    Raises:
        ZooError: a download failed (naming a damaged file that was moved aside).
    """
    rows = []
    for needs_one, d, found in _files(wanted):
        if dry_run or found == "prepared":  # prepared: what it is made into is there
            rows.append(_row(needs_one.target, d, found, d.path, None))
            continue
        damaged = _set_aside_if_damaged(needs_one.target, d, found)
        written = _recorded(d)
        status = "present"
        if written is None:
            written = _downloaded(needs_one.target, d, d.path, damaged)
            status = "fetched"
        rows.append(_row(needs_one.target, d, status, d.path, written))
    return rows


def into_bundle(wanted: Sequence[Needs], folder: Path) -> list[dict[str, Any]]:
    """Write the files ``wanted`` needs into ``folder`` with a manifest.

    Files in the caches are copied (and checked); the others are downloaded into the
    bundle, not the caches. On failure, the files written so far are removed.

    Raises:
        ZooError: ``folder`` is not empty, a file cannot be had, or is not the one declared.
    """
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ZooError(
            f"{folder} is not an empty folder, so zoo will not write a bundle there.",
            expected="a new or empty folder for the bundle",
            fix="name another folder with --to",
            got=str(folder),
        )
    rows: list[dict[str, Any]] = []
    components: list[dict[str, Any]] = []
    try:
        for needs_one in wanted:
            target = needs_one.target
            files = [_bundled(target, d, found, folder, rows) for d, found in needs_one.states()]
            components.append(_component(target, files))
        _write_json(folder / MANIFEST, _manifest(components))
    except BaseException:
        shutil.rmtree(folder / "files", ignore_errors=True)
        raise
    return rows


def from_bundle(folder: Path, registry: Registry) -> list[dict[str, Any]]:
    """Install the bundle in ``folder`` into this machine's caches, verifying every file.

    Raises:
        ZooError: ``folder`` holds no bundle, names a component not registered here, or
            a file is damaged, missing, or conflicts with a different file in a cache.
    """
    manifest = read_manifest(folder)
    planned = []  # every file's place checked (confined to its cache) before any is written
    for component in manifest["components"]:
        target = _target(registry, component)
        found = _needs(target)
        declared = {d.name: d for d in found.downloads}
        for record in component["files"]:
            d = declared.get(record["name"])
            if d is None:
                raise _undeclared(target, record["name"], sorted(declared))
            planned.append((target, d, _inside(folder, record["file"]), record))
    return [_installed(*plan) for plan in planned]


def read_manifest(folder: Path) -> dict[str, Any]:
    """The bundle's manifest, checked for its shape.

    Raises:
        ZooError: there is none, or it is not a zoo bundle manifest this zoo reads.
    """
    path = folder / MANIFEST
    data: Any = None
    if not folder.is_dir():
        problem = "does not exist, or is not a folder"
    elif not path.is_file():
        problem = "has no zoo-bundle.json: it is not a bundle, or writing it did not finish"
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problem = f"has a zoo-bundle.json that cannot be read ({exc})"
        else:
            problem = "" if _well_formed(data) else "has a zoo-bundle.json of another format"
    if problem:
        raise ZooError(
            f"{folder} {problem}.",
            expected=f"a folder written by zoo fetch NAME... --to DIR ({FORMAT} version {VERSION})",
            fix="write the bundle again with zoo fetch NAME... --to DIR and copy the whole folder",
            got=str(folder),
        )
    return dict(data)


def _files(wanted: Sequence[Needs]) -> list[tuple[Needs, Download, FileState]]:
    """Each declared file once (two components may share one), with its state."""
    seen: set[Path] = set()
    found = []
    for needs_one in wanted:
        for d, where in needs_one.states():
            if d.path not in seen:
                seen.add(d.path)
                found.append((needs_one, d, where))
    return found


def _bundled(
    target: Target, d: Download, found: FileState, folder: Path, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Put ``d`` in the bundle; its manifest record. A file met before is not copied twice."""
    entry = target.entry
    name = f"files/{entry.plugin.name}/{entry.kind}-{entry.name}/{d.name}"
    confine.inside(
        folder / name,
        folder,
        what=f"{d.name} for {target.label} in the bundle",
        got=name,
        fix="report it to the plugin's authors: its plugin, component or file names "
        "must be plain names",
    )
    earlier = next((r for r in rows if r["url"] == d.url and r["sha256"]), None)
    if earlier is not None:
        name = earlier["bundle_file"]
        written = transfer.Written(folder / name, earlier["bytes"], earlier["sha256"])
    elif found == "present" and _set_aside_if_damaged(target, d, found, "downloading it") is None:
        written = _copied(target, d, folder / name)
    else:
        written = _downloaded(target, d, folder / name)
    rows.append({**_row(target, d, "bundled", written.path, written), "bundle_file": name})
    return {
        "name": d.name,
        "file": name,
        "bytes": written.size,
        "sha256": written.sha256,
        "url": d.url,
    }


def _installed(target: Target, d: Download, source: Path, record: dict[str, Any]) -> dict[str, Any]:
    # A file declared without hashes is checked against the bundle's SHA-256.
    expected = replace(d, sha256=d.sha256 or record["sha256"])
    then = "installing it from the bundle"
    damaged = weights.set_aside_if_damaged(expected, _purpose(target, d), thorough=True, then=then)
    written = _recorded(d)
    if written is not None:  # the same file, already here: keep it, mark it
        transfer.mark(d)
        return _row(target, d, "present", d.path, written)
    try:
        written = transfer.copy(d, source, d.path, record["sha256"])
    except transfer.Failed as exc:
        raise _damaged(target, d, source, record, exc.reason, damaged) from exc
    return _row(target, d, "installed", d.path, written)


def _set_aside_if_damaged(
    target: Target, d: Download, found: FileState, then: str = "downloading it again"
) -> weights.SetAside | None:
    """A cached file checked in full; a damaged one moved aside, with a warning.

    A file without its completion marker is an unfinished download unless a hash says it
    is whole; then only the marker is written.
    """
    purpose = _purpose(target, d)
    if found == "incomplete" and not (d.sha256 or d.md5 or records.recorded(d.path)):
        return weights.set_aside(d, purpose, "it has no completion marker", then)
    moved = weights.set_aside_if_damaged(d, purpose, thorough=True, then=then)
    if moved is None and found == "incomplete":
        transfer.mark(d)
    return moved


def _purpose(target: Target, d: Download) -> str:
    return f"{d.name} for {target.label}"


def _recorded(d: Download) -> transfer.Written | None:
    """The intact file in place, as zoo recorded it; None when it is not there."""
    known = records.recorded(d.path) if d.path.is_file() else None
    return transfer.Written(d.path, known.size, known.sha256) if known else None


def _copied(target: Target, d: Download, path: Path) -> transfer.Written:
    try:
        return transfer.copy(d, d.path, path)
    except transfer.Failed as exc:
        raise ZooError(
            f"could not copy {d.path} into the bundle for {target.label}: {exc.reason}.",
            expected=f"{d.name} ({_described(d)}) and room for it in {path.parent}",
            fix="free space there or name another folder with --to, then run zoo fetch again",
            got=str(d.path),
        ) from exc


def _downloaded(
    target: Target, d: Download, path: Path, damaged: weights.SetAside | None = None
) -> transfer.Written:
    try:
        return transfer.download(d, path)
    except transfer.Failed as exc:
        before = weights.SetAside.before(damaged)
        raise ZooError(
            f"could not download {d.name} for {target.label}: {exc.reason}.{before}",
            expected=f"{d.url} ({_described(d)})",
            fix="run zoo fetch again (nothing was kept); if it fails the same way, check the "
            "network (a proxy, https_proxy, may block or alter downloads) or tell the plugin's "
            f"authors the file changed; or {BUNDLE_HOWTO}; or put the file at {d.path} yourself",
            got=d.url,
        ) from exc


def _damaged(
    target: Target,
    d: Download,
    source: Path,
    record: dict[str, Any],
    reason: str,
    damaged: weights.SetAside | None,
) -> ZooError:
    before = weights.SetAside.before(damaged)
    return ZooError(
        f"the bundle's copy of {d.name} for {target.label} is damaged or incomplete: "
        f"{reason}.{before}",
        expected=f"{source} with {record['bytes']:,} bytes and SHA-256 {record['sha256']}",
        fix="copy the bundle folder again (a copy stopped part-way?), or write it again with "
        "zoo fetch NAME... --to DIR; nothing was installed for this file",
        got=str(source),
    )


def _undeclared(target: Target, name: str, declared: list[str]) -> ZooError:
    return ZooError(
        f"the bundle has {name} for {target.label}, which here does not download it.",
        expected=f"files {target.label} declares here: {', '.join(declared) or 'none'}",
        fix="install the same versions of zoo and the plugin as on the machine that wrote the "
        "bundle (zoo doctor shows them), or write the bundle again with this machine's versions",
        got=name,
    )


def _target(registry: Registry, component: dict[str, Any]) -> Target:
    try:
        entry = registry.get(component["kind"], component["qualified_name"])
    except ZooError as exc:
        raise ZooError(
            f"the bundle is for {component['kind']} {component['qualified_name']}, which is "
            f"not available here: {exc.what}",
            expected="the plugins of the machine that wrote the bundle, installed here",
            fix=exc.fix or "install the plugin (zoo plugins lists what is loaded)",
            got=component["qualified_name"],
        ) from exc
    return Target(entry, component["params"])


def _needs(target: Target) -> Needs:
    found = bundled(target)  # the bundle's values choose files, this machine the folders
    if found.error is not None:
        raise found.error
    return found


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ZooError(
            f"the bundle's manifest names a file outside the bundle: {name}.",
            expected="paths under the bundle's folder (files/...)",
            fix="use a bundle written by zoo fetch --to",
            got=name,
        )
    return path


def _described(d: Download) -> str:
    size = f"{d.size:,} bytes" if d.size is not None else "size not published"
    checksum = d.checksum if d.checksum != "unknown" else "no checksum published"
    return f"{size}, {checksum}"


def _row(
    target: Target, d: Download, status: str, path: Path, written: transfer.Written | None
) -> dict[str, Any]:
    return {
        "kind": target.entry.kind,
        "component": target.entry.qualified_name,
        "file": d.name,
        "status": status,
        "bytes": written.size if written else d.size,
        "checksum": f"sha256:{written.sha256}" if written else d.checksum,
        "sha256": written.sha256 if written else d.sha256,
        "url": d.url,
        "path": str(path),
    }


def _component(target: Target, files: list[dict[str, Any]]) -> dict[str, Any]:
    entry = target.entry
    return {
        "kind": entry.kind,
        "name": entry.name,
        "qualified_name": entry.qualified_name,
        "params": dict(target.overrides),
        "files": files,
    }


def _manifest(components: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "zoo": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "components": components,
    }


def _well_formed(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        return False
    keys = {"kind", "qualified_name", "params", "files"}
    fields = {"name", "file", "bytes", "sha256"}
    return all(
        isinstance(c, dict)
        and keys <= set(c)
        and all(isinstance(f, dict) and fields <= set(f) for f in c["files"])
        for c in data.get("components", [None])
    )


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically: the manifest appears only once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, data)

"""Which backbones and heads a study searches, and why the others are left out.

Each candidate is resolved as a run would be, with the study's fixed settings, so a
backbone the image size does not suit, or a head the dataset's classes do not fit, is
left out with the message ``zoo run`` would give. With ``--backbones all``, a backbone
whose files are not here (weights to download: ``zoo fetch`` readiness) is left out
too, with what is missing; one named on the command line is tried, and downloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zoo.downloads.readiness import Target, needs
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.runconfig import Resolved, parse_assignment, resolve_run


@dataclass(frozen=True)
class Skipped:
    """A component a study leaves out, and why."""

    kind: str
    name: str
    reason: str


@dataclass(frozen=True)
class Candidates:
    """What a study searches over, and what it left out."""

    backbones: tuple[str, ...]
    heads: tuple[str, ...]
    with_dropout: frozenset[str]
    skipped: tuple[Skipped, ...]
    #: The backbones left out because their files are not here (``--backbones all``).
    offline: tuple[str, ...] = ()


def candidates(
    registry: Registry,
    dataset: str,
    backbones: str,
    heads: str,
    settings: Mapping[str, object],
    sets: Sequence[str],
) -> Candidates:
    """The backbones and heads of ``--backbones`` and ``--heads`` (names, or ``all``)
    that can run on ``dataset`` with the study's settings.

    Raises:
        ZooError: an unknown name, or nothing left to search (saying why each was left out).
    """
    wanted_backbones = _names(registry, "backbone", backbones)
    wanted_heads = _names(registry, "head", heads)
    skipped: list[Skipped] = []
    kept_heads = []
    for head in wanted_heads:
        found = _resolved(registry, (dataset, wanted_backbones[0], head), settings, sets)
        if isinstance(found, str):
            skipped.append(Skipped("head", head, found))
        else:
            kept_heads.append(head)
    kept_backbones: list[str] = []
    offline: list[str] = []
    for backbone in wanted_backbones:
        names = (dataset, backbone, kept_heads[0] if kept_heads else wanted_heads[0])
        found = _resolved(registry, names, settings, sets)
        if isinstance(found, str):
            skipped.append(Skipped("backbone", backbone, found))
        elif backbones == "all" and _not_here(found, sets):
            offline.append(backbone)
        else:
            kept_backbones.append(backbone)
    if not kept_backbones or not kept_heads:
        said = "; ".join(f"{s.kind} {s.name}: {s.reason}" for s in skipped)
        said += f"; not here offline: {', '.join(offline)}" if offline else ""
        raise ZooError(
            f"zoo tune has nothing to search on {dataset}: {said}.",
            expected="at least one backbone and one head that can run",
            fix="name others with --backbones and --heads, or `zoo fetch` what is missing",
            got=f"--backbones {backbones} --heads {heads}",
        )
    dropout = frozenset(
        h for h in kept_heads if any(p.name == "dropout" for p in registry.get("head", h).params)
    )
    return Candidates(
        tuple(kept_backbones), tuple(kept_heads), dropout, tuple(skipped), tuple(offline)
    )


def _names(registry: Registry, kind: str, text: str) -> list[str]:
    """``all`` (every registered one) or the names given, each checked to exist."""
    if text.strip() == "all":
        return [entry.name for entry in registry.entries(kind)]
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        registry.get(kind, name)  # an unknown name: the closest ones suggested
    if not names:
        raise ZooError(
            f"no {kind}s given to zoo tune.",
            expected=f"--{kind}s NAME[,NAME...] or --{kind}s all",
            fix=f"name at least one {kind} (`zoo list {kind}s`)",
            got=repr(text),
        )
    return names


def _resolved(
    registry: Registry,
    names: tuple[str, str, str],
    settings: Mapping[str, object],
    sets: Sequence[str],
) -> Resolved | str:
    """``names`` resolved with these settings, or why they cannot run."""
    try:
        return resolve_run(registry, names, settings=settings, sets=sets)
    except ZooError as exc:
        return exc.what


def _not_here(resolved: Resolved, sets: Sequence[str]) -> bool:
    """Whether the backbone still has files to download (``zoo fetch`` readiness)."""
    parsed = [parse_assignment(s) for s in sets]
    overrides = {param: value for kind, param, value in parsed if kind == "backbone"}
    return needs(Target(resolved.backbone, overrides)).readiness != "ready"

"""Contract checks for plugin authors: does every component keep zoo's promises?

One line in a plugin's pytest suite checks every component the plugin registers and
reports every problem at once::

    import zoo.testing

    def test_my_plugin_keeps_zoos_contracts():
        zoo.testing.check_plugin("my_plugin", params={"my_dataset": {"num_images": 40}})

For each component it checks the entry (a one-line description, every parameter with
help, and with a default or marked required; only a ``str`` parameter may default to
``None``, "not given"), then builds it on a tiny input the way ``zoo run`` does:

- a dataset: ``build(params)`` returns ``zoo.Splits`` whose three splits are non-empty
  ``tf.data.Dataset`` objects of unbatched ``(uint8 [h, w, 3], integer label)`` pairs,
  labels in ``range(len(class_names))``, class names distinct strings that agree with
  ``class_names(params)``, and ``sizes`` that match the splits;
- a backbone: ``build((s, s, 3), params)`` returns ``zoo.BuiltBackbone`` at its minimum
  image size and at ``image_size``; raw pixels go through its preprocessing and model
  to finite float features ``[batch, c]``, ``[batch, tokens, c]`` or
  ``[batch, h, w, c]``, and the model is frozen or not as a ``trainable`` parameter says;
- a head: ``build(features, num_classes, params)`` on a feature map, a token sequence
  and a feature vector returns ``zoo.BuiltHead`` with floating-point outputs
  ``[batch, num_classes]`` (or ``[batch, 1]`` for two classes) that train one step on
  integer labels with its loss and metrics to a finite loss. A head may refuse a
  feature shape by raising ``zoo.ZooError``; it must accept one of them.
- a run observer: ``build(params, run)`` gives an observer that is told a whole tiny run
  (the built-in ``shapes`` dataset, ``small_cnn``, ``gap_sigmoid``, one epoch) without
  raising, ``recorded()`` included (what metrics.json keeps of it, if it says).

Then :func:`check_plugin` round-trips each backbone and head that passed
(:mod:`zoo.testing.roundtrip`): built into a model as ``zoo run`` builds it, trained one step,
saved, then loaded and predicted in a new Python process, which must give the same
answers. A plugin given as a class or instance, which a new process cannot import, is
not round-tripped.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.components import ALL_KINDS
from zoo.params import resolve
from zoo.plugins import LoadOptions, load_registry
from zoo.registry import Entry, PluginInfo, Registry
from zoo.runtime import loader
from zoo.testing.contracts import Found, Problem, Settings

__all__ = ["ContractError", "Problem", "Report", "check_components", "check_plugin"]


@dataclass
class Report:
    """What was checked, what was skipped (metadata only), and every problem found.

    ``round_trips`` lists the components saved and loaded again in a new process.
    """

    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    round_trips: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        skipped = f" ({len(self.skipped)} not built)" if self.skipped else ""
        head = f"{len(self.checked)} components checked{skipped}: "
        if self.ok:
            return head + "no problems"
        lines = [f"  - {problem}" for problem in self.problems]
        return head + f"{len(self.problems)} problems\n" + "\n".join(lines)

    def raise_for_problems(self) -> Report:
        """Return the report, or raise :class:`ContractError` listing every problem."""
        if self.problems:
            raise ContractError(self)
        return self


class ContractError(AssertionError):
    """Components break zoo's contracts; ``report`` lists every problem.

    An ``AssertionError``, so pytest shows it as a test failure with the full list.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__(str(report))


def check_plugin(
    plugin: str | object,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    skip: Collection[str] = (),
    image_size: int = 32,
    max_examples: int = 32,
    verbose: bool = False,
) -> Report:
    """Load ``plugin`` as zoo does and check every component it registers.

    Args:
        plugin: The plugin's name as installed (its entry point name in the group
            ``zoo``), or the plugin object itself (a module or class with
            ``@zoo.hookimpl`` functions), loaded next to zoo's built-ins.
        params: Parameter values per component name, to keep the check tiny
            (``{"my_dataset": {"num_images": 40}}``); also how required
            parameters get a value.
        skip: Component names not to build (too slow, or needing the network);
            their entries are still checked, but not their parameter values.
        image_size: The image side a backbone is built at, besides its minimum
            (``min_image_size``); ``1`` builds at the minimum only.
        max_examples: How many examples of each split are read and checked.
        verbose: Show what TensorFlow, Keras and TFDS say on their own (C++ log lines,
            their warnings, progress bars), as ``zoo --verbose`` does.

    Returns:
        The report, when there is no problem.

    Raises:
        ContractError: the plugin is missing or failed to load, registers nothing,
            clashes with another plugin's names, or a component breaks its contract;
            the message lists every problem.
    """
    with loader.quiet(verbose):
        registry, info = _load(plugin)
        found = _found_plugin(registry, info, plugin)
        if info is None or info.status != "ok":
            return Report(problems=found).raise_for_problems()
        entries = [e for kind in ALL_KINDS for e in registry.entries(kind) if e.plugin is info]
        report = check_components(
            entries,
            params=params,
            skip=skip,
            image_size=image_size,
            max_examples=max_examples,
            verbose=verbose,
        )
        report.problems[:0] = found + _clashes(registry, entries)
        _round_trip(plugin, entries, report, params or {}, image_size)
        return report.raise_for_problems()


def check_components(
    entries: Registry | Iterable[Entry],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    skip: Collection[str] = (),
    image_size: int = 32,
    max_examples: int = 32,
    verbose: bool = False,
) -> Report:
    """Check registry entries against their contracts; never raises for a problem.

    Takes the same keyword arguments as :func:`check_plugin`; components are named
    by short or qualified name (``plugin:name``) in ``params`` and ``skip``.

    Returns:
        A report of every problem found (``report.ok`` when there is none).
    """
    entries = list(entries)
    report = Report()
    settings = Settings(image_size, max_examples)
    params = dict(params or {})
    with loader.quiet(verbose):
        # Building imports TensorFlow: only now, quiet or verbose as asked.
        from zoo.testing.builds import check_component

        for entry in entries:
            label = f"{entry.kind} {entry.qualified_name}"
            overrides = params.get(entry.qualified_name, params.get(entry.name, {}))
            skipped = entry.name in skip or entry.qualified_name in skip
            check_component(entry, overrides, Found(report.problems, label), settings, not skipped)
            report.checked.append(label)
            if skipped:
                report.skipped.append(label)
    known = {e.name for e in entries} | {e.qualified_name for e in entries}
    for name in sorted(set(params) - known):
        report.problems.append(Problem(name, "params", "names no component being checked"))
    return report


def _round_trip(
    plugin: str | object,
    entries: list[Entry],
    report: Report,
    params: Mapping[str, Mapping[str, Any]],
    image_size: int,
) -> None:
    """Round-trip the backbones and heads that were built and broke no contract."""
    faulty = {problem.component for problem in report.problems}
    chosen = [
        e
        for e in entries
        if e.kind in ("backbone", "head")
        and f"{e.kind} {e.qualified_name}" not in faulty
        and f"{e.kind} {e.qualified_name}" not in report.skipped
    ]
    values = {
        e.qualified_name: resolve(
            e.kind,
            e.name,
            e.params,
            [
                (e.meta.source or "registry.toml", e.meta.defaults),
                ("params=", params.get(e.qualified_name, params.get(e.name, {}))),
            ],
        )
        for e in chosen
    }
    from zoo.testing.roundtrip import round_trip  # imports TensorFlow, loaded by now

    passed, problems = round_trip(plugin, chosen, values, image_size)
    report.round_trips += passed
    report.problems += problems


# --- Loading ------------------------------------------------------------------------


def _load(plugin: str | object) -> tuple[Registry, PluginInfo | None]:
    if isinstance(plugin, str):
        registry = load_registry()
        return registry, next((p for p in registry.plugins if p.name == plugin), None)
    registry = load_registry(LoadOptions(builtins_only=True, extra=[plugin]))
    return registry, registry.plugins[-1]


def _found_plugin(registry: Registry, info: PluginInfo | None, plugin: object) -> list[Problem]:
    if info is None:
        names = ", ".join(p.name for p in registry.plugins)
        detail = (
            "no plugin of that name is loaded. Install the package (pip install -e .) and "
            'declare the entry point: [project.entry-points.zoo] NAME = "your_module". '
            f"Loaded plugins: {names}"
        )
        return [Problem(f"plugin {plugin}", "installed", detail)]
    label = f"plugin {info.name}"
    if info.status == "disabled":
        return [Problem(label, "load", "disabled by $ZOO_DISABLE_PLUGINS")]
    if info.status == "failed":
        return [Problem(label, "load", info.error or "failed")]
    if not info.components:
        return [Problem(label, "components", "registers no dataset, backbone, head or observer")]
    return []


def _clashes(registry: Registry, entries: list[Entry]) -> list[Problem]:
    problems = []
    for entry in entries:
        for other in registry.entries(entry.kind):
            if other.name == entry.name and other.plugin is not entry.plugin:
                problems.append(
                    Problem(
                        f"{entry.kind} {entry.qualified_name}",
                        "name",
                        f"plugin '{other.plugin.name}' ({other.plugin.origin}) registers "
                        f"the same name, so users must write '{entry.qualified_name}'; "
                        "choose a name no other plugin uses",
                    )
                )
    return problems

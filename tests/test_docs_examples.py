"""Every example in README.md and docs/*.md, and of every ``--help``, runs as written.

Each fenced ``bash``, ``sh``, ``shell``, ``console`` or ``python`` block is one test,
named by its file, line and first words. The blocks of one file run in their order in
one workspace, as a reader runs them in one folder: shell blocks with ``bash -e`` (of a
``console`` block, the ``$`` lines), Python blocks with this Python in a new process.
A block whose first line names a file (``# my_heads.py``, ``# registry.toml``), in any
language, is saved there before the examples after it run, as the reader saves it. A
block that fails fails its test.

A block that cannot run here carries a tag readers see, a line in italics right above
it, whose text after the colon is the test's skip reason::

    *Not run by the tests: downloads cats_vs_dogs (825 MB) and ImageNet weights.*

Blocks that are not commands (output, file listings, excerpts of zoo's code) are fenced
``text``, ``toml`` or ``json``; every fence names its language, so none hides an
example. A Python block that is only a signature (docs/plugins.md's hooks, which
test_docs.py checks against the code) is compiled with a body, not run.

The workspace is a folder as the examples expect to find it: the runs they name
(``runs/RUN_A``, ``runs/RUN_B``, ``runs/RUN``: one tiny trained run), pictures
(``photos/``, ``cat.jpg``, ``fox.png``) and a labelled ``holdout/``, the checkout's
``examples/``, ``tools/`` and ``bench/``, a home folder and cache of its own, proxies
that refuse every download, and a ``registry.toml`` whose ``[run]`` and shapes defaults
are small (one epoch of 40 images at 32x32), as a user's may be. So a command trains in
seconds as written; sizes an example gives itself win, and a block that writes its own
registry.toml replaces it.

The ``zoo ...`` examples of each command's ``--help`` (its epilog) are parsed by zoo's
own parser, so an unknown flag or a missing value there fails, and each runs in a
workspace of its own; those that cannot run here (a download, an interrupted run) are
named in ``HELP_NOT_RUN`` with why, which is their skip reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TINY_RUN, offline_env, run_zoo, write
from PIL import Image
from test_help import parsers
from test_predict import shape_image

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
RUNNABLE = {*SHELLS, "python"}
NOT_RUN = {"text", "toml", "json"}
FENCE = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
TAG = re.compile(r"^\*Not run by the tests: (.+?)\*$")
FILE_LINE = re.compile(r"# ([\w./-]+\.(?:py|toml))\n")
#: The workspace's registry.toml: small defaults, so examples train in seconds.
SMALL_DEFAULTS = """
[run]
epochs = 1
image_size = 32
batch_size = 8

[components.dataset.shapes]
defaults = { num_images = 40, min_size = 24, max_size = 40 }
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it is, its language, its text, its tag."""

    page: Path
    line: int
    language: str
    text: str
    tag: str | None

    @property
    def name(self) -> str:
        words = " ".join(line for line in self.text.splitlines() if line.strip())
        return f"{self.page.name}:{self.line} {' '.join(words.split()[:4])}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the tag on the line above it, if any."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        tag = TAG.match(before)
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(2),
                text=_dedent(match.group(3), len(match.group(1))),
                tag=tag.group(1) if tag else None,
            )
        )
    return found


def _dedent(text: str, indent: int) -> str:
    return "".join(line[indent:] for line in text.splitlines(keepends=True))


ALL = [block for page in PAGES for block in blocks(page)]
EXAMPLES = [block for block in ALL if block.language in RUNNABLE]


def example_params() -> list[object]:
    return [
        pytest.param(
            block,
            id=block.name,
            marks=[pytest.mark.skip(reason=block.tag)] if block.tag else [],
        )
        for block in EXAMPLES
    ]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny circle-vs-square run, trained by ``zoo run`` in its own process."""
    folder = tmp_path_factory.mktemp("trained")
    env = {"ZOO_CACHE_DIR": str(folder / "cache"), **offline_env()}
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--output", "runs",
                     cwd=folder, env=env)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (run_dir,) = (folder / "runs").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def workspaces(
    tmp_path_factory: pytest.TempPathFactory, trained_run: Path
) -> Callable[[Path], Path]:
    """The workspace of a page, made when the page's first example runs."""
    made: dict[Path, Path] = {}

    def of(page: Path) -> Path:
        if page not in made:
            made[page] = workspace(tmp_path_factory.mktemp(page.stem), trained_run)
        return made[page]

    return of


def workspace(folder: Path, trained_run: Path) -> Path:
    """``folder`` set up as the examples expect to find it (see the module docstring)."""
    for name in ("RUN_A", "RUN_B", "RUN"):
        shutil.copytree(trained_run, folder / "runs" / name)
    pictures = {"photos/circle.png": "circle", "photos/square.jpg": "square",
                "cat.jpg": "circle", "fox.png": "square"}  # fmt: skip
    for index in range(3):
        for shape in ("circle", "square"):
            pictures[f"holdout/{shape}/{index}.png"] = shape
    for seed, (name, shape) in enumerate(pictures.items()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shape_image(shape, (40, 56), seed=seed)).save(folder / name)
    for name in ("examples", "tools", "bench"):
        (folder / name).symlink_to(ROOT / name)
    write(folder / "registry.toml", SMALL_DEFAULTS)
    (folder / "home").mkdir()
    return folder


def environment(folder: Path) -> dict[str, str]:
    """This environment, with the workspace's home and cache, and downloads refused."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZOO_")}
    venv = str(Path(sys.executable).parent)
    return {
        **env,
        **offline_env(),
        "HOME": str(folder / "home"),
        "ZOO_CACHE_DIR": str(folder / ".zoo-cache"),
        "PATH": os.pathsep.join([venv, env.get("PATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def run_in(folder: Path, source: str, python: bool = False) -> subprocess.CompletedProcess[str]:
    """``source`` run in ``folder`` as the reader runs it: with ``bash -e``, or Python."""
    return subprocess.run(
        [sys.executable, "-"] if python else ["bash", "-e", "-o", "pipefail"],
        input=source,
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment(folder),
        timeout=600,
    )


def script(block: Block) -> str:
    """What runs: a shell block's commands, a Python block's source."""
    if block.language != "console":
        return block.text
    return "".join(line[2:] for line in block.text.splitlines(keepends=True) if line[:2] == "$ ")


def is_signature(source: str) -> bool:
    """Whether ``source`` is only a ``def`` line (or lines), as the hook sections show them."""
    try:
        compile(source, "<block>", "exec")
    except SyntaxError:
        compile(source + "    ...\n", "<signature>", "exec")
        return True
    return False


def save_files(folder: Path, upto: Block) -> None:
    """Save the page's blocks that name a file, up to ``upto``, as the reader has by then."""
    for block in blocks(upto.page):
        named = FILE_LINE.match(block.text)
        if named and block.line <= upto.line:
            write(folder / named.group(1), block.text)


@pytest.mark.parametrize("block", example_params())
def test_every_example_runs_as_written(block: Block, workspaces: Callable[[Path], Path]):
    folder = workspaces(block.page)
    save_files(folder, block)
    source = script(block)
    if block.language == "python" and is_signature(source):
        return
    proc = run_in(folder, source, python=block.language == "python")

    assert proc.returncode == 0, f"{block.name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_fence_names_a_language_run_or_shown(page: Path):
    languages = {block.language for block in blocks(page)}

    assert languages <= RUNNABLE | NOT_RUN, (
        f"{page.name}: fences of {languages - RUNNABLE - NOT_RUN}"
    )


def test_tags_sit_only_above_examples():
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    tagged = sum(1 for line in text.splitlines() if TAG.match(line))

    assert tagged == sum(1 for block in EXAMPLES if block.tag)


# --help examples --------------------------------------------------------------------


def help_examples() -> list[str]:
    """Every ``zoo ...`` example in a command's epilog."""
    from zoo.cli import build_parser

    epilogs = [parser.epilog or "" for _, parser in parsers(build_parser())]
    return [example for epilog in epilogs for example in re.findall(r"\bzoo [^;,\n]+", epilog)]


HELP_EXAMPLES = help_examples()


def test_every_command_with_an_epilog_shows_examples():
    assert {example.split()[1] for example in HELP_EXAMPLES} >= {"run", "export", "compare"}


@pytest.mark.parametrize("example", HELP_EXAMPLES)
def test_every_help_example_parses(example: str, capsys: pytest.CaptureFixture[str]):
    from zoo.cli import build_parser

    try:
        build_parser().parse_args(example.split()[1:])
    except SystemExit:  # argparse's exit: an unknown flag, a missing value
        pytest.fail(f"--help shows {example!r}, which zoo refuses: {capsys.readouterr().err}")


#: The --help examples that cannot run here, and why (the skip reason).
HELP_NOT_RUN = {
    "zoo run --recipe tutorial_transfer": "downloads cats_vs_dogs (825 MB) and ImageNet weights",
    "zoo fetch tutorial_transfer --to /media/usb/zoo-bundle": "downloads the tutorial's files",
    "zoo fetch --from /media/usb/zoo-bundle": "installs the bundle that the download before "
    "writes (tests/test_fetch.py writes and installs bundles from a local server)",
    "zoo run --resume runs/RUN": "needs an interrupted run (tests/test_resume.py interrupts "
    "runs and resumes them)",
    "zoo compare runs/*-small_cnn-* runs/*-resnet50-* --label scratch --label transfer": (
        "needs a resnet50 run, whose ImageNet weights are a download"
    ),
    "zoo tune image_folder --set dataset.path=PHOTOS --timeout 30m --repeats 2": (
        "searches for 30 minutes on the reader's photos (tests/test_tune.py runs studies)"
    ),
}
#: What the reader has done before an example, as another example of the same --help.
HELP_BEFORE = {
    "zoo predict phone/model.tflite photos/": "zoo export runs/RUN --format litert --output phone",
    "zoo tune --report shapes": "zoo tune shapes --trials 6",
}


def help_params() -> list[object]:
    return [
        pytest.param(
            example,
            id=example,
            marks=[pytest.mark.skip(reason=HELP_NOT_RUN[example])]
            if example in HELP_NOT_RUN
            else [],
        )
        for example in HELP_EXAMPLES
    ]


def test_every_skipped_help_example_is_still_shown():
    assert set(HELP_NOT_RUN) | set(HELP_BEFORE) <= set(HELP_EXAMPLES)


@pytest.mark.parametrize("example", help_params())
def test_every_help_example_runs_as_written(example: str, tmp_path: Path, trained_run: Path):
    """In a workspace of its own, as the README's examples run (see the module docstring)."""
    folder = workspace(tmp_path, trained_run)
    commands = [HELP_BEFORE[example]] if example in HELP_BEFORE else []
    proc = run_in(folder, "\n".join([*commands, example]) + "\n")

    assert proc.returncode == 0, f"{example}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"

"""The zoo command line, through its real entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import TINY_RUN, run_zoo, tiny_backbone_plugin, write, zoo_executable

NO_TENSORFLOW = """
import runpy, sys
sys.argv = ["zoo", *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
heavy = ("tensorflow", "keras", "tensorflow_datasets", "keras_hub", "openvino")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print("LOADED:" + ",".join(loaded))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["list", "plugins", "--json"],
        ["info", "shapes"],
        ["info", "hub_vit_base16"],
        ["cache", "list", "--json"],
        ["fetch", "tutorial_transfer", "hub_vit_base16", "--dry-run"],
    ],
)
def test_listing_and_help_never_import_tensorflow(args, isolated: Path):
    import subprocess

    code = NO_TENSORFLOW.format(args=args, script=zoo_executable())
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert "LOADED:" in proc.stdout, proc.stderr
    assert proc.stdout.rsplit("LOADED:", 1)[1].strip() == ""


def test_list_json_describes_every_component(zoo_cli):
    result = zoo_cli("list", "--json")

    assert result.exit_code == 0
    data = result.json()
    shapes = next(d for d in data["datasets"] if d["name"] == "shapes")
    assert shapes["plugin"] == "shapes" and shapes["package"] == "zoo"
    assert {"name": "num_images", "type": "int", "default": 5000}.items() <= shapes["params"][
        0
    ].items()
    assert [r["name"] for r in data["recipes"]] == [
        "shapes_scratch",
        "tutorial_scratch",
        "tutorial_transfer",
        "demo_pretrained",
        "demo_scratch",
        "photos",
    ]
    assert {b["name"] for b in data["backbones"]} >= {"small_cnn"}


def test_list_one_kind_as_a_table(zoo_cli):
    result = zoo_cli("list", "heads")

    assert result.exit_code == 0
    assert "gap_sigmoid" in result.stdout and "gap_softmax" in result.stdout
    assert "heads (zoo" in result.stdout


def test_list_plugins_shows_sources_and_status(zoo_cli, isolated: Path):
    write(isolated / "mine.py", tiny_backbone_plugin("mine"))
    write(isolated / "broken.py", "raise RuntimeError('oops')\n")
    write(isolated / "registry.toml", '[plugins]\nload = ["mine.py", "broken.py"]\n')

    result = zoo_cli("list", "plugins", "--json")

    plugins = {p["name"]: p for p in result.json()}
    assert plugins["mine"]["source"] == "local" and plugins["mine"]["status"] == "ok"
    assert plugins["mine"]["components"] == ["backbone:mine"]
    assert plugins["broken"]["status"] == "failed"
    assert "RuntimeError: oops" in plugins["broken"]["error"]
    assert "warning: plugin 'broken'" in result.stderr


def test_info_shows_parameters(zoo_cli):
    result = zoo_cli("info", "small_cnn", "--json")

    assert result.exit_code == 0
    [entry] = result.json()
    assert entry["kind"] == "backbone" and entry["min_image_size"] == 22
    assert [p["name"] for p in entry["params"]] == ["filters", "trainable"]


def test_info_shows_a_backbones_card_without_its_unset_fields(zoo_cli, isolated: Path):
    write(
        isolated / "carded.py",
        """
        import zoo

        @zoo.hookimpl
        def register_backbones(register):
            register(zoo.Backbone(
                name="carded", description="A backbone with a card", build=print,
                family="ViT", parameters=1234567, licence="Apache-2.0",
            ))
        """,
    )
    write(isolated / "registry.toml", '[plugins]\nload = ["carded.py"]\n')

    lines = zoo_cli("info", "carded").stdout.splitlines()

    assert {"family: ViT", "parameters: 1,234,567", "licence: Apache-2.0"} <= set(lines)
    assert not any(line.startswith(("native image size", "source")) for line in lines)


def test_info_on_an_unknown_name_exits_2_with_a_suggestion(zoo_cli):
    result = zoo_cli("info", "gap_sigmod")

    assert result.exit_code == 2
    assert "did you mean 'gap_sigmoid'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["run", "shapes", "small_cnn"], "needs a dataset, a backbone and a head"),
        (["run", "shapes", "small_cnn", "gap_sigmod"], "no head named 'gap_sigmod'"),
        (
            ["run", "shapes", "small_cnn", "gap_sigmoid", "--set", "head.size=3"],
            "no parameter 'size'",
        ),
        (["run", "shapes", "small_cnn", "gap_sigmoid", "--epochs", "0"], "below the minimum"),
        (["run", "--recipe", "nope"], "no recipe named 'nope'"),
    ],
)
def test_user_errors_exit_2_without_a_traceback(zoo_cli, args, complaint):
    result = zoo_cli(*args)

    assert result.exit_code == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_argument_errors_exit_2():
    result = run_zoo("list", "models")

    assert result.exit_code == 2
    assert "invalid choice" in result.stderr


def test_dry_run_prints_the_summary_and_writes_nothing(zoo_cli, isolated: Path):
    result = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", "--dry-run")

    assert result.exit_code == 0
    assert "Total params: 28,705" in result.stdout
    assert "Trainable params: 28,705" in result.stdout
    assert "devices:" in result.stderr
    assert not (isolated / "runs").exists()


def test_a_run_end_to_end_writes_a_complete_run_directory(isolated: Path):
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json", cwd=isolated)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    run_dir = Path(data["run_dir"])
    assert run_dir.parent == Path("runs")
    run_dir = isolated / run_dir
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "metrics.json",
        "model.keras",
        "logs",
    }
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert [row["epoch"] for row in metrics["history"]] == [1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics["history"][0])
    assert set(metrics["test"]) == {"loss", "accuracy"}
    assert metrics["parameters"] == {"total": 28705, "trainable": 28705, "non_trainable": 0}
    assert {"data", "train", "evaluate"} <= set(metrics["timings"])
    assert {"python", "zoo", "tensorflow", "keras"} <= set(metrics["versions"])
    assert metrics["seed"] == 0
    assert metrics["dataset"]["sizes"] == {"train": 32, "validation": 4, "test": 4}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"]["params"]["num_images"] == 40
    assert config["command"][:4] == ["zoo", "run", "shapes", "small_cnn"]
    for split in ("train", "validation"):
        assert list((run_dir / "logs" / split).glob("events.out.tfevents.*"))
    assert "epoch 1/1" in result.stderr
    assert "I0000" not in result.stderr and "absl" not in result.stderr


def test_a_second_run_gets_a_new_directory(zoo_cli, isolated: Path):
    first = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json")
    second = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json")

    assert first.exit_code == second.exit_code == 0
    assert first.json()["run_dir"] != second.json()["run_dir"]
    assert len(list((isolated / "runs").iterdir())) == 2

"""Plugin discovery: built-ins, config-named files, installed packages (entry points)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from edgedepth.api.options import StrictModel, described
from edgedepth.engine.config import PipelineConfig
from edgedepth.engine.registry import load_registry
from tests.conftest import run_edgedepth, synthetic_config

EXAMPLE = Path(__file__).parents[1] / "examples" / "plugin_example"


def test_plugins_json_lists_the_builtins():
    result = run_edgedepth("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert set(listing) == {"sources", "resize", "backends", "postprocessors", "sinks"}
    names = {kind: {e["name"]: e for e in entries} for kind, entries in listing.items()}
    assert {"video", "images", "camera", "synthetic"} <= set(names["sources"])
    assert {"fixed", "keep-aspect", "letterbox", "none"} <= set(names["resize"])
    assert "npy" in names["sinks"]
    assert names["sinks"]["npy"]["plugin"] == "edgedepth.plugins.npy_sink"
    assert "dir" in names["sinks"]["npy"]["options"]["properties"]


def test_plugins_with_config_include_its_plugins(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path))
    result = run_edgedepth("plugins", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "sleepy" in result.stdout and "sleepy.py" in result.stdout


def test_installed_example_plugin_package(tmp_path, write_config):
    """The README's example package, installed for real (pip, into its own folder), is found
    through its entry point and runs in a pipeline."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    env = {"PYTHONPATH": str(target)}
    listing = json.loads(run_edgedepth("plugins", "--json", env=env).stdout)
    backends = {e["name"]: e for e in listing["backends"]}
    assert backends["gradient"]["plugin"] == "gradient"  # the entry point's name
    config = write_config(
        {
            "source": {"type": "synthetic", "frames": 4, "width": 64, "height": 48},
            "backend": {"type": "gradient", "near": 0.5, "far": 10.0},
            "sinks": [{"type": "npy", "dir": "out"}],
        }
    )
    result = run_edgedepth("run", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    depth = np.load(tmp_path / "out" / "000003.npy")
    assert depth.shape == (48, 64)
    np.testing.assert_allclose(depth[0], 10.0)  # top row far, bottom row near
    np.testing.assert_allclose(depth[-1], 0.5)


def test_readme_shows_the_example_plugin_verbatim():
    """A newcomer writes a backend from the README alone: it must be the tested example."""
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    example = (EXAMPLE / "edgedepth_gradient.py").read_text()
    assert f"```python\n{example}```" in readme


def test_plugin_without_options_model(tmp_path, write_config):
    (tmp_path / "counting.py").write_text(
        "import edgedepth\n\n"
        "class CountingSink:\n"
        "    def __init__(self, options, context):\n"
        "        self.count = 0\n"
        "    def write(self, frame):\n"
        "        self.count += 1\n\n"
        "@edgedepth.hookimpl\n"
        "def register_sinks(register: edgedepth.Register) -> None:\n"
        '    register("counting", CountingSink, "counts frames")\n'
    )
    config = synthetic_config(tmp_path, sinks=[{"type": "counting"}])
    config["plugins"].append("counting.py")
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert "sink:counting" in result.stderr
    config["sinks"] = [{"type": "counting", "colour": "red"}]
    result = run_edgedepth("check", "--config", str(write_config(config)))
    assert result.returncode == 2
    assert "sinks[0].colour: unknown key" in result.stderr.strip().splitlines()[-1]


def test_plugin_that_exits_on_import_is_a_one_line_error(tmp_path, write_config):
    (tmp_path / "rude.py").write_text("import sys\nsys.exit(3)\n")
    config = synthetic_config(tmp_path)
    config["plugins"].append("rude.py")
    result = run_edgedepth("check", "--config", str(write_config(config)))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "rude.py" in line and "SystemExit(3)" in line


def test_plugins_name_shows_its_options():
    result = run_edgedepth("plugins", "npy")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sinks:" and lines[1].split()[0] == "npy"
    assert "dir: path (required)" in result.stdout
    assert "existing: refuse | clear | overwrite | new-name = 'refuse'" in result.stdout
    verbose = run_edgedepth("plugins", "--verbose")
    assert "lower_bound: int = 518" in verbose.stdout  # keep-aspect's options
    unknown = run_edgedepth("plugins", "npz")
    assert unknown.returncode == 1 and "no plugin registers 'npz'" in unknown.stderr


def _options_without_description(model, where: str) -> list[str]:
    missing = []
    for key, field in described(model).model_fields.items():
        if not field.description:
            missing.append(f"{where}.{key}")
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            missing += _options_without_description(field.annotation, f"{where}.{key}")
    return missing


def test_every_built_in_option_has_a_description():
    """`edgedepth plugins NAME` shows a description for every key of every built-in plugin and
    of the config's own sections (read from the attribute docstrings)."""
    registry = load_registry()
    missing = _options_without_description(PipelineConfig, "config")
    for kind, registrations in registry.by_kind.items():
        for name, registration in registrations.items():
            assert registration.plugin.startswith("edgedepth."), registration.plugin
            missing += _options_without_description(registration.options, f"{kind}/{name}")
    assert not missing, f"options without a description: {', '.join(missing)}"
    shown = run_edgedepth("plugins", "keep-aspect").stdout.splitlines()
    at = shown.index("      lower_bound: int = 518")
    assert shown[at + 1].strip().startswith("The shorter side is scaled to at least this")


def test_readme_lists_every_resize_policy_key():
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines()
            if line.strip().startswith("| `")}  # fmt: skip
    for name, registration in load_registry().by_kind["resize"].items():
        assert name in rows, f"README: no row for resize policy {name!r}"
        for key, field in registration.options.model_fields.items():
            assert f"`{key}` ({field.default})" in rows[name], (name, key)


def test_descriptions_are_read_from_attribute_docstrings_when_asked():
    """A plugin's StrictModel gets its attribute docstrings as descriptions, in `plugins NAME`
    and in the JSON schema, also when the model validated (and built its schema) before; a
    `Field(description=...)` is kept; a nested section's docstrings are read too."""
    from pydantic import Field

    class Inner(StrictModel):
        depth: float = 1.0
        """How deep."""

    class Options(StrictModel):
        width: int = 3
        """How wide, in
        pixels."""
        given: int = Field(0, description="from Field")
        inner: Inner = Inner()

    Options.model_validate({"width": 4})  # the schema is built now, before any description
    schema = described(Options).model_json_schema()
    assert schema["properties"]["width"]["description"] == "How wide, in\npixels."
    assert schema["properties"]["given"]["description"] == "from Field"
    assert Inner.model_fields["depth"].description == "How deep."
    assert Options.model_validate({"width": 5}).width == 5  # still validates after the rebuild

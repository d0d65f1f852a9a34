"""The pinned environment is stated consistently: pyproject.toml, environment.yml, the Makefile.

pyproject.toml is the source of truth (its pins produced the committed notebooks); environment.yml
must pin the same packages at the same versions (conda's ``pytorch`` is pip's ``torch``), and the
Makefile's torch pins must match too.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip"}  # the interpreter and the installer, not project dependencies
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(==?)\s*([^\s;,#]+)\s*$")


def normalise(name: str) -> str:
    """PEP 503 name normalisation, plus conda's ``pytorch`` -> ``torch``."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PIP.get(name, name)


def parse_pin(spec: str) -> tuple[str, str]:
    match = PIN.match(spec)
    assert match, f"not an exact pin (name==version): {spec!r}"
    return normalise(match.group(1)), match.group(3)


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = [parse_pin(spec) for spec in specs]
    names = [name for name, _ in pins]
    assert len(names) == len(set(names)), f"a package is listed twice: {names}"
    return dict(pins)


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    specs: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [s for s in dep.get("pip", []) if not s.lstrip().startswith("-")]
        else:
            specs.append(dep)
    pins = {}
    for spec in specs:
        bare = re.split(r"[=<>!~ ]", spec.strip(), maxsplit=1)[0]
        if normalise(bare) in CONDA_ONLY:
            continue
        name, version = parse_pin(spec)
        assert name not in pins, f"{name} is listed twice in environment.yml"
        pins[name] = version
    return pins


def test_pyproject_dependencies_are_exact_pins():
    assert pyproject_pins(), "pyproject.toml lists no dependencies"


def test_every_pyproject_pin_is_in_environment_yml():
    env = environment_pins()
    for name, version in pyproject_pins().items():
        assert name in env, f"{name} (pyproject.toml) is missing from environment.yml"
        assert env[name] == version, (
            f"{name}: pyproject.toml {version}, environment.yml {env[name]}"
        )


def test_every_environment_yml_pin_is_in_pyproject():
    project = pyproject_pins()
    for name, version in environment_pins().items():
        assert name in project, f"{name} (environment.yml) is missing from pyproject.toml"
        assert project[name] == version, (
            f"{name}: environment.yml {version}, pyproject {project[name]}"
        )


def test_environment_yml_installs_kit_with_dev_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = [s for dep in env["dependencies"] if isinstance(dep, dict) for s in dep.get("pip", [])]
    assert any(re.fullmatch(r"-e\s+\.\[dev\]", s.strip()) for s in pip), pip


def test_makefile_torch_pins_match_pyproject():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^TORCH_PINS\s*:?=\s*(.+)$", makefile, re.M)
    assert match, "Makefile has no TORCH_PINS line"
    project = pyproject_pins()
    for spec in match.group(1).split():
        name, version = parse_pin(spec)
        assert project.get(name) == version, f"Makefile {spec}, pyproject.toml {project.get(name)}"


def test_installed_versions_match_the_pins():
    """The environment running the tests is the pinned one (else notebook outputs may differ)."""
    wrong = {}
    for name, version in pyproject_pins().items():
        try:
            installed = metadata.version(name).split("+")[0]  # drop local tags like +cu130
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = f"pinned {version}, installed {installed}"
    assert not wrong, f"run `make venv` (environment differs from pyproject.toml): {wrong}"

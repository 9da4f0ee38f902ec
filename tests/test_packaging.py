"""Dependencies: the package asks for compatible ranges (not exact pins), the ranges admit the
locked set that CI installs, and every conda environment of the workflow pins what the lock pins."""

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_the_package_asks_for_ranges_not_pins():
    pinned = [str(r) for r in requirements() if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"exact pins in pyproject.toml (they belong in requirements/lock.txt): {pinned}"


def test_the_ranges_admit_the_locked_set():
    pins = locked()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not in requirements/lock.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"lock.txt's {name}=={pins[name]} is outside pyproject.toml's {requirement}"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_conda_environments_pin_the_locked_versions(env):
    pins = locked()
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip, f"{env.name}: no pip packages"
    for line in pip:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s]+)", line)
        assert match, f"{env.name}: '{line}' is not an exact pin"
        name = canonicalize_name(match[1])
        assert pins.get(name) == match[2], f"{env.name}: {name}=={match[2]}, but lock.txt has {pins.get(name)}"

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


# extras that CI never installs, so outside the locked (tested) set: the PhysicsNeMo benchmark's
UNLOCKED_EXTRAS = {"peer"}


def requirements(extras_outside_lock: bool = False) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [r for name, group in project["optional-dependencies"].items() for r in group
              if extras_outside_lock or name not in UNLOCKED_EXTRAS]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_the_package_asks_for_ranges_not_pins():
    pinned = [str(r) for r in requirements(extras_outside_lock=True) if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"exact pins in pyproject.toml (they belong in requirements/lock.txt): {pinned}"


def test_the_ranges_admit_the_locked_set():
    pins = locked()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not in requirements/lock.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"lock.txt's {name}=={pins[name]} is outside pyproject.toml's {requirement}"


def test_the_peer_extra_keeps_the_locked_torch():
    """pip must not swap the CPU torch build for another release when installing PhysicsNeMo: the
    extra holds torch to the locked release (a newer torchvision would want a newer, CUDA, torch)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch = next(Requirement(r) for r in project["optional-dependencies"]["peer"] if r.startswith("torch"))
    major, minor, _ = locked()["torch"].split(".", 2)
    assert torch.specifier.contains(locked()["torch"])
    assert not torch.specifier.contains(f"{major}.{int(minor) + 1}.0")


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

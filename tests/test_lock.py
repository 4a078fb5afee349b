"""The lock files hold every dependency of pyproject.toml, pinned with hashes: `make setup` and CI install
from them with --require-hashes, so a dependency added to pyproject.toml without `make lock` fails here
(with what to run) rather than on a fresh machine."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", item).group(0)) for item in requirements}


def locked(path: Path) -> dict[str, str]:
    """name -> the whole entry (the pin and its hashes) of a pip-compile lock file."""
    entries = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", entry)
        if match:
            entries[normalize(match.group(1))] = entry
    return entries


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        ("requirements.lock", PROJECT["dependencies"]),
        ("requirements-dev.lock", PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]),
    ],
)
def test_every_dependency_is_locked_with_hashes(lock, requirements):
    entries = locked(ROOT / lock)
    missing = requirement_names(requirements) - set(entries)
    assert not missing, f"{lock} lacks {sorted(missing)}: run `make lock`"
    unhashed = [name for name, entry in entries.items() if "--hash=sha256:" not in entry]
    assert not unhashed, f"{lock}: no hash for {unhashed}: run `make lock`"

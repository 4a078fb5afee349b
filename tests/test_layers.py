"""The layers of DESIGN.md hold: `lint-imports` checks the contracts in pyproject.toml (apps import only
from the apps below them, no app imports the roof of imageconsole/, no import cycles inside a package)."""

import subprocess
import sys
import tomllib
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_every_app_of_the_project_is_under_the_contracts():
    # An app added to INSTALLED_APPS but not to root_packages would escape every contract.
    # The virtualenv may live inside the checkout (`make` puts it in .venv): its packages are not ours.
    environment = Path(sys.prefix).resolve()
    ours = {
        config.name.split(".")[0]
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(ROOT)
        and not Path(config.path).resolve().is_relative_to(environment)
    }
    config = _config()
    assert ours <= set(config["root_packages"]), "add the app to [tool.importlinter] root_packages"
    layered = {
        name.strip()
        for contract in config["contracts"]
        if contract["type"] == "layers"
        for layer in contract["layers"]
        for name in layer.split("|")
    }
    assert ours - {"imageconsole"} <= layered, "give the app its place in the layers contract"


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr

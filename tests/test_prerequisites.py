"""scripts/prerequisites.sh, the system-package check that `make run`, `make test` and `.ci/run` share.

Each tool is hidden in turn: the script runs with a PATH of spies (small wrappers that log their call and
run the real tool) holding every other tool, so the test sees both what it says and everything it ran.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "prerequisites.sh"
ENTRY = re.compile(r'^  "(?P<package>[a-z0-9.+-]+) (?P<probe>\S+)"$', re.M)
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Probes the script may run while it only looks; anything else it starts is a failure.
LOOKING = {"python3 -c import ensurepip", "pkg-config --exists libvirt"}


def _entries(target):
    text = SCRIPT.read_text()
    run = text[text.index("run_packages=(") : text.index("test_packages=(")]
    test = text[text.index("test_packages=(") : text.index("present()")]
    entries = [m.groupdict() for m in ENTRY.finditer(run)]
    if target == "test":
        entries += [m.groupdict() for m in ENTRY.finditer(test)]
    return entries


def _real(tool):
    if tool == "python3" and os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"  # not a pyenv shim, which needs pyenv on PATH
    return shutil.which(tool) or next(
        (f"{d}/{tool}" for d in SBIN if os.access(f"{d}/{tool}", os.X_OK)), None
    )


def _spy(bin_dir: Path, tool: str, log: Path) -> None:
    real = _real(tool)
    if real is None:
        return  # not on this machine: the script reports it as well, which the assertions allow
    wrapper = bin_dir / tool
    wrapper.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)


def _environment(tmp_path: Path, hidden: dict | None):
    """A PATH of spies for every probed tool but the hidden entry's, a firmware root, a pkg-config path."""
    bin_dir, fake_root, log = tmp_path / "bin", tmp_path / "root", tmp_path / "calls.log"
    bin_dir.mkdir()
    log.touch()
    # Tools the script and make themselves run; never hidden, not spied.
    for tool in ("bash", "make", "sh", "env", "mktemp", "tail", "rm", "id"):
        if _real(tool):
            (bin_dir / tool).symlink_to(_real(tool))
    hidden_tool = hidden["probe"].split(":", 1)[-1] if hidden else None
    tools = {"apt-get", "sudo", "npm", "node", "redis-server", "python3"}  # + every probed command
    for entry in _entries("test"):
        kind, _sep, what = entry["probe"].partition(":")
        if kind in ("cmd", "sbin"):
            tools.add(what)
        elif kind == "chromium":
            tools.add("chromium")
        elif kind == "pkgconfig":
            tools.add("pkg-config")
    if hidden and hidden["probe"].startswith("python:"):
        hidden_tool = "python3"  # python3-venv is missing when python3 cannot create a venv
    if hidden and hidden["probe"] == "chromium":
        hidden_tool = "chromium"
    for tool in sorted(tools - {hidden_tool}):
        _spy(bin_dir, tool, log)
    fake_root.mkdir()
    for entry in _entries("test"):
        if entry["probe"].startswith("file:") and entry != hidden:
            for path in entry["probe"].removeprefix("file:").split("|"):
                if os.path.exists(path):
                    (fake_root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                    (fake_root / path.lstrip("/")).symlink_to(path)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "PREREQUISITES_SBIN": "",
        "PREREQUISITES_ROOT": str(fake_root),
        "PREREQUISITES_CHECK": "1",  # the tests run as root: never let make's call install anything
    }
    if hidden and hidden["probe"].startswith("pkgconfig:"):
        empty = tmp_path / "no-pkgconfig"
        empty.mkdir()
        env["PKG_CONFIG_LIBDIR"] = str(empty)
    return env, log


def _calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line]


def test_the_script_lists_every_package_the_targets_need():
    run = {e["package"] for e in _entries("run")}
    test = {e["package"] for e in _entries("test")}
    assert {"python3-venv", "redis-server", "qemu-utils", "nodejs", "npm", "gettext"} <= run
    assert {"libvirt-daemon-system", "qemu-system-x86", "ovmf", "libvirt-dev", "pkg-config"} <= run
    assert {"chromium", "curl", "wget", "aria2", "nginx", "openssh-server", "xz-utils", "zstd"} <= test - run
    assert {"bzip2", "gzip"} <= test
    assert run < test


def test_the_readme_install_lines_name_exactly_the_scripts_packages():
    """The README's lines for installing by hand are the script's lists, the run line first."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("**Prerequisites**") :]
    block = block[block.index("```sh") + 5 : block.index("```", block.index("```sh") + 5)]
    lines = block.replace("\\\n", " ").strip().splitlines()
    named = [set(line.split("apt-get install", 1)[1].split()) for line in lines]
    run = {e["package"] for e in _entries("run")}
    assert named[0] == run
    assert named[1] == {e["package"] for e in _entries("test")} - run


@pytest.mark.parametrize("entry", _entries("test"), ids=lambda e: e["package"])
def test_a_hidden_tool_is_named_and_nothing_starts(tmp_path, entry):
    env, log = _environment(tmp_path, entry)
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), "test", "--check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    missing = lines[0].split(": ", 1)[1].split(". Install them with: ")[0].split()
    assert entry["package"] in missing
    assert f"apt-get install -y {' '.join(missing)}" in lines[0]
    assert set(_calls(log)) <= LOOKING, "the check started something"


def _fake_apt(tmp_path: Path, log: Path) -> None:
    """apt-get and sudo that only log their call: the install path without touching this machine."""
    for tool in ("apt-get", "sudo"):
        fake = tmp_path / "bin" / tool
        fake.unlink(missing_ok=True)
        fake.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n')
        fake.chmod(0o755)


needs_root_debian = pytest.mark.skipif(
    os.geteuid() != 0 or "debian" not in Path("/etc/os-release").read_text().lower(),
    reason="the install path runs as root on Debian or Ubuntu",
)


@needs_root_debian
def test_everything_present_means_silence_and_no_apt(tmp_path):
    env, log = _environment(tmp_path, None)
    check = subprocess.run(
        ["/bin/bash", str(SCRIPT), "test", "--check"], env=env, capture_output=True, text=True
    )
    if check.returncode:
        pytest.skip(f"this machine lacks some packages: {check.stderr}")
    _fake_apt(tmp_path, log)
    del env["PREREQUISITES_CHECK"]
    started = time.monotonic()
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), "test"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert set(_calls(log)) <= LOOKING, "apt-get or something else was called although nothing is missing"
    assert time.monotonic() - started < 5


@needs_root_debian
def test_as_root_the_missing_packages_are_installed_with_one_update(tmp_path):
    entry = next(e for e in _entries("run") if e["package"] == "qemu-utils")
    env, log = _environment(tmp_path, entry)
    _fake_apt(tmp_path, log)
    del env["PREREQUISITES_CHECK"]
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=60
    )
    apt = [call for call in _calls(log) if call.startswith("apt-get")]
    assert apt == [
        "apt-get -o DPkg::Lock::Timeout=600 update -qq",
        "apt-get -o DPkg::Lock::Timeout=600 install -y -qq qemu-utils",
    ]
    assert not [call for call in _calls(log) if call.startswith("sudo")]
    # The fake apt-get installed nothing: the script says so instead of going on.
    assert result.returncode == 1 and "Still missing after apt-get install: qemu-utils" in result.stderr


@pytest.mark.parametrize("target", ["run", "test"])
def test_make_stops_before_anything_else_when_qemu_img_is_missing(tmp_path, target):
    entry = next(e for e in _entries("run") if e["package"] == "qemu-utils")
    env, log = _environment(tmp_path, entry)
    venv = tmp_path / "venv"
    # A VENV that does not exist: if make went on, it would run `python3 -m venv` (a spy) at once.
    result = subprocess.run(
        [shutil.which("make"), "-C", str(REPO), target, f"VENV={venv}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "qemu-utils" in result.stderr
    assert "apt-get install -y" in result.stderr
    assert not venv.exists()
    assert set(_calls(log)) <= LOOKING, "make started something before the prerequisites were there"


def test_a_tool_that_is_there_but_not_executable_counts_as_missing(tmp_path):
    entry = next(e for e in _entries("run") if e["package"] == "qemu-utils")
    env, log = _environment(tmp_path, entry)
    stub = tmp_path / "bin" / "qemu-img"
    stub.write_text("not a program\n")
    stub.chmod(0o644)
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), "run", "--check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "qemu-utils" in result.stderr

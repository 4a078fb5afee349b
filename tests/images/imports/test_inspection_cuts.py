"""The stream inspector's verdict does not depend on how the stream is cut.

Every good and every hostile file of the import tests goes through `StreamInspector` in pieces of 512 B,
64 KiB, 1, 4 and 16 MiB, in one piece, and cut at random points; each must get the same verdict, and
the good ones the right one. (A VHDX read in 4 MiB blocks used to have "no VHDX header".)
"""

import random
import tarfile
from pathlib import Path

import pytest

from images.inspection import ImportRefused, StreamInspector

from .conftest import Disks, make_iso, qemu_img
from .test_hostile import make_luks

MiB = 1024 * 1024
CUTS = [512, 64 * 1024, MiB, 4 * MiB, 16 * MiB]


def _good(disks: Disks) -> list[tuple[str, Path, str, str]]:
    """(name, path, claimed format, format the inspector must find)."""
    raw = disks.raw(size=6 * MiB)
    files = [
        ("raw", raw, "raw", "raw"),
        ("qcow2", disks.convert(raw, "qcow2"), "qcow2", "qcow2"),
        ("qcow2 v2", disks.convert(raw, "qcow2", "v2.qcow2", "-o", "compat=0.10"), "qcow2", "qcow2"),
        ("qcow2 compressed", disks.convert(raw, "qcow2", "c.qcow2", "-c"), "qcow2", "qcow2"),
        ("vmdk sparse", disks.convert(raw, "vmdk"), "vmdk", "vmdk"),
        (
            "vmdk stream",
            disks.convert(raw, "vmdk", "s.vmdk", "-o", "subformat=streamOptimized"),
            "vmdk",
            "vmdk",
        ),
        ("vhd dynamic", disks.convert(raw, "vhd"), "vhd", "vhd"),
        ("vhd fixed", disks.convert(raw, "vhd", "f.vhd", "-o", "subformat=fixed"), "vhd", "vhd"),
        ("vhdx dynamic", disks.convert(raw, "vhdx"), "vhdx", "vhdx"),
        ("vhdx 4M blocks", disks.convert(raw, "vhdx", "b4.vhdx", "-o", "block_size=4M"), "vhdx", "vhdx"),
        ("vhdx 32M blocks", disks.convert(raw, "vhdx", "b32.vhdx", "-o", "block_size=32M"), "vhdx", "vhdx"),
        ("vhdx fixed", disks.convert(raw, "vhdx", "f.vhdx", "-o", "subformat=fixed"), "vhdx", "vhdx"),
        ("iso", make_iso(disks.root / "cd.iso"), "iso", "iso"),
    ]
    luks = disks.root / "volume.luks"
    make_luks(
        "create",
        "-f",
        "luks",
        "--object",
        "secret,id=s0,data=pw",
        "-o",
        "key-secret=s0,iter-time=10",
        str(luks),
        "2M",
    )
    files.append(("luks", luks, "raw", "luks"))
    return files


def _hostile(disks: Disks) -> list[tuple[str, Path, str]]:
    """(name, path, claimed format): the files test_hostile.py sends, and a few more."""
    root = disks.root
    backed = root / "backed.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(backed), "1M")
    external = root / "external.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={root / 'data.raw'}", str(external), "4M")
    flat = root / "flat.vmdk"
    flat.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\nRW 2048 FLAT "/etc/shadow" 0\n\nddb.virtualHWVersion = "4"\n'
    )
    noise = root / "noise.bin"
    noise.write_bytes(random.Random(9).randbytes(3 * MiB))
    full = root / "full.raw"
    full.write_bytes(random.Random(5).randbytes(8 * MiB))
    qcow2, vmdk, vhdx = (disks.convert(full, fmt) for fmt in ("qcow2", "vmdk", "vhdx"))
    truncated = {}
    for fmt, path, keep in (("qcow2", qcow2, 4 * MiB), ("vmdk", vmdk, 3 * MiB), ("vhdx", vhdx, 3 * MiB)):
        truncated[fmt] = root / f"truncated.{fmt}"
        truncated[fmt].write_bytes(path.read_bytes()[:keep])
    qed = root / "old.qed"
    qemu_img("create", "-f", "qed", str(qed), "4M")
    vdi = root / "old.vdi"
    qemu_img("create", "-f", "vdi", str(vdi), "4M")
    huge = root / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", str(huge), "30G")
    # A qcow2 header followed by an ISO's volume descriptor: two formats at once.
    polyglot = root / "polyglot.iso"
    polyglot.write_bytes(qcow2.read_bytes()[: 32 * 1024] + make_iso(root / "p.iso").read_bytes()[32 * 1024 :])
    ova = root / "evil.ova"
    with tarfile.open(ova, "w") as archive:
        archive.add(str(qcow2), arcname="../../disk.qcow2")
    return [
        ("qcow2 with a backing file", backed, "qcow2"),
        ("qcow2 with a data file", external, "qcow2"),
        ("vmdk with a flat extent", flat, "vmdk"),
        ("qcow2 claimed raw", qcow2, "raw"),
        ("vmdk claimed qcow2", vmdk, "qcow2"),
        ("vhdx claimed vhd", vhdx, "vhd"),
        *[(f"noise claimed {fmt}", noise, fmt) for fmt in ("qcow2", "vmdk", "vhd", "vhdx", "iso")],
        *[(f"truncated {fmt}", path, fmt) for fmt, path in truncated.items()],
        ("qed", qed, "qcow2"),
        ("vdi", vdi, "raw"),
        ("huge qcow2", huge, "qcow2"),
        ("qcow2 and iso", polyglot, "iso"),
        ("tar claimed vmdk", ova, "vmdk"),
    ]


def _pieces(data: bytes, cut) -> list[bytes]:
    if isinstance(cut, int):
        return [data[offset : offset + cut] for offset in range(0, len(data), cut)]
    rnd = random.Random(cut)
    pieces, offset = [], 0
    while offset < len(data):
        size = rnd.choice([1, 7, 511, 4096, 65537, MiB - 1, 3 * MiB + 5, rnd.randrange(1, 9 * MiB)])
        pieces.append(data[offset : offset + size])
        offset += size
    return pieces


def verdict(data: bytes, claimed: str, cut):
    inspector = StreamInspector(claimed)
    try:
        for piece in _pieces(data, cut):
            inspector.feed(piece)
        found = inspector.finish()
    except ImportRefused as refused:
        return ("refused", refused.code, refused.message)
    return ("accepted", found.format, found.virtual_size, found.encrypted)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    disks = Disks(tmp_path_factory.mktemp("corpus"))
    return _good(disks), _hostile(disks)


# Files the stream inspector passes and a later step refuses (test_hostile.py shows each refused).
REFUSED_LATER = {
    "huge qcow2": "the virtual size is compared with the target size",
    "truncated qcow2": "the qcow2 layout check reads the tables the file lacks",
    "truncated vmdk": "qemu-img check, before conversion",
}
ALL_CUTS = [*CUTS, "whole", "random-1", "random-2", "random-3"]


def _verdicts(path: Path, claimed: str) -> dict:
    data = path.read_bytes()
    return {cut: verdict(data, claimed, (len(data) or 1) if cut == "whole" else cut) for cut in ALL_CUTS}


def test_good_files_get_the_right_verdict_however_they_are_cut(corpus):
    good, _hostile_files = corpus
    wrong = {}
    for name, path, claimed, expected in good:
        verdicts = _verdicts(path, claimed)
        for cut, found in verdicts.items():
            if found[:2] != ("accepted", expected) or found != verdicts[512]:
                wrong[(name, cut)] = found
    assert not wrong


def test_hostile_files_get_the_same_refusal_however_they_are_cut(corpus):
    _good_files, hostile = corpus
    differing, accepted = {}, []
    for name, path, claimed in hostile:
        verdicts = _verdicts(path, claimed)
        if len(set(verdicts.values())) != 1:
            differing[name] = verdicts
        if name not in REFUSED_LATER and verdicts[512][0] != "refused":
            accepted.append((name, verdicts[512]))
    assert not differing
    assert not accepted


def test_the_same_bytes_in_random_cuts(corpus):
    """Many random cuttings of the files whose formats locate their metadata through a chain."""
    good, _hostile_files = corpus
    for name, path, claimed, _expected in good:
        if not name.startswith("vhdx"):
            continue
        data = path.read_bytes()
        reference = verdict(data, claimed, 512)
        for seed in range(10, 20):
            assert verdict(data, claimed, f"seed-{seed}") == reference, (name, seed)

"""Refusals of an imported file say what is wrong and what to do, for the file that was sent: a header cut
short is not "no header", a VMDK split over files is told so, a bad partition table says what to check."""

import subprocess

import pytest

from images.inspection import ImportRefused, StreamInspector

from .conftest import MiB


def inspect(path, claimed):
    inspector = StreamInspector(claimed)
    with open(path, "rb") as stream:
        while block := stream.read(MiB):
            inspector.feed(block)
    return inspector.finish()


def refusal(path, claimed) -> str:
    with pytest.raises(ImportRefused) as refused:
        inspect(path, claimed)
    return str(refused.value).replace("\xa0", " ")


@pytest.mark.parametrize(("fmt", "keep"), [("qcow2", 100), ("vmdk", 4096), ("vhdx", 4096)])
def test_a_file_cut_inside_its_header_is_told_it_was_cut_short(disks, fmt, keep):
    whole = disks.convert(disks.raw(size=2 * MiB), fmt)
    cut = whole.with_name(f"cut.{fmt}")
    cut.write_bytes(whole.read_bytes()[:keep])
    message = refusal(cut, fmt)
    assert "cut short" in message and "Send the whole file again" in message
    assert "no " not in message.split(":")[0]  # not "it has no ... header"


def test_raw_data_claimed_as_qcow2_still_says_it_has_no_header(disks):
    assert "it has no qcow2 header" in refusal(disks.raw(size=MiB), "qcow2")


def test_a_vmdk_split_over_files_is_told_its_subformat_and_how_to_convert(disks, tmp_path):
    descriptor = tmp_path / "flat.vmdk"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(descriptor), "4M"],
        check=True,
    )
    message = refusal(descriptor, "vmdk")
    assert "subformat monolithicflat" in message
    assert "qemu-img convert -O vmdk -o subformat=streamOptimized" in message
    # A monolithicSparse VMDK passes; no message asks for one from someone who sent one.
    sparse = disks.convert(disks.raw(size=2 * MiB), "vmdk", "sparse.vmdk", "-o", "subformat=monolithicSparse")
    assert inspect(sparse, "vmdk").format == "vmdk"


def test_a_broken_partition_table_says_what_to_check(tmp_path):
    disk = bytearray(MiB)
    disk[446] = 0x42  # a boot flag that is neither 0x00 nor 0x80
    disk[450] = 0x83
    disk[510:512] = b"\x55\xaa"
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(disk))
    message = refusal(path, "raw")
    assert (
        "partition table (MBR) is not valid" in message and "Check that you chose the right file" in message
    )


def test_a_monolithic_sparse_vmdk_with_a_descriptor_it_cannot_check_is_not_asked_for_one(disks):
    """A monolithicSparse VMDK whose embedded descriptor holds a line the inspector does not know is told
    that, and how to rewrite it; not that only monolithicSparse or streamOptimized VMDKs are accepted."""
    sparse = disks.convert(disks.raw(size=2 * MiB), "vmdk", "odd.vmdk", "-o", "subformat=monolithicSparse")
    data = sparse.read_bytes()
    assert b"# Extent description" in data
    sparse.write_bytes(data.replace(b"# Extent description", b"vendor line, unknown"))
    message = refusal(sparse, "vmdk")
    assert "descriptor cannot be checked" in message and "holds lines this console does not know" in message
    assert "subformat=streamOptimized" in message
    assert "monolithicSparse" not in message


def test_staging_sizes_that_round_alike_are_told_apart(standalone, start_import, settings, monkeypatch):
    """The staging area lacks 4,304 bytes: "has 4.0 MB free and the file needs 4.0 MB" would say nothing.
    The exact counts are words, so a message kept for later is worded again in its reader's language."""
    import shutil
    from collections import namedtuple

    from django.core.exceptions import ValidationError
    from django.utils import translation

    from imageconsole.core.words import render_words, words_of
    from images.services import upload_begin

    real = shutil.disk_usage
    usage = namedtuple("usage", "total used free")

    def disk_usage(path):
        if str(path).startswith(str(settings.STAGING_ROOT)):
            return usage(10 * MiB, 10 * MiB - 4_190_000, 4_190_000)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    image = start_import(standalone, "vmdk")  # converted, so staged first
    with pytest.raises(ValidationError) as refused:
        upload_begin(image_id=image.pk, length=4_194_304)
    message = refused.value.messages[0]
    assert "has 4,190,000 bytes free and the file needs 4,194,304 bytes" in message
    with translation.override("zh-hans"):
        worded = render_words(words_of(refused.value.message))
    assert "4,190,000 字节" in worded and "bytes" not in worded

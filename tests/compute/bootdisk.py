"""A tiny bootable x86_64 disk built from Debian packages, for boot tests: the host's kernel
(linux-image-amd64), a busybox-static initramfs and SYSLINUX on a FAT partition of a raw disk.

Its init loads the drivers for a SATA CD-ROM and a virtio disk, mounts the filesystem labelled
`cidata` (the NoCloud seed), and prints to the serial console

    IMAGECONSOLE-BOOT-OK hostname=<hostname from user-data> hash=<password hash from user-data>

or `IMAGECONSOLE-NO-SEED` when no seed was found. The BIOS boots it from the disk (MBR, then SYSLINUX):
the VM must boot from its disk, not from a kernel handed to QEMU. UEFI firmware (OVMF) finds no boot
loader of its own there and starts its UEFI shell, which runs the partition's `startup.nsh`: that starts
the kernel through its EFI stub with the same command line, so the one disk boots under BIOS and UEFI.

Built with `acpi=True`, the guest reacts to the ACPI power button as a system with acpid would: its
init loads the `button` driver, prints `IMAGECONSOLE-ACPI-READY` once it listens to the power button's
input device, and on a press prints `IMAGECONSOLE-ACPI-POWER-BUTTON` and powers off (which libvirt's
ACPI reboot turns into a reset). Without it the guest ignores the button, like a system without acpid.
"""

import gzip
import io
import os
import shutil
import subprocess
from pathlib import Path

BOOT_MARKER = "IMAGECONSOLE-BOOT-OK"
NO_SEED_MARKER = "IMAGECONSOLE-NO-SEED"
ACPI_READY_MARKER = "IMAGECONSOLE-ACPI-READY"
ACPI_BUTTON_MARKER = "IMAGECONSOLE-ACPI-POWER-BUTTON"
MODULES = ["ahci", "ata_piix", "sr_mod", "isofs", "virtio_pci", "virtio_blk", "button", "evdev"]
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
PARTITION_START = 2048  # sectors
DISK_MIB = 48

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "IMAGECONSOLE-INIT $(uname -r)" > /dev/console
for module in $(cat /modules.order); do insmod "/lib/modules/$module" 2>/dev/null; done
if grep -q ic_acpi=1 /proc/cmdline; then
  (
    event=""
    for attempt in $(seq 1 50); do
      for input in /sys/class/input/event*; do
        if [ "$(cat "$input/device/name" 2>/dev/null)" = "Power Button" ]; then
          event="/dev/input/${input##*/}"; break 2
        fi
      done
      sleep 0.2
    done
    if [ -n "$event" ]; then
      echo "ACPI_READY_MARKER" > /dev/console
      dd if="$event" of=/dev/null bs=24 count=1 2>/dev/null
      echo "ACPI_BUTTON_MARKER" > /dev/console
      poweroff -f
    fi
  ) &
fi
found=""
for attempt in $(seq 1 60); do
  for device in /dev/sr0 /dev/sr1 /dev/vdb /dev/vdc /dev/sdb /dev/sdc; do
    [ -b "$device" ] || continue
    if mount -t iso9660 -o ro "$device" /mnt 2>/dev/null; then
      if [ -f /mnt/user-data ]; then found="$device"; break 2; fi
      umount /mnt
    fi
  done
  sleep 0.5
done
if [ -n "$found" ]; then
  host=$(sed -n 's/^hostname: *//p' /mnt/user-data | head -n 1)
  hash=$(sed -n 's/^ *password: *//p' /mnt/user-data | head -n 1)
  echo "BOOT_MARKER hostname=$host hash=$hash" > /dev/console
else
  echo "NO_SEED_MARKER" > /dev/console
fi
while true; do sleep 3600; done
""".replace("BOOT_MARKER", BOOT_MARKER).replace("NO_SEED_MARKER", NO_SEED_MARKER)
INIT = INIT.replace("ACPI_READY_MARKER", ACPI_READY_MARKER).replace("ACPI_BUTTON_MARKER", ACPI_BUTTON_MARKER)


def kernel_version() -> str:
    versions = sorted(p.name[len("vmlinuz-") :] for p in Path("/boot").glob("vmlinuz-*"))
    if not versions:
        raise RuntimeError("No kernel in /boot: apt-get install linux-image-amd64")
    return versions[-1]


def _module_order(version: str) -> list[str]:
    """The modules to load and their dependencies, each after what it needs (paths under kernel/)."""
    root = Path("/lib/modules") / version
    deps = {}
    for line in (root / "modules.dep").read_text().splitlines():
        path, _sep, rest = line.partition(":")
        deps[Path(path).name.removesuffix(".ko")] = (path, rest.split())
    order: list[str] = []

    def add(path: str) -> None:
        name = Path(path).name.removesuffix(".ko")
        for dep in reversed(deps[name][1]):
            add(dep)
        if path not in order:
            order.append(path)

    for module in MODULES:
        add(deps[module][0])
    return order


def _cpio(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A newc cpio archive: {path: (data, mode)}; directories have data None."""
    out = io.BytesIO()
    ino = 1

    def entry(name: str, data: bytes, mode: int) -> None:
        nonlocal ino
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        )
        ino += 1
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for name, (data, mode) in files.items():
        entry(name, data or b"", mode)
    entry("TRAILER!!!", b"", 0)
    return out.getvalue()


def _initramfs(version: str) -> bytes:
    order = _module_order(version)
    files: dict[str, tuple[bytes, int]] = {}
    for directory in ("bin", "lib", "lib/modules", "proc", "sys", "dev", "mnt", "tmp"):
        files[directory] = (b"", 0o040755)
    files["bin/busybox"] = (Path("/bin/busybox").read_bytes(), 0o100755)
    for path in order:
        files[f"lib/modules/{Path(path).name}"] = (
            (Path("/lib/modules") / version / path).read_bytes(),
            0o100644,
        )
    files["modules.order"] = ("\n".join(Path(p).name for p in order).encode() + b"\n", 0o100644)
    files["init"] = (INIT.encode(), 0o100755)
    return gzip.compress(_cpio(files), compresslevel=6)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def build_boot_disk(directory: Path, *, acpi: bool = False) -> Path:
    """Write `boot.raw` (`boot-acpi.raw` with acpi) into `directory` (once) and return its path."""
    target = directory / ("boot-acpi.raw" if acpi else "boot.raw")
    if target.exists():
        return target
    for tool in ("syslinux", "mcopy", "mkfs.vfat", "sfdisk"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install syslinux mtools dosfstools fdisk")
    version = kernel_version()
    work = directory / f"build-{target.stem}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "initrd.gz").write_bytes(_initramfs(version))
    shutil.copyfile(f"/boot/vmlinuz-{version}", work / "vmlinuz")
    cmdline = "console=ttyS0,115200 quiet panic=-1" + (" ic_acpi=1" if acpi else "")
    (work / "syslinux.cfg").write_text(
        "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n"
        f"  APPEND initrd=initrd.gz {cmdline}\n"
    )
    # UEFI: the shell runs this from the first filesystem; the kernel's EFI stub loads the initrd.
    (work / "startup.nsh").write_text(f"fs0:\r\n\\vmlinuz initrd=\\initrd.gz {cmdline}\r\n")
    disk = work / target.name
    with open(disk, "wb") as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", str(disk)],
        input=f"label: dos\nstart={PARTITION_START}, type=c, bootable\n",
        text=True,
        check=True,
        capture_output=True,
    )
    offset = PARTITION_START * 512
    blocks_kib = (DISK_MIB * 1024 * 1024 - offset) // 1024
    _run("mkfs.vfat", "-n", "BOOT", "--offset", str(PARTITION_START), str(disk), str(blocks_kib))
    _run("syslinux", "--offset", str(offset), "--install", str(disk))
    image = f"{disk}@@{offset}"
    for name in ("vmlinuz", "initrd.gz", "syslinux.cfg", "startup.nsh"):
        _run("mcopy", "-i", image, str(work / name), f"::{name}")
    mbr = MBR.read_bytes()[:440]
    with open(disk, "r+b") as f:
        f.write(mbr)
    os.replace(disk, target)
    shutil.rmtree(work, ignore_errors=True)
    return target

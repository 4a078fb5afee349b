#!/usr/bin/env bash
# The system packages `make run` and `make test` need (and `.ci/run`, through `make test`).
#
#   scripts/prerequisites.sh run|test [--check]
#
# Checks every tool the target needs. When some are missing and this runs as root on Debian or Ubuntu
# (and without --check), installs them with apt-get (one `apt-get update` first). Otherwise prints one
# line naming the missing packages and the command that installs them, and exits 1 before anything else
# starts. When everything is present it runs no apt command at all.
#
# PREREQUISITES_CHECK=1 is --check for every call (make's too): never install, only report.
# Only bash builtins are used to look, so a PATH without a tool shows that tool as missing.
# PREREQUISITES_SBIN: directories searched after PATH for daemons (non-root PATHs often lack /usr/sbin).
# PREREQUISITES_ROOT: prefix of the data files looked for (the OVMF firmware); tests point it elsewhere.
set -uo pipefail

target="${1:-}"
mode="${2:-install}"
case "$target" in run | test) ;; *)
  echo "usage: $0 run|test [--check]" >&2
  exit 2
  ;;
esac
case "$mode" in install | --check) ;; *)
  echo "usage: $0 run|test [--check]" >&2
  exit 2
  ;;
esac
[ "${PREREQUISITES_CHECK:-0}" = 1 ] && mode=--check

sbin_dirs="${PREREQUISITES_SBIN-/usr/local/sbin:/usr/sbin:/sbin}"
root="${PREREQUISITES_ROOT-}"

# package, then how to tell it is installed: cmd:NAME (on PATH), sbin:NAME (on PATH or in the sbin
# directories), file:PATH[|PATH...] (one of them exists), pkgconfig:MODULE, python:MODULE (python3 has it).
run_packages=(
  "python3-venv python:ensurepip"
  "redis-server cmd:redis-server"
  "qemu-utils cmd:qemu-img"
  "nodejs cmd:node"
  "npm cmd:npm"
  "gettext cmd:msgfmt"
  "libvirt-daemon-system sbin:libvirtd"
  "qemu-system-x86 cmd:qemu-system-x86_64"
  "ovmf file:/usr/share/OVMF/OVMF_CODE_4M.fd|/usr/share/OVMF/OVMF_CODE.fd"
  "pkg-config cmd:pkg-config"
  "libvirt-dev pkgconfig:libvirt"
  "gnupg cmd:gpg"
  "openssh-client cmd:ssh"
)
test_packages=(
  "chromium chromium"
  "fonts-wqy-microhei file:/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
  "curl cmd:curl"
  "wget cmd:wget"
  "aria2 cmd:aria2c"
  "nginx sbin:nginx"
  "openssh-server sbin:sshd"
  "b3sum cmd:b3sum"
  "iproute2 sbin:ip"
  "xz-utils cmd:xz"
  "zstd cmd:zstd"
  "bzip2 cmd:bzip2"
  "gzip cmd:gzip"
  "openssl cmd:openssl"
  "syslinux cmd:syslinux"
  "mtools cmd:mcopy"
  "dosfstools sbin:mkfs.vfat"
  "fdisk sbin:sfdisk"
  "busybox-static file:/bin/busybox|/usr/bin/busybox"
  "linux-image-amd64 file:/vmlinuz|/boot/vmlinuz"
)

# `command -v` also names a file that is not executable when nothing better is on PATH: check it is one.
executable() {
  local path
  path="$(type -P "$1" 2>/dev/null)" && [ -f "$path" ] && [ -x "$path" ]
}

present() {
  local probe="$1" kind="${1%%:*}" what="${1#*:}" dir path
  case "$kind" in
    cmd) executable "$what" ;;
    sbin)
      executable "$what" && return 0
      IFS=: read -ra dirs <<<"$sbin_dirs"
      for dir in "${dirs[@]}"; do [ -n "$dir" ] && [ -f "$dir/$what" ] && [ -x "$dir/$what" ] && return 0; done
      return 1
      ;;
    file)
      IFS='|' read -ra paths <<<"$what"
      for path in "${paths[@]}"; do [ -e "$root$path" ] && return 0; done
      return 1
      ;;
    pkgconfig) executable pkg-config && pkg-config --exists "$what" 2>/dev/null ;;
    python) executable python3 && python3 -c "import $what" 2>/dev/null ;;
    chromium)
      # The suite drives CHROMIUM_PATH when set, else chromium from PATH (tests/conftest.py).
      if [ -n "${CHROMIUM_PATH:-}" ]; then [ -x "$CHROMIUM_PATH" ]; else executable chromium; fi
      ;;
    *)
      echo "prerequisites.sh: unknown probe $probe" >&2
      return 1
      ;;
  esac
}

missing_packages() {
  local entry
  local -a wanted=("${run_packages[@]}")
  [ "$target" = test ] && wanted+=("${test_packages[@]}")
  for entry in "${wanted[@]}"; do
    present "${entry#* }" || printf '%s ' "${entry%% *}"
  done
}

missing="$(missing_packages)"
missing="${missing% }"
[ -z "$missing" ] && exit 0

debian_like() {
  local line id=""
  [ -r /etc/os-release ] || return 1
  while IFS= read -r line; do
    case "$line" in ID=* | ID_LIKE=*) id="$id ${line#*=}" ;; esac
  done </etc/os-release
  case "$id" in *debian* | *ubuntu*) executable apt-get ;; *) return 1 ;; esac
}

if [ "$mode" = install ] && [ "${EUID:-$(id -u)}" -eq 0 ] && debian_like; then
  echo "Installing the system packages \`make $target\` needs: $missing"
  export DEBIAN_FRONTEND=noninteractive
  wait_for_lock=(-o DPkg::Lock::Timeout=600) # another apt-get may be running (CI images, other shells)
  log="$(mktemp "${TMPDIR:-/tmp}/imageconsole-apt.XXXXXX")"
  # shellcheck disable=SC2086 # one word per package
  if apt-get "${wait_for_lock[@]}" update -qq >"$log" 2>&1 &&
    apt-get "${wait_for_lock[@]}" install -y -qq $missing >>"$log" 2>&1; then
    rm -f "$log"
    still="$(missing_packages)"
    still="${still% }"
    [ -z "$still" ] && exit 0
    echo "Still missing after apt-get install: $still" >&2
  else
    tail -n 20 "$log" >&2
    echo "apt-get failed; its whole output is in $log" >&2
  fi
  exit 1
fi

sudo=""
[ "${EUID:-0}" -eq 0 ] || sudo="sudo "
echo "Missing system packages for \`make $target\`: $missing. Install them with: ${sudo}apt-get update && ${sudo}apt-get install -y $missing" >&2
exit 1

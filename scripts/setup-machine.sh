#!/usr/bin/env bash
# Prepare a Debian 12 machine and the project virtualenv for perfcheck.
#
# Idempotent: every step first checks the machine (dpkg-query, mountpoint, test -e) and
# only changes what is missing, so a second run changes nothing and takes about a second.
# Machine-level changes need root; as another user the script only reports what is missing.
#
#   1. Debian packages (bcc, fio, network tools, chromium, ...), apt-get update only when needed
#   2. kernel headers under /lib/modules/$(uname -r)/build, which bcc needs to compile probes
#   3. debugfs and tracefs mounts, where bcc and perfcheck find tracepoints
#   4. .venv from /usr/bin/python3 with --system-site-packages (bcc comes from Debian, not PyPI),
#      with the project installed editable; reinstalled only when pyproject.toml changes
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

# Debian's python3, the only interpreter that can import python3-bpfcc's bcc module.
SYSTEM_PYTHON=/usr/bin/python3
VENV_DIR=.venv
STAMP_DIR=.stamps
# Holds the sha256 of pyproject.toml the venv was last installed from.
PIP_STAMP=$STAMP_DIR/venv-installed-from-pyproject.sha256

PACKAGES=(
  python3-bpfcc # bcc's Python module: not on PyPI
  bpfcc-tools   # bcc's tools, handy next to perfcheck
  python3-venv
  fio
  gcc           # a test compiles a small C program
  iproute2      # ip netns for network scenarios
  util-linux    # losetup, blkid, wipefs for scratch loop devices
  bpftrace      # used by a benchmark
  sockperf
  iperf3
  stress-ng
  chromium      # renders the HTML report in tests
  postgresql    # the results store's PostgreSQL tests run a private server
  e2fsprogs     # mkfs.ext4 and dumpe2fs for ext4 filesystem targets
  sqlite3       # a real test runs sqlite3 on an ext4 filesystem target
)

DEBUGFS_DIR=/sys/kernel/debug
TRACEFS_DIR=/sys/kernel/tracing

KERNEL_RELEASE=$(uname -r)
MODULES_DIR=/lib/modules/$KERNEL_RELEASE

changes=()

say() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: %s\n' "$*" >&2
  exit 1
}
join_by_comma() {
  local joined
  printf -v joined '%s, ' "$@"
  printf '%s' "${joined%, }"
}

missing_packages() {
  # dpkg-query prints nothing for unknown packages; "ii" means installed and configured.
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null |
    awk '$2 == "ii" { print $1 }' || true)
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    grep -qxF -- "$pkg" <<<"$installed" || printf '%s\n' "$pkg"
  done
}

headers_present() { test -e "$MODULES_DIR/build/include"; }

apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

apt_has_package() { apt-cache show --no-all-versions "$1" >/dev/null 2>&1; }

package_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true) == ii* ]]
}

newest_dir() {
  # Newest of the directories matching a glob, by version order; empty when none match.
  compgen -G "$1" | sort -V | tail -n 1 || true
}

link_foreign_headers() {
  local arch=$1 build_dir common_dir version
  build_dir=$(newest_dir "/usr/src/linux-headers-*-cloud-$arch")
  [[ -n $build_dir ]] || die "no /usr/src/linux-headers-*-cloud-$arch after installing linux-headers-cloud-$arch"
  version=${build_dir#/usr/src/linux-headers-}
  version=${version%-cloud-"$arch"}
  common_dir=/usr/src/linux-headers-$version-common
  [[ -d $common_dir ]] || common_dir=$(newest_dir "/usr/src/linux-headers-*-common")
  mkdir -p "$MODULES_DIR"
  ln -sfn "$build_dir" "$MODULES_DIR/build"
  if [[ -n $common_dir ]]; then ln -sfn "$common_dir" "$MODULES_DIR/source"; fi
  changes+=("linked kernel headers ${build_dir#/usr/src/linux-headers-} for $KERNEL_RELEASE")
  say "kernel $KERNEL_RELEASE has no headers package; linked Debian's $version headers instead."
  say "  bcc tracepoint programs are safe with these: their argument layout comes from tracefs."
  say "  Probes that read kernel structs directly would not be, and perfcheck does not use them."
}

# --- 1-3: machine state ---------------------------------------------------------------

mapfile -t missing < <(missing_packages)
need_headers=false
headers_present || need_headers=true
need_debugfs=false
mountpoint -q "$DEBUGFS_DIR" || need_debugfs=true
need_tracefs=false
mountpoint -q "$TRACEFS_DIR" || need_tracefs=true

machine_todo=("${missing[@]}")
$need_headers && machine_todo+=("kernel headers for $KERNEL_RELEASE")
$need_debugfs && machine_todo+=("debugfs mount")
$need_tracefs && machine_todo+=("tracefs mount")

if ((${#machine_todo[@]} > 0)) && [[ $(id -u) -ne 0 ]]; then
  die "missing $(join_by_comma "${machine_todo[@]}"); run: sudo make setup"
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=false
apt_update_once() {
  if ! $apt_updated; then
    say "apt-get update"
    apt-get -q update
    apt_updated=true
  fi
}

link_headers_arch=""
if $need_headers; then
  # Package lists are only refreshed when a package must be installed or no lists exist yet.
  if ((${#missing[@]} > 0)) || ! apt_lists_present; then apt_update_once; fi
  if apt_has_package "linux-headers-$KERNEL_RELEASE"; then
    package_installed "linux-headers-$KERNEL_RELEASE" || missing+=("linux-headers-$KERNEL_RELEASE")
  else
    # A custom kernel (no Debian package): borrow Debian's cloud headers and link them.
    link_headers_arch=$(dpkg --print-architecture)
    package_installed "linux-headers-cloud-$link_headers_arch" ||
      missing+=("linux-headers-cloud-$link_headers_arch")
  fi
fi

if ((${#missing[@]} > 0)); then
  apt_update_once
  say "installing ${missing[*]}"
  apt-get -q install -y --no-install-recommends "${missing[@]}"
  changes+=("installed: $(join_by_comma "${missing[@]}")")
fi

if [[ -n $link_headers_arch ]]; then
  link_foreign_headers "$link_headers_arch"
fi
if $need_headers && ! headers_present; then
  die "kernel headers still missing at $MODULES_DIR/build/include; install headers for $KERNEL_RELEASE"
fi

# debugfs first: tracefs then also appears at /sys/kernel/debug/tracing, where bcc 0.26 looks.
# Mounts do not survive a reboot; rerunning make setup restores them.
if $need_debugfs; then
  mount -t debugfs debugfs "$DEBUGFS_DIR"
  changes+=("mounted debugfs on $DEBUGFS_DIR")
fi
if $need_tracefs; then
  mount -t tracefs tracefs "$TRACEFS_DIR"
  changes+=("mounted tracefs on $TRACEFS_DIR")
fi

# --- 4: virtualenv --------------------------------------------------------------------

venv_sees_system_bcc() {
  # Made from Debian's python3 and able to see its site-packages, where python3-bpfcc lives.
  [[ -x $VENV_DIR/bin/python && -f $VENV_DIR/pyvenv.cfg ]] &&
    grep -qE '^home = /usr/bin$' "$VENV_DIR/pyvenv.cfg" &&
    grep -qE '^include-system-site-packages = true$' "$VENV_DIR/pyvenv.cfg"
}

if [[ ! -e $VENV_DIR ]]; then
  "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV_DIR"
  rm -f "$PIP_STAMP"
  changes+=("created $VENV_DIR")
elif ! venv_sees_system_bcc; then
  "$SYSTEM_PYTHON" -m venv --clear --system-site-packages "$VENV_DIR"
  rm -f "$PIP_STAMP"
  changes+=("recreated $VENV_DIR from $SYSTEM_PYTHON --system-site-packages (it could not see bcc)")
fi

wanted_hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed_hash=$(cat "$PIP_STAMP" 2>/dev/null || true)
if [[ $wanted_hash != "$installed_hash" ]]; then
  if [[ -z $installed_hash ]]; then why="no install stamp"; else why="pyproject.toml changed"; fi
  say "installing perfcheck and its dependencies into $VENV_DIR ($why)"
  mkdir -p "$STAMP_DIR"
  # The build backend is chatty even with --quiet; keep its output for when it fails.
  if ! "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore \
    -e '.[dev]' >"$STAMP_DIR/pip-install.log" 2>&1; then
    tail -n 20 "$STAMP_DIR/pip-install.log" >&2
    die "pip install -e '.[dev]' failed; full log: $STAMP_DIR/pip-install.log"
  fi
  printf '%s\n' "$wanted_hash" >"$PIP_STAMP.tmp"
  mv "$PIP_STAMP.tmp" "$PIP_STAMP"
  changes+=("installed perfcheck into $VENV_DIR ($why)")
fi

if ! bcc_version=$("$VENV_DIR/bin/python" -c 'import bcc; print(bcc.__version__)' 2>&1); then
  die "$VENV_DIR/bin/python cannot import bcc: ${bcc_version##*$'\n'}; is python3-bpfcc installed?"
fi

# --- summary --------------------------------------------------------------------------

if ((${#changes[@]} == 0)); then
  say "machine already set up, nothing changed (bcc $bcc_version importable from $VENV_DIR)"
else
  for change in "${changes[@]}"; do say "changed: $change"; done
  say "bcc $bcc_version importable from $VENV_DIR"
fi

#!/usr/bin/env bash
# Checks grpo-cpp the way a new user meets it on a fresh Debian system.
#
#   .ci/check-fresh-debian.sh <bookworm|trixie> [--keep] [--no-cache] [--cmd "make test"]
#   .ci/check-fresh-debian.sh --enter <root> [--cmd "..."]
#
# 1. Builds a minimal Debian root (debootstrap --variant=minbase from http://deb.debian.org/debian) holding only
#    what a fresh system has by the project's rules: g++, CMake, git, make (and ca-certificates). Its apt
#    sources are those of a fresh install (<dist>, <dist>-updates, <dist>-security; main), and its package lists
#    (/var/lib/apt/lists/*) are removed, so cmake/install-deps.sh must run `apt-get update` itself.
#    The bootstrapped base is cached as a tarball under /var/tmp/grpo-fresh-debian/cache/ so that reruns skip
#    debootstrap; --no-cache bootstraps anew and replaces the cached tarball.
# 2. Bind-mounts /proc, /sys, /dev, /dev/pts into the root and copies /etc/resolv.conf; a trap always unmounts
#    them on exit (success, failure or Ctrl-C).
# 3. Clones this repository at its HEAD commit (`git clone`, so only committed files: no working-tree changes)
#    into /root/grpo-cpp in the root, and runs the command there (default `make test`) as root through chroot
#    with a clean environment, timed, its output teed to a log file under /var/tmp/grpo-fresh-debian/logs/.
# 4. Prints one summary line (distribution, commit, command, pass/fail, wall time, g++ / CMake / libtorch-dev /
#    catch2 versions seen inside) and exits with the command's status. The root is removed unless --keep.
#
# --enter <root> re-enters a root kept with --keep: mounts /proc, /sys, /dev, /dev/pts again, runs an
# interactive shell (or --cmd) in /root/grpo-cpp with the same clean environment, and unmounts on exit.
# By hand, the same is:
#   for d in proc sys dev dev/pts; do mount --bind /$d <root>/$d; done
#   chroot <root> /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -l
#   for d in dev/pts dev sys proc; do umount <root>/$d; done
# Remove a kept root with `rm -rf --one-file-system <root>` only after checking that nothing is mounted below it
# (`grep <root> /proc/mounts` prints nothing).
#
# Needs root (debootstrap, mount, chroot) and network access to the Debian mirror deb.debian.org. Installs
# debootstrap on the host with apt-get when it is missing. Not part of .ci/run. Also: `make check-fresh-debian
# DIST=bookworm|trixie [KEEP=1] [CHECK_CMD="..."]`.
# shellcheck disable=SC2016,SC2317  # single quotes are expanded inside the chroot; traps call functions
set -euo pipefail

MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
BASE_DIR=/var/tmp/grpo-fresh-debian
INCLUDE_PACKAGES=g++,cmake,git,make,ca-certificates
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
REPO_IN_ROOT=/root/grpo-cpp

usage() {
  sed -n '4,5p' "$0" | sed 's/^# *//' >&2
  exit 2
}

die() { echo "check-fresh-debian: $*" >&2; exit 1; }
log() { echo "check-fresh-debian: $*" >&2; }

# ---- arguments ---------------------------------------------------------------------------------------------
dist=""
keep=0
use_cache=1
cmd="make test"
cmd_given=0
enter_root=""
while [ $# -gt 0 ]; do
  case "$1" in
    bookworm|trixie) dist="$1" ;;
    --keep) keep=1 ;;
    --no-cache) use_cache=0 ;;
    --cmd) [ $# -ge 2 ] || usage; cmd="$2"; cmd_given=1; shift ;;
    --cmd=*) cmd="${1#--cmd=}"; cmd_given=1 ;;
    --enter) [ $# -ge 2 ] || usage; enter_root="$2"; shift ;;
    -h|--help) usage ;;
    *) echo "check-fresh-debian: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
if [ -z "$enter_root" ] && [ -z "$dist" ]; then usage; fi
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot)"

repo_dir="$(cd "$(dirname "$0")/.." && pwd)"

# ---- mounts ------------------------------------------------------------------------------------------------
root=""          # the chroot; set before mount_root
mounted=()       # mount points, in mount order

mount_root() {
  local d
  for d in proc sys dev dev/pts; do
    mkdir -p "$root/$d"
    mount --bind "/$d" "$root/$d"
    mounted+=("$root/$d")
  done
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}

unmount_root() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" || log "could not unmount ${mounted[$i]}"
  done
  mounted=()
}

# True when something is still mounted at or below $1.
has_mounts_below() {
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts
}

run_in_root() {  # run_in_root <command string>: in $REPO_IN_ROOT (or /root), clean environment
  chroot "$root" /usr/bin/env -i HOME=/root PATH="$CLEAN_PATH" TERM=dumb \
    /bin/bash -c 'cd "$1" 2>/dev/null || cd /root; shift; eval "$1"' bash "$REPO_IN_ROOT" "$1"
}

# ---- --enter: re-enter a kept root -------------------------------------------------------------------------
if [ -n "$enter_root" ]; then
  root="$(cd "$enter_root" && pwd)"
  [ -x "$root/bin/bash" ] || die "$root is not a Debian root"
  has_mounts_below "$root" && die "something is already mounted below $root (another session?)"
  trap unmount_root EXIT
  trap 'exit 130' INT TERM
  mount_root
  if [ "$cmd_given" = 0 ]; then
    # No --cmd: an interactive shell.
    chroot "$root" /usr/bin/env -i HOME=/root PATH="$CLEAN_PATH" TERM="${TERM:-dumb}" \
      /bin/bash -c "cd $REPO_IN_ROOT 2>/dev/null || cd /root; exec bash -i"
  else
    run_in_root "$cmd"
  fi
  exit $?
fi

# ---- host tools --------------------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap on the host"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap
  fi
fi
command -v git >/dev/null 2>&1 || die "git is needed on the host to clone the repository"

commit="$(git -C "$repo_dir" rev-parse HEAD)"
short="$(git -C "$repo_dir" rev-parse --short HEAD)"
if [ -n "$(git -C "$repo_dir" status --porcelain --untracked-files=no)" ]; then
  log "note: the working tree has uncommitted changes; they are NOT checked (the clone is of commit $short)"
fi

mkdir -p "$BASE_DIR/cache" "$BASE_DIR/logs"
stamp="$(date +%Y%m%d-%H%M%S)"
root_parent="$(mktemp -d "$BASE_DIR/$dist-$stamp.XXXX")"
root="$root_parent/root"
log_file="$BASE_DIR/logs/$dist-$short-$stamp.log"

cleanup() {
  local status=$?
  unmount_root
  if [ "$keep" = 1 ]; then
    log "kept the root: $root  (enter it with: $repo_dir/.ci/check-fresh-debian.sh --enter $root)"
  elif [ -d "$root_parent" ]; then
    if has_mounts_below "$root_parent"; then
      log "NOT removing $root_parent: something is still mounted below it"
    else
      rm -rf --one-file-system "$root_parent"
    fi
  fi
  return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the fresh root ----------------------------------------------------------------------------------------
cache_key="$(printf '%s %s %s' "$dist" "$INCLUDE_PACKAGES" "$MIRROR" | sha1sum | cut -c1-10)"
cache_tar="$BASE_DIR/cache/$dist-minbase-$cache_key.tar"
mkdir -p "$root"
if [ "$use_cache" = 1 ] && [ -f "$cache_tar" ]; then
  log "unpacking the cached fresh $dist root ($cache_tar, $(date -r "$cache_tar" +%F))"
  tar -xpf "$cache_tar" --numeric-owner --xattrs --xattrs-include='*' -C "$root"
else
  log "debootstrap $dist (minbase + $INCLUDE_PACKAGES) into $root"
  debootstrap --variant=minbase --include="$INCLUDE_PACKAGES" "$dist" "$root" "$MIRROR" \
    > "$root_parent/debootstrap.log" 2>&1 || { tail -n 30 "$root_parent/debootstrap.log" >&2; die "debootstrap failed"; }
  # The apt sources of a fresh install, with no package lists yet.
  cat > "$root/etc/apt/sources.list" <<EOF
deb $MIRROR $dist main
deb $MIRROR $dist-updates main
deb $SECURITY_MIRROR $dist-security main
EOF
  rm -rf "$root"/var/lib/apt/lists/*
  mkdir -p "$root/var/lib/apt/lists/partial"
  rm -rf "$root"/var/cache/apt/archives/*.deb
  tar -cpf "$cache_tar.tmp" --numeric-owner --xattrs --xattrs-include='*' -C "$root" .
  mv "$cache_tar.tmp" "$cache_tar"
  log "cached the fresh root as $cache_tar"
fi
[ -z "$(find "$root/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial)" ] || die "apt lists are not empty"

# ---- the repository, then the command ----------------------------------------------------------------------
git clone -q --no-hardlinks "$repo_dir" "$root$REPO_IN_ROOT"
git -C "$root$REPO_IN_ROOT" checkout -q --detach "$commit"
mount_root

log "running '$cmd' in $dist ($REPO_IN_ROOT at $short); log: $log_file"
start=$(date +%s)
set +e
run_in_root "time ( $cmd )" 2>&1 | tee "$log_file"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s)
wall=$((end - start))

# ---- summary -----------------------------------------------------------------------------------------------
version_of() {  # version_of <package>: installed version or "-"
  { run_in_root "dpkg-query -W -f='\${Status} \${Version}' $1 2>/dev/null" 2>/dev/null || true; } \
    | awk '$3 == "installed" { print $4; found = 1 } END { if (!found) print "-" }'
}
gxx="$(run_in_root 'g++ --version 2>/dev/null | head -n 1' || true)"
cmake_v="$(run_in_root 'cmake --version 2>/dev/null | head -n 1' || true)"
torch_v="$(version_of libtorch-dev)"
catch_v="$(version_of catch2)"
result=$([ "$status" -eq 0 ] && echo PASS || echo "FAIL(exit $status)")
summary="check-fresh-debian: $dist commit $short '$cmd' $result in $((wall / 60))m$((wall % 60))s;"
summary+=" g++: ${gxx:--}; ${cmake_v:-cmake: -}; libtorch-dev $torch_v; catch2 $catch_v"
echo "$summary" | tee -a "$log_file"
echo "check-fresh-debian: log: $log_file"
exit "$status"

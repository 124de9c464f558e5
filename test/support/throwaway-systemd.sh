#!/usr/bin/env bash
# Boots a throwaway systemd as PID 1 of its own pid, mount, network, IPC, UTS and cgroup
# namespaces, on an overlay of this machine's / whose writes land in a tmpfs: the host's
# files, services, network and other processes are untouched, and everything is gone
# once its PID 1 is killed. Used by test/support/throwaway-systemd.ts.
#
#   throwaway-systemd.sh WORK_DIR BUNDLE_DIR
#
# WORK_DIR: an empty directory for the tmpfs; BUNDLE_DIR appears as /bundle inside.
# The cgroup (unified hierarchy) is WORK_DIR's name under /sys/fs/cgroup/unified; the
# caller removes it after the kill. Needs root with CAP_SYS_ADMIN (unshare, mount).
# Enabled units of the host image are masked inside, so only basic.target starts.
set -euo pipefail
WORK="$1"
BUNDLE="$2"
CGROOT=/sys/fs/cgroup/unified
[[ -d "$CGROOT" ]] || CGROOT=/sys/fs/cgroup
CG="$CGROOT/$(basename "$WORK")"
mkdir -p "$CG"
echo $$ > "$CG/cgroup.procs"
export WORK BUNDLE
exec unshare --pid --fork --mount --net --uts --ipc --cgroup --propagation private bash -c '
set -euo pipefail
mount -t tmpfs tmpfs "$WORK"
mkdir -p "$WORK/upper" "$WORK/work" "$WORK/root"
M="$WORK/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$WORK/upper,workdir=$WORK/work" "$M"
mount -t proc proc "$M/proc"
mount -t sysfs -o ro sysfs "$M/sys"
mount -t cgroup2 cgroup2 "$M/sys/fs/cgroup"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/tmp"
mount --rbind /dev "$M/dev"
mkdir -p "$M/bundle"
mount --bind "$BUNDLE" "$M/bundle"
for unit in "$M"/etc/systemd/system/*.wants/*; do
  [[ -e "$unit" || -L "$unit" ]] && ln -sfn /dev/null "$M/etc/systemd/system/$(basename "$unit")"
done
hostname lakeside-test
cd "$M"
export container=lakeside-test
exec chroot "$M" /lib/systemd/systemd --system --unit=basic.target --log-target=journal
'

#!/usr/bin/env bash
# Removes lakeside: stops and disables the service, removes /opt/lakeside, the unit, the
# sysusers.d and tmpfiles.d entries and /usr/local/bin/lakeside. Keeps the config
# (/etc/lakeside), the data (/var/lib/lakeside) and the lakeside user unless --purge.
# Idempotent: running it again removes nothing more and succeeds.
#
#   sudo /opt/lakeside/current/uninstall.sh [--purge]
#
# Options:
#   --root DIR   uninstall from DIR as if it were / (images, tests); systemctl is not used
#   --purge      also delete /etc/lakeside, /var/lib/lakeside (ALL local data, including
#                anything not yet uploaded) and the lakeside user and group
set -euo pipefail

ROOT=/
PURGE=0
while (($#)); do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "uninstall.sh: $*" >&2; exit 1; }
say() { echo "uninstall.sh: $*"; }

[[ -d "$ROOT" ]] || die "no such directory: $ROOT"
ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}"
LIVE=0
[[ "$ROOT" == / ]] && LIVE=1
if ((LIVE)) && [[ "$(id -u)" != 0 ]]; then die "run as root (or use --root DIR)"; fi

UNIT="$R/usr/local/lib/systemd/system/lakeside.service"
if ((LIVE)) && [[ -d /run/systemd/system ]] && [[ -e "$UNIT" ]]; then
  # Stopping drains (TimeoutStopSec): in-flight messages commit before the process exits.
  systemctl disable --now lakeside.service || true
fi

rm -rf "$R/opt/lakeside"
rm -f "$UNIT" "$R/usr/local/lib/sysusers.d/lakeside.conf" "$R/usr/local/lib/tmpfiles.d/lakeside.conf"
if [[ "$(readlink "$R/usr/local/bin/lakeside" 2>/dev/null)" == /opt/lakeside/current/bin/lakeside ]]; then
  rm -f "$R/usr/local/bin/lakeside"
fi
((LIVE)) && [[ -d /run/systemd/system ]] && systemctl daemon-reload
say "removed the program, the unit and the command"

if ((PURGE)); then
  rm -rf "$R/etc/lakeside" "$R/var/lib/lakeside"
  if grep -q '^lakeside:' "$R/etc/passwd" 2>/dev/null; then
    if ((LIVE)); then userdel lakeside; else userdel --root "$ROOT" lakeside; fi
  fi
  if grep -q '^lakeside:' "$R/etc/group" 2>/dev/null; then
    if ((LIVE)); then groupdel lakeside; else groupdel --root "$ROOT" lakeside; fi
  fi
  say "purged /etc/lakeside, /var/lib/lakeside and the lakeside user"
else
  say "kept /etc/lakeside (config), /var/lib/lakeside (data) and the lakeside user; --purge removes them"
fi

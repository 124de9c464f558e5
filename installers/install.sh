#!/usr/bin/env bash
# Installs or upgrades lakeside from this unpacked offline bundle; needs no npm and no
# network. Run it as root from the bundle:  sudo ./install.sh [--start]
#
#   /opt/lakeside/releases/<version>/   this bundle (node, app, launcher), root-owned
#   /opt/lakeside/current               symlink to the running release (switched atomically)
#   /usr/local/bin/lakeside             symlink to the launcher
#   /usr/local/lib/systemd/system/lakeside.service, sysusers.d/, tmpfiles.d/ entries
#   /etc/lakeside/lakeside.yaml         installed once, never overwritten
#   /var/lib/lakeside                   state, never touched
#
# Idempotent: running it again with the same bundle changes nothing. An upgrade keeps
# the config and the data, keeps the previous release for a rollback, and restarts a
# running service only if the new release accepts the config.
#
# Options:
#   --root DIR   install into DIR as if it were / (images, tests); systemctl is not used
#   --start      enable and start the service now (otherwise a fresh install only prints how)
set -euo pipefail

ROOT=/
START=0
while (($#)); do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --start) START=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

[[ -x "$BUNDLE/node/bin/node" && -f "$BUNDLE/app/package.json" && -f "$BUNDLE/VERSION" ]] ||
  die "$BUNDLE is not an unpacked lakeside bundle (make one with \`npm run bundle\`)"
mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}" # prefix for paths: "" for /
LIVE=0
[[ "$ROOT" == / ]] && LIVE=1
if ((LIVE)) && [[ "$(id -u)" != 0 ]]; then die "run as root (or use --root DIR)"; fi
((START)) && ! ((LIVE)) && die "--start needs the real root (not --root)"

VERSION="$(sed -n 's/^lakeside //p' "$BUNDLE/VERSION")"
[[ "$VERSION" =~ ^[0-9A-Za-z.+-]+$ ]] || die "bad VERSION file in $BUNDLE"

say "checking the bundle's files against MANIFEST.sha256"
(cd "$BUNDLE" && sha256sum --check --quiet --strict MANIFEST.sha256) || die "the bundle is damaged or incomplete (MANIFEST.sha256 mismatch)"

# 1. The release: staged beside its final place, then renamed in.
OPT="$R/opt/lakeside"
RELEASES="$OPT/releases"
mkdir -p "$RELEASES"
PREVIOUS="$(readlink "$OPT/current" 2>/dev/null || true)"
STAGE="$RELEASES/.staging-$VERSION-$$"
trap 'rm -rf "$STAGE" "$RELEASES/.old-$VERSION-$$" "$OPT/.current-$$"' EXIT
mkdir "$STAGE"
cp -R --preserve=mode,timestamps "$BUNDLE"/{bin,node,app,installers,install.sh,uninstall.sh,VERSION,MANIFEST.sha256} "$STAGE"/
chmod -R go-w "$STAGE"
[[ "$(id -u)" == 0 ]] && chown -R 0:0 "$STAGE"
if [[ -e "$RELEASES/$VERSION" ]]; then
  mv "$RELEASES/$VERSION" "$RELEASES/.old-$VERSION-$$"
fi
mv "$STAGE" "$RELEASES/$VERSION"
ln -sfn "releases/$VERSION" "$OPT/.current-$$"
mv -T "$OPT/.current-$$" "$OPT/current"
# Keep this release and the one it replaced (for a rollback); older ones go.
for old in "$RELEASES"/*; do
  name="$(basename "$old")"
  [[ "releases/$name" == "$PREVIOUS" || "$name" == "$VERSION" ]] || rm -rf "$old"
done
if [[ -n "$PREVIOUS" && "$PREVIOUS" != "releases/$VERSION" ]]; then
  say "upgraded ${PREVIOUS#releases/} -> $VERSION (the previous release stays in $RELEASES for a rollback)"
else
  say "installed $VERSION in /opt/lakeside/releases/$VERSION"
fi

# 2. systemd files and the command.
install -D -m 0644 "$BUNDLE/installers/lakeside.service" "$R/usr/local/lib/systemd/system/lakeside.service"
install -D -m 0644 "$BUNDLE/installers/lakeside.sysusers.conf" "$R/usr/local/lib/sysusers.d/lakeside.conf"
install -D -m 0644 "$BUNDLE/installers/lakeside.tmpfiles.conf" "$R/usr/local/lib/tmpfiles.d/lakeside.conf"
mkdir -p "$R/usr/local/bin"
ln -sfn /opt/lakeside/current/bin/lakeside "$R/usr/local/bin/lakeside"

# 3. The user and the directories (systemd's own tools, pointed at the target root).
command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null ||
  die "systemd-sysusers and systemd-tmpfiles are needed (a systemd system)"
mkdir -p "$R/etc"
systemd-sysusers --root="$ROOT" "$R/usr/local/lib/sysusers.d/lakeside.conf"
systemd-tmpfiles --create --root="$ROOT" "$R/usr/local/lib/tmpfiles.d/lakeside.conf"

# 4. The config: installed once; an upgrade keeps the operator's file.
CONFIG="$R/etc/lakeside/lakeside.yaml"
if [[ -e "$CONFIG" ]]; then
  say "kept the existing /etc/lakeside/lakeside.yaml"
else
  GID="$(awk -F: '$1 == "lakeside" { print $3 }' "$R/etc/group")"
  install -m 0640 "$BUNDLE/installers/lakeside.yaml" "$CONFIG"
  [[ "$(id -u)" == 0 && -n "$GID" ]] && chown "0:$GID" "$CONFIG"
  say "installed a starting /etc/lakeside/lakeside.yaml: edit it for this plant"
fi

# 5. The new release must run here and accept the config before a running service moves to it.
CONFIG_OK=1
"$OPT/current/bin/lakeside" --version >/dev/null || die "the installed release does not run on this machine"
if ! "$OPT/current/bin/lakeside" config check "$CONFIG" >/dev/null; then
  CONFIG_OK=0
  echo "install.sh: warning: lakeside $VERSION rejects /etc/lakeside/lakeside.yaml (see above); fix it, then: systemctl restart lakeside" >&2
fi

# 6. systemd, on the real root only.
if ((LIVE)) && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  if ((START)); then
    ((CONFIG_OK)) || die "not starting: the config does not pass \`lakeside config check\`"
    systemctl enable --now lakeside.service
    say "lakeside is enabled and started: journalctl -u lakeside -f"
  elif systemctl is-active --quiet lakeside.service; then
    if ((CONFIG_OK)); then
      systemctl restart lakeside.service
      say "restarted the running service on $VERSION"
    else
      echo "install.sh: warning: the running service was left on its old release until the config is fixed" >&2
    fi
  else
    say "next: edit /etc/lakeside/lakeside.yaml, then: systemctl enable --now lakeside"
  fi
fi

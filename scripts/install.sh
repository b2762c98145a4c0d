#!/usr/bin/env bash
# Install cosfs for mounting at boot (run as root):
#   - the binary to PREFIX/bin/cosfs (default /usr/local/bin), where mount.fuse3 finds it for
#     fstab lines `cosfs#BUCKET /mnt fuse ...` (it runs `cosfs` from PATH);
#   - the mount helper /sbin/mount.fuse.cosfs (a symlink to the binary), which `mount -t
#     fuse.cosfs` and fstab lines of type fuse.cosfs run;
#   - the systemd template unit cosfs@.service (when systemd is present) and /etc/cosfs/;
#   - `fuse.cosfs` in PRUNEFS of /etc/updatedb.conf (when it exists), so that the nightly
#     updatedb does not crawl mounted buckets: a walk of every object, paid in requests.
#
# Usage: scripts/install.sh [--bin PATH] [--prefix DIR] [--sbin DIR] [--no-systemd]
#                           [--updatedb-conf FILE]
#   --bin PATH   install this binary instead of building target/release/cosfs
#   --uninstall  remove what a previous run installed (with the same options)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="" prefix=/usr/local sbin=/sbin systemd=1 uninstall=0 updatedb_conf=/etc/updatedb.conf
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --sbin) sbin="$2"; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    --updatedb-conf) updatedb_conf="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
unitdir=/etc/systemd/system

# PRUNEFS="..." in updatedb.conf (mlocate, plocate): add or remove fuse.cosfs, keeping the rest.
prunefs() { # add|remove
  [ -f "$updatedb_conf" ] || return 0
  local tmp="$updatedb_conf.cosfs-tmp"
  if [ "$1" = add ]; then
    if grep -Eq '^[[:space:]]*PRUNEFS[[:space:]]*=' "$updatedb_conf"; then
      sed -E '/^[[:space:]]*PRUNEFS[[:space:]]*=/{ /[" ]fuse\.cosfs[" ]/! s/"([[:space:]]*)$/ fuse.cosfs"\1/ }' \
        "$updatedb_conf" > "$tmp"
    else
      { cat "$updatedb_conf"; echo 'PRUNEFS="fuse.cosfs"'; } > "$tmp"
    fi
  else
    sed -E '/^[[:space:]]*PRUNEFS[[:space:]]*=/ s/ ?fuse\.cosfs([" ])/\1/' "$updatedb_conf" > "$tmp"
  fi
  cat "$tmp" > "$updatedb_conf" && rm -f "$tmp"
  echo "$updatedb_conf: fuse.cosfs $([ "$1" = add ] && echo "in" || echo "out of") PRUNEFS"
}

if [ "$uninstall" = 1 ]; then
  rm -f "$sbin/mount.fuse.cosfs" "$prefix/bin/cosfs"
  echo "removed $prefix/bin/cosfs and $sbin/mount.fuse.cosfs"
  if [ "$systemd" = 1 ]; then
    rm -f "$unitdir/cosfs@.service"
    echo "removed $unitdir/cosfs@.service"
  fi
  prunefs remove
  exit 0
fi

if [ -z "$bin" ]; then
  cargo build --release --bin cosfs
  bin=target/release/cosfs
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable" >&2; exit 1; }

install -d "$prefix/bin" "$sbin"
install -m 0755 "$bin" "$prefix/bin/cosfs.new"
mv -f "$prefix/bin/cosfs.new" "$prefix/bin/cosfs"
ln -sfn "$(realpath "$prefix/bin/cosfs")" "$sbin/mount.fuse.cosfs"
echo "installed $prefix/bin/cosfs and the mount helper $sbin/mount.fuse.cosfs"
prunefs add

if [ "$systemd" = 1 ] && [ -d "$unitdir" ]; then
  install -d -m 0755 /etc/cosfs
  install -m 0644 systemd/example.conf /etc/cosfs/example.conf.sample
  sed "s|/usr/local/bin/cosfs|$(realpath "$prefix/bin/cosfs")|g" systemd/cosfs@.service \
    > "$unitdir/cosfs@.service"
  chmod 0644 "$unitdir/cosfs@.service"
  command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload || true
  echo "installed $unitdir/cosfs@.service; put a mount's settings in /etc/cosfs/NAME.conf and run: systemctl enable --now cosfs@NAME"
fi

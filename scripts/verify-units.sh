#!/usr/bin/env bash
# Check the unit files in systemd/ with `systemd-analyze verify` (CI runs this).
# The template is verified as an instance, with ExecStart pointing at a built binary
# (verify insists that executables exist).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$PWD/target/debug/cosfs}"
[ -x "$bin" ] || cargo build --bin cosfs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/cosfs|$bin|g" systemd/cosfs@.service > "$tmp/cosfs@.service"
ln -s "cosfs@.service" "$tmp/cosfs@example.service"
cp systemd/mnt-cos.mount systemd/mnt-cos.automount "$tmp/"
out=$(SYSTEMD_UNIT_PATH="$tmp:" systemd-analyze verify --man=no \
  "$tmp/cosfs@example.service" "$tmp/mnt-cos.mount" "$tmp/mnt-cos.automount" 2>&1) || {
  echo "$out" >&2
  echo "systemd-analyze verify failed" >&2
  exit 1
}
# verify exits 0 on some warnings; treat any message about our units as a failure.
if echo "$out" | grep -E "cosfs@|mnt-cos" >&2; then
  echo "systemd-analyze verify reported problems in the units above" >&2
  exit 1
fi
echo "systemd units verified: cosfs@.service, mnt-cos.mount, mnt-cos.automount"

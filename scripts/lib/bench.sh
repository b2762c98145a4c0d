# Sourced by the mount benchmark scripts (from the repository root): builds the release binaries
# named in $BENCH_BINS, makes a work dir ($WORK) with a mountpoint ($MNT), and on exit unmounts,
# stops the server started by start_serve (serve.sh) and removes the work dir. Sets BIN, WORK,
# BUCKET, MNT.
bench_init() { # NAME
  cargo build --release --quiet $(for b in $BENCH_BINS; do printf -- '--bin %s ' "$b"; done)
  BIN=$PWD/target/release
  WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/$1.XXXXXX")
  BUCKET=bench-1250000000
  MNT=$WORK/mnt
  mkdir -p "$MNT"
  trap bench_cleanup EXIT
}

bench_cleanup() {
  mountpoint -q "$MNT" && { "$BIN/cosfs" unmount "$MNT" 2>/dev/null || umount -l "$MNT"; }
  [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

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

# Helpers shared by the mount benchmarks ($EP is the server start_serve started).
now() { date +%s.%N; }
fig() { grep -o '= [0-9.]*' | tail -1 | tr -d '= '; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
stats_reset() { curl -sf -X DELETE "$EP/-/stats" >/dev/null; }
stat_of() { curl -sf "$EP/-/stats" | grep -o "\"$1\":[0-9]*" | cut -d: -f2 || echo 0; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# s3fs-fuse on $BUCKET of $EP, its cache under $WORK (the scripts that compare it with a disk
# cache or none define their own).
mount_s3fs() {
  s3fs "$BUCKET" "$MNT" -o url="$EP" -o use_path_request_style -o public_bucket=1 \
    -o parallel_count=8 -o multipart_size=8 -o use_cache="$WORK/s3fs-cache"
  for _ in $(seq 100); do mountpoint -q "$MNT" && return; sleep 0.1; done
}
unmount_any() { # records the peak RSS (VmHWM, MiB) of the process serving the mount in $WORK/peak
  local pid
  pid=$(pgrep -f "(cosfs mount|s3fs|rclone mount) .*$MNT( |$)" | head -1 || true)
  awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/${pid:-0}/status" > "$WORK/peak" 2>/dev/null || echo "?" > "$WORK/peak"
  umount "$MNT" 2>/dev/null || umount -l "$MNT"
}
peak() { cat "$WORK/peak"; }

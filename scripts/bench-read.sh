#!/usr/bin/env bash
# Read-path benchmark: a cosfs mount against the raw object client doing the same work, over a
# local `cosfs serve`, without and with injected per-request latency. s3fs-fuse is measured in
# the same run when it is installed (apt-get install s3fs). Needs root (FUSE mounts, dropping
# the page cache).
#
#   scripts/bench-read.sh [SIZE_MIB=1024] [LIST_COUNT=10000] [SCENARIOS="0 10"]
#
# A scenario is MS (latency added to every request) or MS:MIBS (also a per-request bandwidth cap
# in MiB/s, like one connection to a real COS endpoint), e.g. "0 10 10:100".
#
# Figures: sequential read of a SIZE_MIB object (dd bs=1M, cold caches) vs parallel ranged GETs
# (8 MiB, 8 in flight); random 4 KiB and 64 KiB reads from 8 readers (pread vs ranged GETs);
# `ls -l` of a LIST_COUNT-object directory on a fresh mount vs the LIST pages alone; the objects
# carry POSIX metadata as Tencent cosfs writes it (every tenth a symlink), and the line says how
# many entries each tool showed exactly right, with the LIST and HEAD requests it sent (each
# `ls -l` figure is the median of LS_RUNS=3 fresh mounts; the peak RSS is the last mount's, the
# process serving it, VmHWM).
set -euo pipefail
SIZE_MIB=${1:-1024}
N=${2:-10000}
SCENARIOS=${3:-"0 10"}
LS_RUNS=${LS_RUNS:-3}
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs cosfs-bench-read"
. scripts/lib/bench.sh
bench_init cosfs-bench-read
. scripts/lib/serve.sh
start_serve
RAW="$BIN/cosfs-bench-read --endpoint $EP --bucket $BUCKET"
HAVE_S3FS=$(command -v s3fs >/dev/null && echo yes || echo no)
echo "server: $EP  object: $SIZE_MIB MiB  listing: $N objects  cores: $(nproc)  s3fs: $HAVE_S3FS"

$RAW seed big "$SIZE_MIB" >/dev/null
$RAW fill list "$N" >/dev/null

faults() { # latency_ms bandwidth_mibs
  curl -sf -X PUT -d "{\"latency_ms\":$1,\"bandwidth\":$(($2 * 1048576))}" "$EP/-/faults" >/dev/null
}

# Defaults, over an empty disk cache each time (it is on by default, under --cache-dir): every
# figure is a first read.
mount_cosfs() { rm -rf "$WORK/cache"; "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$WORK/cache" "$@"; }
mount_cosfs_listing_off() { mount_cosfs --listing-metadata off; }
mount_s3fs() {
  s3fs "$BUCKET" "$MNT" -o url="$EP" -o use_path_request_style -o public_bucket=1 \
    -o parallel_count=8 -o multipart_size=8
  for _ in $(seq 100); do mountpoint -q "$MNT" && return; sleep 0.1; done
}

# seq: MiB/s of dd over the whole object on a fresh mount.
fs_seq() {
  "$1"; cold
  local t0 t1; t0=$(now); dd if="$MNT/big" of=/dev/null bs=1M status=none; t1=$(now)
  unmount_any
  awk -v s="$SIZE_MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", s / (b - a) }'
}
fs_rand() { # mount size ops
  "$1"; cold
  local r; r=$($RAW rand-pread "$MNT/big" "$2" --ops "$3" | fig)
  unmount_any; echo "$r"
}
fs_ls_once() { # seconds for ls -l on a fresh mount; also the requests it made, and how many
  # entries showed the stored mode, owner, mtime and symlink target
  "$1"; stats_reset
  local t0 t1; t0=$(now); ls -ln --time-style=+%s "$MNT/list" > "$WORK/ls"; t1=$(now)
  stat_of HeadObject > "$WORK/heads"
  stat_of ListObjects > "$WORK/lists"
  $RAW check-ls "$N" < "$WORK/ls" | fig > "$WORK/right"
  unmount_any
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
fs_ls() { # the median of LS_RUNS fresh-mount runs (2 cores shared with the server are noisy)
  local i; for i in $(seq "$LS_RUNS"); do fs_ls_once "$1"; echo; done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

for SC in $SCENARIOS; do
  LAT=${SC%%:*}
  BW=$([ "$SC" = "$LAT" ] && echo 0 || echo "${SC#*:}")
  faults "$LAT" "$BW"
  OPS=$([ "$LAT" -gt 0 ] && echo 100 || echo 500)
  echo
  echo "== injected latency: $LAT ms per request, bandwidth cap per request: $([ "$BW" = 0 ] && echo none || echo "$BW MiB/s") =="
  raw_seq=$($RAW get big | fig)
  cos_seq=$(fs_seq mount_cosfs)
  echo "sequential read: raw client $raw_seq MiB/s | cosfs $cos_seq MiB/s ($(ratio "$cos_seq" "$raw_seq")x)" \
    "$([ "$HAVE_S3FS" = yes ] && { s=$(fs_seq mount_s3fs); echo "| s3fs $s MiB/s ($(ratio "$s" "$raw_seq")x)"; })"
  for SZ in 4096 65536; do
    raw=$($RAW rand-get big "$SZ" --ops "$OPS" | fig)
    cos=$(fs_rand mount_cosfs "$SZ" "$OPS")
    echo "random $((SZ / 1024)) KiB, 8 readers: raw client $raw reads/s | cosfs $cos reads/s ($(ratio "$cos" "$raw")x)" \
      "$([ "$HAVE_S3FS" = yes ] && { s=$(fs_rand mount_s3fs "$SZ" "$OPS"); echo "| s3fs $s reads/s ($(ratio "$s" "$raw")x)"; })"
  done
  raw_list=$($RAW list list | fig)
  reqs() { echo "$(cat "$WORK/lists") LISTs, $(cat "$WORK/heads") HEADs, $(cat "$WORK/right")/$N entries right, peak RSS $(peak) MiB"; }
  cos_ls=$(fs_ls mount_cosfs); cos_reqs=$(reqs)
  line="ls -l of $N objects: LIST pages $raw_list s | cosfs $cos_ls s ($(ratio "$cos_ls" "$raw_list")x the LIST time; $cos_reqs)"
  off_ls=$(fs_ls mount_cosfs_listing_off)
  line="$line | cosfs --listing-metadata=off $off_ls s ($(reqs))"
  if [ "$HAVE_S3FS" = yes ]; then
    s=$(fs_ls mount_s3fs)
    line="$line | s3fs $s s ($(ratio "$s" "$raw_list")x; $(reqs)); cosfs is $(ratio "$s" "$cos_ls")x faster than s3fs"
  fi
  echo "$line"
done

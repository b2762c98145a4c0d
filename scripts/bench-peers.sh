#!/usr/bin/env bash
# cosfs, s3fs and rclone side by side on one `cosfs serve` in one run, with latency injected
# into every request (loopback alone measures the CPU, not the design). Needs root (FUSE
# mounts, dropping the page cache); s3fs, rclone and fio from apt (a peer that is not installed
# is left out).
#
#   scripts/bench-peers.sh [LATENCY_MS=10] [CACHE_MIB=256] [SECS=8] [MEMORY_MIB=512]
#
# Figures:
# - fio randread at 4 KiB and 64 KiB, 8 jobs, SECS seconds, O_DIRECT (every read reaches the
#   filesystem, not the kernel's page cache), on an object half the size of cosfs's cache
#   ("fits") and on one 4x its size ("4x cache"); IOPS, and cosfs's ratio to each peer (without
#   and with --disk-cache). The raw client line is the same random reads as ranged GETs
#   (8 readers), what one GET per read costs at this latency. "--disk-cache" starts with an
#   empty disk cache, so its SECS include filling it; "next mount" runs fio again on a new
#   mount over the disk cache the first one left (page cache dropped).
# - The FUSE ceiling: the same fio runs on `cosfs-bench-nullfs`, a filesystem that answers
#   reads from a static buffer on its session thread (no cache, no I/O): the most any
#   filesystem on this kernel, FUSE and fuser can serve on this machine.
# - FUSE threads: cosfs with --fuse-threads 1, 2, 4 and 8 on the "fits" object held in its
#   memory cache, and cosfs-bench-nullfs with as many session threads: how the ceiling and
#   cosfs's cached reads move with the threads taking requests from the kernel.
# - Sequential re-read of the "fits" object after a remount, without and with --disk-cache:
#   MiB/s and the GETs the second mount sent.
# - Peak RSS (VmHWM) of the cosfs process with --cache-size CACHE_MIB and --memory-limit
#   MEMORY_MIB, under 32 readers of distinct 64 MiB files, then 32 writers of 64 MiB each,
#   against the README's bound (the limit + 64 MiB).
#
# Peers: s3fs 1.90 with its defaults for a local temp file (`-o use_cache` off), rclone with
# `--vfs-cache-mode off`. cosfs runs with its defaults plus --cache-size (and --disk-cache for
# the line that says so). The fio lines for cosfs also show a run with --disk-cache.
set -euo pipefail
LAT=${1:-10}
CACHE_MIB=${2:-256}
SECS=${3:-8}
MEM_MIB=${4:-512}
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs cosfs-bench-read cosfs-bench-nullfs"
. scripts/lib/bench.sh
bench_init cosfs-bench-peers
. scripts/lib/serve.sh
start_serve
RAW="$BIN/cosfs-bench-read --endpoint $EP --bucket $BUCKET"
have() { command -v "$1" >/dev/null && echo yes || echo no; }
HAVE_S3FS=$(have s3fs); HAVE_RCLONE=$(have rclone)
command -v fio >/dev/null || { echo "fio is needed: apt-get install fio" >&2; exit 1; }
FITS_MIB=$((CACHE_MIB / 2))
HUGE_MIB=$((CACHE_MIB * 4))
DISK=$WORK/disk-cache
echo "server: $EP  latency: $LAT ms/request  cosfs cache: $CACHE_MIB MiB  objects: $FITS_MIB MiB (fits), $HUGE_MIB MiB (4x cache)  cores: $(nproc)  s3fs: $HAVE_S3FS  rclone: $HAVE_RCLONE"

$RAW seed fits "$FITS_MIB" >/dev/null
$RAW seed huge "$HUGE_MIB" >/dev/null
for i in $(seq 32); do $RAW seed "r/$i" 64 >/dev/null; done
head -c 64M /dev/urandom > "$WORK/w64"
curl -sf -X PUT -d "{\"latency_ms\":$LAT}" "$EP/-/faults" >/dev/null

wait_mounted() { for _ in $(seq 100); do mountpoint -q "$MNT" && return; sleep 0.1; done; echo "mount failed" >&2; exit 1; }
unmount_any() { umount "$MNT" 2>/dev/null || umount -l "$MNT"; sleep 0.5; }

mount_cosfs() { "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-size "${CACHE_MIB}M" --memory-limit "${MEM_MIB}M" "$@"; }
mount_cosfs_disk() { mount_cosfs --disk-cache "$DISK"; }
mount_s3fs() {
  s3fs "$BUCKET" "$MNT" -o url="$EP" -o use_path_request_style -o public_bucket=1 \
    -o parallel_count=8 -o multipart_size=8
  wait_mounted
}
mount_rclone() {
  env -u AWS_CA_BUNDLE RCLONE_S3_PROVIDER=Other RCLONE_S3_ENDPOINT="$EP" RCLONE_S3_ENV_AUTH=false \
    rclone mount ":s3:$BUCKET" "$MNT" --vfs-cache-mode off --daemon --log-file "$WORK/rclone.log"
  wait_mounted
}
cosfs_pid() { pgrep -f "cosfs mount $BUCKET $MNT" | head -1; }

fio_iops() { # mount-fn object bs
  "$1"; cold
  local out; out=$(fio --name=r --filename="$MNT/$2" --rw=randread --bs="$3" --numjobs=8 \
    --ioengine=psync --direct=1 --time_based --runtime="$SECS" --group_reporting \
    --output-format=terse --terse-version=3 2>/dev/null)
  unmount_any
  echo "$out" | awk -F';' '{ printf "%d", $8 }'
}

peer_cells() { # object bs cosfs-iops cosfs-disk-iops
  local s r
  if [ "$HAVE_S3FS" = yes ]; then s=$(fio_iops mount_s3fs "$1" "$2"); printf ' | s3fs %s IOPS (cosfs %sx, --disk-cache %sx)' "$s" "$(ratio "$3" "$s")" "$(ratio "$4" "$s")"; fi
  if [ "$HAVE_RCLONE" = yes ]; then r=$(fio_iops mount_rclone "$1" "$2"); printf ' | rclone %s IOPS (cosfs %sx, --disk-cache %sx)' "$r" "$(ratio "$3" "$r")" "$(ratio "$4" "$r")"; fi
}

echo
echo "== fio randread, 8 jobs, ${SECS}s, O_DIRECT =="
for OBJ in fits huge; do
  for BS in 4k 64k; do
    SZ=$([ "$BS" = 4k ] && echo 4096 || echo 65536)
    raw=$($RAW rand-get "$OBJ" "$SZ" --ops 100 | fig)
    c=$(fio_iops mount_cosfs "$OBJ" "$BS")
    rm -rf "$DISK"; d=$(fio_iops mount_cosfs_disk "$OBJ" "$BS"); n=$(fio_iops mount_cosfs_disk "$OBJ" "$BS")
    echo "$OBJ ($([ "$OBJ" = fits ] && echo "$FITS_MIB" || echo "$HUGE_MIB") MiB) $BS: raw GETs $raw/s | cosfs $c IOPS | cosfs --disk-cache $d IOPS (next mount $n IOPS)$(peer_cells "$OBJ" "$BS" "$c" "$d")"
  done
done

mount_nullfs() { "$BIN/cosfs-bench-nullfs" "$MNT" --size-mib "$HUGE_MIB" & wait_mounted; }
echo "FUSE ceiling (cosfs-bench-nullfs): 4k $(fio_iops mount_nullfs huge 4k) IOPS | 64k $(fio_iops mount_nullfs huge 64k) IOPS"

echo
echo "== FUSE threads: fio randread of fits from memory (read whole first), and the ceiling, by thread count =="
for T in 1 2 4 8; do
  mount_warm() { mount_cosfs --fuse-threads "$T"; cat "$MNT/fits" > /dev/null; }
  mount_nullfs_t() { "$BIN/cosfs-bench-nullfs" "$MNT" --size-mib "$HUGE_MIB" --threads "$T" & wait_mounted; }
  # `cold` drops the page cache only: the warm mount keeps its own cache, so fio reads from it.
  echo "--fuse-threads $T: cosfs 4k $(fio_iops mount_warm fits 4k) 64k $(fio_iops mount_warm fits 64k) IOPS | nullfs --threads $T: 4k $(fio_iops mount_nullfs_t huge 4k) 64k $(fio_iops mount_nullfs_t huge 64k) IOPS"
done

echo
echo "== sequential re-read of fits ($FITS_MIB MiB) after a remount =="
reread() { # mount-fn; reads on two mounts, reports the second
  "$1"; cat "$MNT/fits" > /dev/null; sleep 2; unmount_any
  "$1"; cold; stats_reset
  local t0 t1; t0=$(now); cat "$MNT/fits" > /dev/null; t1=$(now)
  local gets; gets=$(stat_of GetObject)
  unmount_any
  awk -v s="$FITS_MIB" -v a="$t0" -v b="$t1" -v g="$gets" 'BEGIN { printf "%.1f MiB/s, %d GETs", s / (b - a), g }'
}
rm -rf "$DISK"
echo "cosfs: $(reread mount_cosfs) | cosfs --disk-cache: $(reread mount_cosfs_disk)$([ "$HAVE_S3FS" = yes ] && echo " | s3fs: $(reread mount_s3fs)")"

echo
echo "== peak RSS of cosfs (VmHWM), --cache-size ${CACHE_MIB}M, --memory-limit ${MEM_MIB}M =="
curl -sf -X PUT -d '{"latency_ms":0}' "$EP/-/faults" >/dev/null
mount_cosfs; PID=$(cosfs_pid); cold
t0=$(now)
pids=(); for i in $(seq 32); do cat "$MNT/r/$i" > /dev/null & pids+=($!); done; wait "${pids[@]}"
t1=$(now)
rss_r=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$PID/status")
mkdir -p "$MNT/w"
pids=(); for i in $(seq 32); do dd if="$WORK/w64" of="$MNT/w/$i" bs=1M status=none & pids+=($!); done; wait "${pids[@]}"
t2=$(now)
rss_w=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$PID/status")
unmount_any
echo "32 readers of 64 MiB: VmHWM $rss_r MiB ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 2048 / (b - a) }') MiB/s) | then 32 writers of 64 MiB: VmHWM $rss_w MiB ($(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.0f", 2048 / (b - a) }') MiB/s) | bound: --memory-limit + 64 = $((MEM_MIB + 64)) MiB"

#!/usr/bin/env bash
# cosfs, s3fs and rclone side by side on one `cosfs serve` in one run, with latency injected
# into every request (loopback alone measures the CPU, not the design). Needs root (FUSE
# mounts, dropping the page cache); s3fs, rclone and fio from apt (a peer that is not installed
# is left out).
#
#   scripts/bench-peers.sh [LATENCY_MS=10] [SECS=8] [MEMORY_MIB=512]
#
# cosfs runs with its defaults: no tuning flag, only --cache-dir under this run's work dir so
# that its disk cache (on by default, under --cache-dir) starts empty. s3fs runs with its
# defaults (no `-o use_cache`), rclone with `--vfs-cache-mode off`. Rows that use other options
# say so.
#
# Figures:
# - fio randread at 4 KiB and 64 KiB, 8 jobs, SECS seconds, O_DIRECT (every read reaches the
#   filesystem, not the kernel's page cache), on a 128 MiB object (half the default 256 MiB
#   memory cache) and a 1 GiB one (4x it): IOPS. "first" is a new mount over an empty cache,
#   "second" fio again on the same mount once the first run's background work is done (cosfs:
#   its fetches and disk-cache writes, whole files included, at most 60 s; s3fs waits as long),
#   "remount" fio on a new mount over the disk cache the first left (page cache dropped), with
#   the GETs it sent. s3fs: first and second run on one
#   mount. "--disk-cache off" is cosfs's first run without the disk cache. The raw client line
#   is the same random reads as ranged GETs (8 readers): one GET per read at this latency.
# - The same on the 1 GiB object without O_DIRECT, as most programs read: cosfs on a new mount
#   over the disk cache the rows above left, s3fs's first and second runs (10 s apart).
# - The local disk under the work dir: fio O_DIRECT and a cold `cat`, the bound of a
#   passthrough read that the page cache does not hold.
# - The FUSE ceiling: the same fio runs on `cosfs-bench-nullfs`, a filesystem that answers
#   reads from a static buffer on its session thread (no cache, no I/O): the most any
#   filesystem on this kernel, FUSE and fuser can serve on this machine.
# - FUSE threads: cosfs with --fuse-threads 1, 2, 4 and 8 on the 128 MiB object held in its
#   memory cache, and cosfs-bench-nullfs with as many session threads.
# - Sequential re-read of the 1 GiB object: cosfs after a remount (from its disk cache), s3fs
#   on its second mount: MiB/s and the GETs the second mount sent.
# - Peak RSS (VmHWM) of the cosfs process with --memory-limit MEMORY_MIB, under 32 readers of
#   distinct 64 MiB files, then 32 writers of 64 MiB each, against the README's bound (the
#   limit + 64 MiB).
set -euo pipefail
LAT=${1:-10}
SECS=${2:-8}
MEM_MIB=${3:-512}
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
FITS_MIB=128
HUGE_MIB=1024
CACHE=$WORK/cosfs-cache
echo "server: $EP  latency: $LAT ms/request  objects: $FITS_MIB MiB (fits), $HUGE_MIB MiB (huge)  cores: $(nproc)  cosfs disk cache under: $CACHE ($(df -h --output=avail "$WORK" | tail -1 | tr -d ' ') free)  s3fs: $HAVE_S3FS  rclone: $HAVE_RCLONE"

$RAW seed fits "$FITS_MIB" >/dev/null
$RAW seed huge "$HUGE_MIB" >/dev/null
for i in $(seq 32); do $RAW seed "r/$i" 64 >/dev/null; done
head -c 64M /dev/urandom > "$WORK/w64"
curl -sf -X PUT -d "{\"latency_ms\":$LAT}" "$EP/-/faults" >/dev/null

wait_mounted() { for _ in $(seq 100); do mountpoint -q "$MNT" && return; sleep 0.1; done; echo "mount failed" >&2; exit 1; }
unmount_any() { umount "$MNT" 2>/dev/null || umount -l "$MNT"; sleep 0.5; }

mount_cosfs() { "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$CACHE" "$@"; }
mount_cosfs_nodisk() { mount_cosfs --disk-cache off; }
mount_s3fs() {
  s3fs "$BUCKET" "$MNT" -o url="$EP" -o use_path_request_style -o public_bucket=1
  wait_mounted
}
mount_rclone() {
  env -u AWS_CA_BUNDLE RCLONE_S3_PROVIDER=Other RCLONE_S3_ENDPOINT="$EP" RCLONE_S3_ENV_AUTH=false \
    rclone mount ":s3:$BUCKET" "$MNT" --vfs-cache-mode off --daemon --log-file "$WORK/rclone.log"
  wait_mounted
}
cosfs_pid() { pgrep -f "cosfs mount $BUCKET $MNT" | head -1; }
# Until the mount's background work is done (nothing fetching, the disk cache's writer idle,
# both for half a second), at most 60 s; prints the seconds waited.
settle_cosfs() {
  local t0 idle=0 cur; t0=$(now)
  for _ in $(seq 240); do
    cur=$("$BIN/cosfs" stats "$MNT")
    case "$cur" in *fetching=0.0MiB*queued=0]*) idle=$((idle + 1)) ;; *) idle=0 ;; esac
    [ "$idle" -ge 2 ] && break
    sleep 0.25
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", b - a + 0.5 }'
}

fio_run() { # object bs: IOPS of one fio run on the mounted filesystem
  fio --name=r --filename="$MNT/$1" --rw=randread --bs="$2" --numjobs=8 \
    --ioengine=psync --direct=1 --time_based --runtime="$SECS" --group_reporting \
    --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{ printf "%d", $8 }'
}
fio_buffered() { # object bs: IOPS of one fio run without O_DIRECT (the page cache may serve)
  fio --name=r --filename="$MNT/$1" --rw=randread --bs="$2" --numjobs=8 \
    --ioengine=psync --direct=0 --time_based --runtime="$SECS" --group_reporting \
    --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{ printf "%d", $8 }'
}
fio_iops() { # mount-fn object bs: one fio run on a new mount
  "$1"; cold
  local out; out=$(fio_run "$2" "$3")
  unmount_any
  echo "$out"
}

echo
echo "== fio randread, 8 jobs, ${SECS}s, O_DIRECT, defaults =="
echo "| work | raw GETs | cosfs first | second | remount (GETs) | --disk-cache off | s3fs first | s3fs second | rclone | second / s3fs second |"
for OBJ in fits huge; do
  for BS in 4k 64k; do
    SZ=$([ "$BS" = 4k ] && echo 4096 || echo 65536)
    raw=$($RAW rand-get "$OBJ" "$SZ" --ops 100 | fig)
    rm -rf "$CACHE"
    mount_cosfs; cold; c1=$(fio_run "$OBJ" "$BS"); waited=$(settle_cosfs); c2=$(fio_run "$OBJ" "$BS"); unmount_any
    mount_cosfs; cold; stats_reset; c3=$(fio_run "$OBJ" "$BS"); g3=$(stat_of GetObject); unmount_any
    off=$(fio_iops mount_cosfs_nodisk "$OBJ" "$BS")
    s1=-; s2=-; r=-
    if [ "$HAVE_S3FS" = yes ]; then mount_s3fs; cold; s1=$(fio_run "$OBJ" "$BS"); sleep "$waited"; s2=$(fio_run "$OBJ" "$BS"); unmount_any; fi
    if [ "$HAVE_RCLONE" = yes ]; then r=$(fio_iops mount_rclone "$OBJ" "$BS"); fi
    echo "| $OBJ $BS | $raw/s | $c1 | $c2 (after ${waited}s) | $c3 ($g3) | $off | $s1 | $s2 | $r | $(ratio "$c2" "${s2/-/0}")x (first $(ratio "$c1" "${s1/-/0}")x, remount $(ratio "$c3" "${s2/-/0}")x) |"
  done
done

echo
echo "== fio randread of huge without O_DIRECT: cosfs on a new mount over the disk cache above (page cache dropped) | s3fs first and second run =="
for BS in 4k 64k; do
  mount_cosfs; cold; stats_reset; b=$(fio_buffered huge "$BS"); g=$(stat_of GetObject); unmount_any
  s1=-; s2=-
  if [ "$HAVE_S3FS" = yes ]; then mount_s3fs; cold; s1=$(fio_buffered huge "$BS"); sleep 10; s2=$(fio_buffered huge "$BS"); unmount_any; fi
  echo "| huge $BS buffered | cosfs remount $b ($g GETs) | s3fs first $s1 | s3fs second $s2 | $(ratio "$b" "${s2/-/0}")x |"
done

# What the disk under the disk cache does itself: the bound of a passthrough read that misses
# the page cache (O_DIRECT reads always do).
head -c "${HUGE_MIB}M" /dev/urandom > "$WORK/disk-probe"; cold
disk_fio() { fio --name=d --filename="$WORK/disk-probe" --rw=randread --bs="$1" --numjobs=8 \
  --ioengine=psync --direct=1 --time_based --runtime="$SECS" --group_reporting \
  --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{ printf "%d", $8 }'; }
t0=$(now); cat "$WORK/disk-probe" > /dev/null; t1=$(now)
echo "local disk under $WORK: fio O_DIRECT 4k $(disk_fio 4k) IOPS | 64k $(disk_fio 64k) IOPS | cat of $HUGE_MIB MiB from a cold page cache $(awk -v s="$HUGE_MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", s / (b - a) }') MiB/s"
rm -f "$WORK/disk-probe"

mount_nullfs() { "$BIN/cosfs-bench-nullfs" "$MNT" --size-mib "$HUGE_MIB" & wait_mounted; }
echo "FUSE ceiling (cosfs-bench-nullfs): 4k $(fio_iops mount_nullfs huge 4k) IOPS | 64k $(fio_iops mount_nullfs huge 64k) IOPS"

echo
echo "== FUSE threads: fio randread of fits from memory (read whole first), and the ceiling, by thread count =="
for T in 1 2 4 8; do
  mount_warm() { mount_cosfs --disk-cache off --fuse-threads "$T"; cat "$MNT/fits" > /dev/null; }
  mount_nullfs_t() { "$BIN/cosfs-bench-nullfs" "$MNT" --size-mib "$HUGE_MIB" --threads "$T" & wait_mounted; }
  # `cold` drops the page cache only: the warm mount keeps its own cache, so fio reads from it.
  echo "--fuse-threads $T: cosfs 4k $(fio_iops mount_warm fits 4k) 64k $(fio_iops mount_warm fits 64k) IOPS | nullfs --threads $T: 4k $(fio_iops mount_nullfs_t huge 4k) 64k $(fio_iops mount_nullfs_t huge 64k) IOPS"
done

echo
echo "== sequential re-read of huge ($HUGE_MIB MiB) on a second mount =="
reread() { # mount-fn; reads on two mounts, reports the second
  # The first mount's background work done (cosfs: its disk cache written, the whole file
  # made); s3fs waits as long.
  "$1"; cat "$MNT/huge" > /dev/null
  if [ "$1" = mount_cosfs ]; then settle_cosfs > "$WORK/reread-wait"; else sleep "$(cat "$WORK/reread-wait" 2>/dev/null || echo 2)"; fi
  unmount_any
  "$1"; cold; stats_reset
  local t0 t1; t0=$(now); cat "$MNT/huge" > /dev/null; t1=$(now)
  local gets; gets=$(stat_of GetObject)
  unmount_any
  awk -v s="$HUGE_MIB" -v a="$t0" -v b="$t1" -v g="$gets" 'BEGIN { printf "%.1f MiB/s, %d GETs", s / (b - a), g }'
}
rm -rf "$CACHE"
c=$(reread mount_cosfs)
s=-; [ "$HAVE_S3FS" = yes ] && s=$(reread mount_s3fs)
echo "cosfs: $c | s3fs: $s | cosfs / s3fs: $(ratio "${c%% *}" "${s%% *}")x"

echo
echo "== peak RSS of cosfs (VmHWM), --memory-limit ${MEM_MIB}M =="
curl -sf -X PUT -d '{"latency_ms":0}' "$EP/-/faults" >/dev/null
mount_cosfs --memory-limit "${MEM_MIB}M"; PID=$(cosfs_pid); cold
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

#!/usr/bin/env bash
# Write-path benchmark: a cosfs mount against the raw object client doing the same uploads,
# over a local `cosfs serve`, without and with injected per-request latency. s3fs-fuse and
# rclone (`--vfs-cache-mode off`) are measured in the same run when they are installed
# (apt-get install s3fs rclone). Needs root (FUSE). rclone without its cache cannot append to
# a file, so it sits out the append and rename rows, and `tar -xf` onto it hung (tar blocked,
# no CPU, for minutes), so it sits out the tar and rm rows too.
#
#   scripts/bench-write.sh [SIZE_MIB=1024] [FILES=1000] [SCENARIOS="0 10"] [COSFS_ARGS=""]
#
# COSFS_ARGS: extra `cosfs mount` options, e.g. "--metadata-ttl 60" to see what a longer
# metadata TTL buys the small-file creates (names in a directory the mount made are known
# absent for that long).
#
# A scenario is MS (latency added to every request) or MS:MIBS (also a per-request bandwidth
# cap in MiB/s, like one connection to a real COS endpoint), e.g. "0 10 10:100".
#
# Figures: sequential write of SIZE_MIB (dd bs=1M conv=fsync from a local file) vs multipart
# with 8 MiB parts, 8 in flight, on a fresh mount and on a mount that has just read a 512 MiB
# object (its read cache full when the write starts); creating FILES 4 KiB files from one process vs as many PUTs
# one after another; appending 1 KiB to a 256 MiB file vs Upload Part - Copy + one part;
# renaming a directory of FILES files vs parallel copies + DELETE Multiple; `tar -xf` of a
# source tree of 2,000 files (mixed sizes, 1 B to 2 MiB, in 120 nested directories; generated
# with a fixed seed) and the requests `rm -r` of it sends (server counts, on a fresh mount,
# so every listed entry needs its HEAD for exact metadata). Peak RSS (VmHWM) of the mount
# process is printed for each tool; "from 8 processes" writes FILES files from 8 programs at
# once, each into its own directory (independent uploads pipelined).
set -euo pipefail
SIZE_MIB=${1:-1024}
N=${2:-1000}
SCENARIOS=${3:-"0 10"}
COSFS_ARGS=${4:-}
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs cosfs-bench-read cosfs-bench-write"
. scripts/lib/bench.sh
bench_init cosfs-bench-write
. scripts/lib/serve.sh
start_serve
RAW="$BIN/cosfs-bench-write --endpoint $EP --bucket $BUCKET"
SEED="$BIN/cosfs-bench-read --endpoint $EP --bucket $BUCKET"
HAVE_S3FS=$(command -v s3fs >/dev/null && echo yes || echo no)
HAVE_RCLONE=$(command -v rclone >/dev/null && echo yes || echo no)
echo "server: $EP  file: $SIZE_MIB MiB  files: $N  cores: $(nproc)  s3fs: $HAVE_S3FS  rclone: $HAVE_RCLONE  cosfs options: ${COSFS_ARGS:-none}"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src.bin"
# A realistic source tree: 2,000 files in 120 directories up to 4 deep, mostly small (a few
# KiB, like source code), some larger; tarred once.
python3 - "$WORK/tree" <<'PY'
import os, random, sys
random.seed(15)
root = sys.argv[1]
dirs = [""]
for i in range(120):
    parent = random.choice([d for d in dirs if d.count("/") < 4])
    dirs.append(f"{parent}/d{i}" if parent else f"d{i}")
for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
for i in range(2000):
    r = random.random()
    size = random.randint(1, 16 << 10) if r < 0.85 else random.randint(16 << 10, 256 << 10) if r < 0.98 else random.randint(256 << 10, 2 << 20)
    with open(os.path.join(root, random.choice(dirs), f"f{i}.txt"), "wb") as f:
        f.write(os.urandom(size))
PY
tar -cf "$WORK/tree.tar" -C "$WORK/tree" .
TREE_ENTRIES=$(tar -tf "$WORK/tree.tar" | grep -vc '^\./$')

since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
faults() { # latency_ms bandwidth_mibs
  curl -sf -X PUT -d "{\"latency_ms\":$1,\"bandwidth\":$(($2 * 1048576))}" "$EP/-/faults" >/dev/null
}

# shellcheck disable=SC2086 # COSFS_ARGS is a list of options
mount_cosfs() { "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$WORK/cache" $COSFS_ARGS; }
mount_rclone() {
  env -u AWS_CA_BUNDLE RCLONE_S3_PROVIDER=Other RCLONE_S3_ENDPOINT="$EP" RCLONE_S3_ENV_AUTH=false \
    rclone mount ":s3:$BUCKET" "$MNT" --vfs-cache-mode off --daemon --log-file "$WORK/rclone.log"
  for _ in $(seq 100); do mountpoint -q "$MNT" && return; sleep 0.1; done
}

fs_seq() { # mount-fn [read-first]: MiB/s of dd onto a fresh mount, ending with fsync
  "$1"
  [ -z "${2:-}" ] || cat "$MNT/read-first.bin" > /dev/null
  local t0; t0=$(now)
  dd if="$WORK/src.bin" of="$MNT/seq-$1${2:+-after-read}.bin" bs=1M conv=fsync status=none
  local s; s=$(since "$t0"); unmount_any
  awk -v m="$SIZE_MIB" -v s="$s" 'BEGIN { printf "%.1f", m / s }'
}
fs_many() { # files/s
  "$1"; mkdir -p "$MNT/many-$1"
  local r; r=$($RAW write-files "$MNT/many-$1" "$N" 4096 | fig); unmount_any; echo "$r"
}
fs_many_parallel() { # files/s: N files from 8 processes at once, each into its own directory
  "$1"
  local t0 pids=""; t0=$(now)
  for p in 1 2 3 4 5 6 7 8; do
    mkdir -p "$MNT/par-$1/$p"
    $RAW write-files "$MNT/par-$1/$p" $((N / 8)) 4096 >/dev/null & pids="$pids $!"
  done
  # shellcheck disable=SC2086 # a list of pids
  wait $pids
  local s; s=$(since "$t0"); unmount_any
  awk -v n=$((N / 8 * 8)) -v s="$s" 'BEGIN { printf "%.1f", n / s }'
}
fs_append() { # seconds to append 1 KiB to a 256 MiB file
  "$1"
  local t0; t0=$(now)
  head -c 1024 "$WORK/src.bin" >> "$MNT/app-$1.bin"
  local s; s=$(since "$t0"); unmount_any; echo "$s"
}
fs_tar() { # seconds for tar -xf of the tree ("failed" if the tool refused it)
  "$1"; mkdir -p "$MNT/tar-$1"
  local t0; t0=$(now)
  if tar -xf "$WORK/tree.tar" -C "$MNT/tar-$1" 2>"$WORK/tar-$1.err"; then since "$t0"; else echo failed; fi
  unmount_any
}
fs_rm() { # requests the server saw for rm -r of the extracted tree, by kind, and the time
  "$1"; stats_reset
  local t0; t0=$(now)
  rm -rf "$MNT/tar-$1" 2>/dev/null || true
  local s; s=$(since "$t0"); unmount_any
  curl -sf "$EP/-/stats" | python3 -c '
import json, sys
r = json.load(sys.stdin).get("requests", {})
d = r.get("DeleteObject", 0) + r.get("DeleteMultiple", 0)
print("%d requests (%d HEAD, %d LIST, %d DELETE) in %s s" % (sum(r.values()), r.get("HeadObject", 0), r.get("ListObjects", 0), d, sys.argv[1]))' "$s"
}
fs_rename() { # seconds for mv of a directory of N files
  "$1"
  local t0; t0=$(now)
  mv "$MNT/ren-$1" "$MNT/ren-$1-moved"
  local s; s=$(since "$t0"); unmount_any; echo "$s"
}
tools() { echo cosfs; [ "$HAVE_S3FS" = yes ] && echo s3fs; [ "$HAVE_RCLONE" = yes ] && echo rclone; return 0; }

for SC in $SCENARIOS; do
  LAT=${SC%%:*}
  BW=$([ "$SC" = "$LAT" ] && echo 0 || echo "${SC#*:}")
  echo
  echo "== injected latency: $LAT ms per request, bandwidth cap per request: $([ "$BW" = 0 ] && echo none || echo "$BW MiB/s") =="
  # Fixtures for append and rename, made without faults.
  faults 0 0
  $SEED seed read-first.bin 512 >/dev/null
  for T in raw $(tools | grep -vx rclone); do
    $SEED seed "app-mount_$T.bin" 256 >/dev/null
    $RAW put-many "ren-mount_$T" "$N" 4096 >/dev/null
  done
  faults "$LAT" "$BW"

  raw=$($RAW put-big "seq-raw.bin" "$SIZE_MIB" | fig); line="sequential write $SIZE_MIB MiB: raw client $raw MiB/s"
  for T in $(tools); do v=$(fs_seq "mount_$T"); line="$line | $T $v MiB/s ($(ratio "$v" "$raw")x, peak RSS $(peak) MiB)"; done
  echo "$line"
  line="sequential write $SIZE_MIB MiB after reading 512 MiB on the same mount:"
  for T in $(tools); do v=$(fs_seq "mount_$T" read-first); line="$line | $T $v MiB/s ($(ratio "$v" "$raw")x, peak RSS $(peak) MiB)"; done
  echo "$line"

  raw=$($RAW put-many "many-raw" "$N" 4096 | fig); line="create $N 4 KiB files: raw client $raw PUT/s"
  for T in $(tools); do v=$(fs_many "mount_$T"); line="$line | $T $v files/s ($(ratio "$v" "$raw")x, peak RSS $(peak) MiB)"; done
  echo "$line"
  line="create $N 4 KiB files from 8 processes at once:"
  for T in $(tools); do v=$(fs_many_parallel "mount_$T"); line="$line | $T $v files/s (peak RSS $(peak) MiB)"; done
  echo "$line"

  raw=$($RAW append "app-mount_raw.bin" 1024 | fig); line="append 1 KiB to 256 MiB: raw client $raw s"
  for T in $(tools | grep -vx rclone); do v=$(fs_append "mount_$T"); line="$line | $T $v s ($(ratio "$v" "$raw")x the time)"; done
  echo "$line"

  raw=$($RAW rename "ren-mount_raw" "ren-raw-moved" | fig); line="rename a directory of $N files: raw client $raw s"
  for T in $(tools | grep -vx rclone); do v=$(fs_rename "mount_$T"); line="$line | $T $v s ($(ratio "$v" "$raw")x the time)"; done
  echo "$line"

  line="tar -xf of 2,000 files in 120 directories ($(du -sm "$WORK/tree" | cut -f1) MiB):"
  for T in $(tools | grep -vx rclone); do v=$(fs_tar "mount_$T"); line="$line | $T $v s (peak RSS $(peak) MiB)"; done
  echo "$line"
  line="rm -r of that tree ($TREE_ENTRIES files and directories), requests sent:"
  for T in $(tools | grep -vx rclone); do line="$line | $T $(fs_rm "mount_$T")"; done
  echo "$line"
done

#!/usr/bin/env bash
# Log-append benchmark: COUNT appends of one LINE-byte line to a SEED_MIB log, each its own
# open/write/close (`echo line >> log`, as a shell script or a logger that reopens does), at
# LATENCY_MS per request on a local `cosfs serve`. Compared: the raw client doing the same
# appends with APPEND Object (the floor), cosfs on an appendable object (APPEND Object at each
# close), cosfs on a normal object (each close rebuilds it: Upload Part - Copy of the old
# bytes + one part), and s3fs-fuse on a normal object, when installed. rclone without its
# cache cannot append, so it sits out (as in bench-write.sh). Prints appends/s, the requests
# the server saw by kind, the bytes uploaded, and the peak RSS of the mount. Needs root.
#
#   scripts/bench-append.sh [COUNT=200] [SEED_MIB=64] [LATENCY_MS=10] [LINE=120]
set -euo pipefail
COUNT=${1:-200}
SEED_MIB=${2:-64}
LAT=${3:-10}
LINE=${4:-120}
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs cosfs-bench-read cosfs-bench-write"
. scripts/lib/bench.sh
bench_init cosfs-bench-append
. scripts/lib/serve.sh
start_serve
RAW="$BIN/cosfs-bench-write --endpoint $EP --bucket $BUCKET"
HAVE_S3FS=$(command -v s3fs >/dev/null && echo yes || echo no)
echo "server: $EP  appends: $COUNT x $LINE B onto $SEED_MIB MiB  latency: $LAT ms  s3fs: $HAVE_S3FS"

mount_cosfs() { "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$WORK/cache"; }
faults() { curl -sf -X PUT -d "{\"latency_ms\":$1}" "$EP/-/faults" >/dev/null; }
bytes_in() { curl -sf "$EP/-/stats" | grep -o '"bytes_in":[0-9]*' | cut -d: -f2; }
requests() { # the non-zero request counts, "Name N, ..."
  curl -sf "$EP/-/stats" | python3 -c 'import json,sys; r=json.load(sys.stdin)["requests"]; print(", ".join(f"{k} {v}" for k,v in sorted(r.items()) if v))'
}
line_text=$(head -c "$LINE" /dev/zero | tr '\0' 'x')

# Fixtures, without latency: the raw client's and cosfs's appendable logs, normal logs.
$RAW append-object raw.log 0 0 --seed-mib "$SEED_MIB" >/dev/null
$RAW append-object app-cosfs.log 0 0 --seed-mib "$SEED_MIB" >/dev/null
for k in normal-cosfs.log normal-s3fs.log; do $RAW put-big "$k" "$SEED_MIB" >/dev/null; done
faults "$LAT"

stats_reset
raw=$($RAW append-object raw.log "$COUNT" $((LINE + 1)) | fig)
echo "raw client, APPEND Object: $raw appends/s  [$(requests); $(bytes_in) bytes up]"

run() { # label mount-fn file
  "$2"; stats_reset
  local t0 s; t0=$(now)
  for _ in $(seq "$COUNT"); do echo "$line_text" >> "$MNT/$3"; done
  s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  local reqs up; reqs=$(requests); up=$(bytes_in)
  unmount_any
  local rate; rate=$(awk -v n="$COUNT" -v s="$s" 'BEGIN { printf "%.1f", n / s }')
  echo "$1: $rate appends/s ($(ratio "$rate" "$raw")x raw), peak RSS $(peak) MiB  [$reqs; $up bytes up]"
}
run "cosfs, appendable object" mount_cosfs app-cosfs.log
run "cosfs, normal object" mount_cosfs normal-cosfs.log
[ "$HAVE_S3FS" = yes ] && run "s3fs, normal object" mount_s3fs normal-s3fs.log
# Every log holds its seed and every line, in order.
want=$((SEED_MIB * 1048576 + COUNT * (LINE + 1)))
for k in raw.log app-cosfs.log normal-cosfs.log; do
  got=$(curl -sfI "$EP/$BUCKET/$k" | tr -d '\r' | awk 'tolower($1) == "content-length:" { print $2 }')
  [ "$got" = "$want" ] || echo "WARNING: $k is $got bytes, expected $want"
done

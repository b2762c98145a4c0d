#!/usr/bin/env bash
# What each kind of write costs in requests: the server's counters for one operation at a
# time on a fresh release mount over a local `cosfs serve` with LATENCY_MS added to every
# request, and the wall time. Needs root (FUSE).
#
#   scripts/write-costs.sh [SIZE_MIB=256] [LATENCY_MS=10]
#
# Rows: a new 4 KiB file (`cp`), a new file of SIZE_MIB (`dd bs=1M conv=fsync`: multipart),
# an overwrite of it, `cp -p` of it (its times are set after the writes, so after the upload
# began), `chmod` of a closed file, and `mv` of a directory of 100 files. The HEAD and LIST
# counts include the lookups the tools themselves make.
set -euo pipefail
SIZE_MIB=${1:-256}
LATENCY_MS=${2:-10}
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs"
. scripts/lib/bench.sh
bench_init cosfs-write-costs
. scripts/lib/serve.sh
start_serve
curl -sf -X PUT "$EP/-/faults" -d "{\"latency_ms\":$LATENCY_MS}" >/dev/null
"$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$WORK/cache"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src"
head -c 4096 /dev/urandom > "$WORK/small"
counts() {
  curl -sf "$EP/-/stats" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["requests"]
print(", ".join(f"{k} {v}" for k, v in sorted(ops.items()) if v))'
}
row() { # LABEL COMMAND...
  local label=$1
  shift
  stats_reset
  local t0 t1
  t0=$(now)
  "$@"
  t1=$(now)
  printf '| %s | %.2f s | %s |\n' "$label" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$(counts)"
}
echo "server: $EP  latency: ${LATENCY_MS} ms  file: $SIZE_MIB MiB"
echo "| write | time | requests the server saw |"
echo "| --- | --- | --- |"
mkdir "$MNT/d"
sleep 1.2
row "new 4 KiB file (cp)" cp "$WORK/small" "$MNT/d/small"
row "new $SIZE_MIB MiB file (dd bs=1M conv=fsync)" dd if="$WORK/src" of="$MNT/d/big" bs=1M conv=fsync status=none
sleep 1.2
row "overwrite of it (dd bs=1M conv=fsync)" dd if="$WORK/src" of="$MNT/d/big" bs=1M conv=fsync status=none
row "cp -p of $SIZE_MIB MiB" cp -p "$WORK/src" "$MNT/d/big2"
row "chmod of a closed file" chmod 600 "$MNT/d/small"
mkdir "$MNT/tree"
for i in $(seq 1 100); do cp "$WORK/small" "$MNT/tree/f$i"; done
sleep 1.2
row "mv of a directory of 100 files" mv "$MNT/tree" "$MNT/tree2"

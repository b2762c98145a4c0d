#!/usr/bin/env bash
# Object-client throughput against a local `cosfs serve`, beside curl doing the same transfer
# over the same server in the same run (a peer measured on this machine, not a remembered number).
#
#   scripts/bench-client.sh [SIZE_MIB] [PART_MIB] [CONCURRENCY]
#
# The server stores on disk under $BENCH_DIR (default: a temp dir in /tmp) and fsyncs every
# object, so results are bounded by that disk as much as by the client.
set -euo pipefail
SIZE_MIB=${1:-1024}
PART_MIB=${2:-8}
CONC=${3:-8}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin cosfs --bin cosfs-bench
BIN=target/release
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cosfs-bench.XXXXXX")
BUCKET=bench-1250000000
cleanup() { [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
. scripts/lib/serve.sh
start_serve
echo "server: $EP  object: ${SIZE_MIB} MiB  part: ${PART_MIB} MiB  in flight: $CONC  cores: $(nproc)"

"$BIN/cosfs-bench" --endpoint "$EP" --bucket "$BUCKET" --size-mib "$SIZE_MIB" \
    --part-mib "$PART_MIB" --concurrency "$CONC" --anonymous | tee "$WORK/client.txt"

# Peer: curl, one stream each way, same bytes.
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/blob"
cput=$(curl -sf -T "$WORK/blob" "$EP/$BUCKET/curl-object" -o /dev/null -w '%{speed_upload}')
read -r cget cgot < <(curl -sf "$EP/$BUCKET/curl-object" -o /dev/null -w '%{speed_download} %{size_download}\n')
[ "$cgot" = $((SIZE_MIB << 20)) ] || { echo "curl got $cgot bytes, expected $((SIZE_MIB << 20))"; exit 1; }
cput=$(awk -v b="$cput" 'BEGIN { printf "%.1f", b / 1048576 }')
cget=$(awk -v b="$cget" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "curl put: $cput MiB/s (one stream)"
echo "curl get: $cget MiB/s (one stream)"

put=$(grep -o 'put: .* = [0-9.]*' "$WORK/client.txt" | awk '{print $NF}')
get=$(grep -o 'get: .* = [0-9.]*' "$WORK/client.txt" | awk '{print $NF}')
awk -v p="$put" -v g="$get" -v cp="$cput" -v cg="$cget" \
    'BEGIN { printf "ratio client/curl: put %.2fx  get %.2fx\n", p/cp, g/cg }'

#!/usr/bin/env bash
# Fault soak: a release cosfs mount writes a tree (one SIZE_MIB file and FILES small files in
# 100 directories, copied in with cp -r) and reads it back, against a local `cosfs serve`
# answering 10 % of requests 503 SlowDown and dropping 1 % of connections (GETs halfway
# through the body). Every byte is compared (diff -r against the local tree, through the
# first mount after dropping the kernel's caches, then through a fresh mount). Then
# KILL_ROUNDS rounds of: overwrite the big file with dd, kill -9 the mount at a random moment,
# remount on the same path, and check that the big file is either the old or the new version
# (never a mix, never empty) and the tree is intact. Then, under the same faults, fsx runs
# FSX_OPS random operations on one file and stress-ng's filesystem stressors that a bucket
# can serve run 2 instances each for 10 s with --verify (an fsstress-like mix). Prints times,
# injected faults, peak RSS of the mount and the multipart uploads left behind. Needs root
# (FUSE, drop_caches), fsx (cargo install fsx) and stress-ng.
#
#   scripts/soak.sh [SIZE_MIB=1024] [FILES=10000] [KILL_ROUNDS=0] [FSX_OPS=100000]
set -euo pipefail
SIZE_MIB=${1:-1024}
FILES=${2:-10000}
ROUNDS=${3:-0}
FSX_OPS=${4:-100000}
FSX=$(command -v fsx || echo "${CARGO_HOME:-$HOME/.cargo}/bin/fsx")
[ -x "$FSX" ] || { echo "fsx is not installed: cargo install fsx" >&2; exit 1; }
command -v stress-ng >/dev/null || { echo "stress-ng is not installed" >&2; exit 1; }
cd "$(dirname "$0")/.."
BENCH_BINS="cosfs"
. scripts/lib/bench.sh
bench_init cosfs-soak
. scripts/lib/serve.sh
start_serve
echo "server: $EP  big file: $SIZE_MIB MiB  small files: $FILES  kill rounds: $ROUNDS  cores: $(nproc)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
faults() { curl -sf -X PUT -d "$1" "$EP/-/faults" >/dev/null; }
injected() { curl -sf "$EP/-/stats" | grep -o '"InjectedFault":[0-9]*' | cut -d: -f2 || echo 0; }
MOUNT_PID=
mount_fg() { # the mount runs in the foreground of a background job, so its pid is known
  "$BIN/cosfs" mount "$BUCKET" "$MNT" --endpoint "$EP" --anonymous --cache-dir "$WORK/cache" \
    -f --log-file "$WORK/mount.log" > "$WORK/mount.out" 2>&1 &
  MOUNT_PID=$!
  for _ in $(seq 100); do grep -q "mounted on" "$WORK/mount.out" && return; sleep 0.1; done
  cat "$WORK/mount.out" >&2
  exit 1
}
peak_rss() { awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$MOUNT_PID/status"; }
unmount_fg() {
  "$BIN/cosfs" unmount "$MNT"
  wait "$MOUNT_PID" || true
}
uploads_left() {
  "$BIN/cosfs" check "$BUCKET" --endpoint "$EP" --anonymous --read-only 2>/dev/null |
    sed -n 's/.*unfinished uploads: \([0-9]*\) in progress.*/\1/p'
}

# The local tree: the big file and FILES small files of 1 byte to 64 KiB.
mkdir -p "$WORK/local/tree"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/local/big.bin"
python3 - "$WORK/local/tree" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(1, 65536)))
EOF

faults '{"rate_503":0.10,"drop_rate":0.01}'
mount_fg
t=$(now)
cp "$WORK/local/big.bin" "$MNT/big.bin"
echo "write big file: $(since "$t") s"
t=$(now)
cp -r "$WORK/local/tree" "$MNT/tree"
echo "write $FILES small files (cp -r): $(since "$t") s"
echo 3 > /proc/sys/vm/drop_caches
t=$(now)
cmp "$WORK/local/big.bin" "$MNT/big.bin"
echo "read back big file (cmp): $(since "$t") s"
t=$(now)
diff -r "$WORK/local/tree" "$MNT/tree"
echo "read back small files (diff -r): $(since "$t") s"
echo "peak RSS of the mount: $(peak_rss)"
unmount_fg
mount_fg
cmp "$WORK/local/big.bin" "$MNT/big.bin"
diff -r "$WORK/local/tree" "$MNT/tree"
echo "fresh mount: every byte matches"

for round in $(seq "$ROUNDS"); do
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/local/next.bin"
  dd if="$WORK/local/next.bin" of="$MNT/big.bin" bs=1M status=none 2>/dev/null &
  DD=$!
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.1f", 0.5 + (r % 30) / 10 }')"
  kill -9 "$MOUNT_PID"
  wait "$MOUNT_PID" 2>/dev/null || true
  wait "$DD" 2>/dev/null && finished=yes || finished=no
  mount_fg # replaces the dead mount on the same path
  if cmp -s "$WORK/local/big.bin" "$MNT/big.bin"; then
    outcome="old version"
  elif cmp -s "$WORK/local/next.bin" "$MNT/big.bin"; then
    outcome="new version"
    mv "$WORK/local/next.bin" "$WORK/local/big.bin"
  else
    echo "round $round: big.bin is neither the old nor the new version" >&2
    exit 1
  fi
  diff -r "$WORK/local/tree" "$MNT/tree"
  echo "kill -9 round $round: dd finished: $finished; after remount big.bin is the $outcome; tree intact"
done

t=$(now)
"$FSX" -N "$FSX_OPS" -S 7 -P "$WORK" "$MNT/fsx.data" > "$WORK/fsx.out" 2>&1 \
  || { tail -20 "$WORK/fsx.out" >&2; exit 1; }
echo "fsx, $FSX_OPS operations: $(since "$t") s, $(tail -1 "$WORK/fsx.out")"
mkdir "$MNT/stress"
t=$(now)
for s in access chdir chmod chown copy-file dentry dir dirdeep dirmany dup fcntl filename fsize \
  fstat getdent hdd io iomix lockf open rename symlink sync-file touch utime; do
  # hdd unlinks its file while writing: rounds within one part (README: unlink of an open file)
  extra=$([ "$s" = hdd ] && echo "--hdd-bytes 4M" || true)
  # shellcheck disable=SC2086
  stress-ng --"$s" 2 $extra --timeout 10 --verify --temp-path "$MNT/stress" > "$WORK/stress.out" 2>&1 \
    || { echo "stress-ng --$s failed:" >&2; cat "$WORK/stress.out" >&2; exit 1; }
done
[ -z "$(ls -A "$MNT/stress")" ] || { echo "stress-ng left files behind" >&2; exit 1; }
echo "stress-ng filesystem mix (25 stressors x 10 s): $(since "$t") s, all passed"
echo "peak RSS of the mount: $(peak_rss)"

echo "injected 503s: $(injected)"
unmount_fg
faults '{}'
echo "multipart uploads left: $(uploads_left) (kill -9 leaves the one in progress; cosfs check --abort-stale-uploads removes them after a day)"

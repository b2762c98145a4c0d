# Sourced by the benchmark scripts: start a release `cosfs serve --anonymous` on a free loopback
# port with bucket $BUCKET, storing under $WORK/store. Sets SRV (pid) and EP (endpoint URL).
# The caller's EXIT trap must kill "$SRV".
start_serve() {
  "$BIN/cosfs" serve --root "$WORK/store" --listen 127.0.0.1:0 --anonymous --bucket "$BUCKET" \
    --log-level warn > "$WORK/serve.out" &
  SRV=$!
  for _ in $(seq 50); do grep -q http "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  EP=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out")
}

#!/usr/bin/env bash
# The one test command: formatting, lints, then every unit and integration test.
# Tests start their own `cosfs serve` on random loopback ports in temp dirs; nothing to set up.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# The systemd units in systemd/, against the binary the tests just built.
scripts/verify-units.sh "$PWD/target/debug/cosfs"

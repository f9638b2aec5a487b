#!/usr/bin/env bash
# Builds Accord and runs everything in one process (`accord up`): the API on
# 127.0.0.1:8080, a worker, and an embedded SQLite database in ./accord-data.
#
#   ./scripts/up.sh                           defaults
#   ./scripts/up.sh --allow-private-targets   arguments go to `accord up`
#
# Needs a Rust toolchain (rustup, stable); installs pkg-config and a C
# compiler when they are missing (apt-get, as root or via sudo).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ACCORD_ROOT"

require_cargo
ensure_commands "${ACCORD_BUILD_DEPS[@]}"

log "building: cargo build --release --locked -p accord"
cargo build --release --locked -p accord

exec "${CARGO_TARGET_DIR:-target}/release/accord" up "$@"

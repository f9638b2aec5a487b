#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine or CI (CI=true):
# installs what is missing, then runs formatting, lint and every test.
#
#   ./scripts/test.sh                      everything
#   ./scripts/test.sh -E 'package(=accord)'  extra arguments go to `cargo nextest run`
#
# Needs a Rust toolchain (rustup, stable); installs pkg-config, a C compiler,
# python3 and cargo-nextest when they are missing (apt-get, as root or via sudo),
# schemathesis (the API fuzzer, from PyPI) into target/schemathesis-venv, and
# moto (an S3-compatible server for the artifact tests, from PyPI) into
# target/moto-venv.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ACCORD_ROOT"

started=$SECONDS
trap 'status=$?; if [ "$status" -eq 0 ]; then log "all checks passed in $((SECONDS - started)) s"; else log "FAILED (exit $status) after $((SECONDS - started)) s"; fi' EXIT

log "setup"
require_cargo
ensure_commands "${ACCORD_BUILD_DEPS[@]}" "${ACCORD_TEST_DEPS[@]}"
ensure_rust_component rustfmt
ensure_rust_component clippy
ensure_nextest
ensure_schemathesis
ensure_moto
# The store conformance suite runs on PostgreSQL too; the cluster suite
# (shared rate limits, event fan-out) on Redis.
ensure_service postgres required
ensure_service redis required
# Trust authentication (this machine) ignores the password; a fresh install
# made by postgres_install has it set.
export ACCORD_TEST_POSTGRES_URL=${ACCORD_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}

profile=default
if is_ci; then
    profile=ci
    # A CI run builds once from scratch: incremental data (several GiB for
    # the debug build) would only fill the disk.
    export CARGO_INCREMENTAL=0
fi
# The debug build and its test binaries take about 10 GiB; say so up front
# rather than failing in the linker with "No space left on device".
free_kib=$(df -Pk "$ACCORD_ROOT" | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((12 * 1024 * 1024)) ]; then
    log "warning: only $((free_kib / 1024)) MiB free on $(df -P "$ACCORD_ROOT" | awk 'NR == 2 { print $6 }'); the build needs about 12 GiB"
fi

log "format: cargo fmt --all -- --check"
cargo fmt --all -- --check

log "lint: cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "test: cargo nextest run --workspace --locked --no-fail-fast --profile $profile $*"
cargo nextest run --workspace --locked --no-fail-fast --profile "$profile" "$@"

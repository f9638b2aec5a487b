# shellcheck shell=bash
# Helpers shared by scripts/up.sh and scripts/test.sh. Source it, do not run it.
#
# What a fresh Debian machine lacks is installed with apt-get, and only when
# it is missing. Everything here is idempotent: running a script twice does
# nothing the second time but the work itself.

ACCORD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Commands the build needs, as "command:debian-package". To need one more
# tool, add one line here.
ACCORD_BUILD_DEPS=(
    "pkg-config:pkg-config"
    "gcc:build-essential"
    # The browser engine drives Debian's headless-only Chromium build (about
    # three times the jobs per second of the full `chromium` at half its
    # memory). Without it a worker still runs HTTP jobs; the browser tests
    # need it.
    "chromium-headless-shell:chromium-headless-shell"
)
# Commands the test suite needs on top of the build's.
ACCORD_TEST_DEPS=(
    "python3:python3"
)

log() { printf '==> %s\n' "$*" >&2; }
note() { printf 'note: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Whether this is a CI run (CI=true, as most CI systems set it).
is_ci() {
    case "${CI:-}" in
        "" | false | 0) return 1 ;;
        *) return 0 ;;
    esac
}

# Runs a command as root: directly when we are root, else through sudo
# (never prompting when there is no terminal to prompt on). Returns non-zero,
# without exiting, when that is impossible.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then
            sudo "$@"
        else
            sudo -n "$@"
        fi
    else
        printf 'error: "%s" needs root, and sudo is not installed\n' "$*" >&2
        return 1
    fi
}

# A Rust toolchain is the one thing these scripts do not install.
require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # rustup installed it, but this shell has not picked up its PATH yet.
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        die "cargo not found. Accord needs a Rust toolchain (rustup, stable channel):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain stable
    . \"\$HOME/.cargo/env\"
then run this script again."
    fi
}

_ACCORD_APT_UPDATED=""

# ensure_commands "cmd:package"...: installs, with apt-get, the package of
# every command that is not on PATH. `apt-get update` runs once, and only if
# something must be installed.
ensure_commands() {
    local entry missing=()
    for entry in "$@"; do
        if ! command -v "${entry%%:*}" >/dev/null 2>&1; then
            case " ${missing[*]-} " in
                *" ${entry#*:} "*) ;;
                *) missing+=("${entry#*:}") ;;
            esac
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    install_packages "${missing[@]}"
}

# install_packages PACKAGE...: installs Debian packages with apt-get.
install_packages() {
    command -v apt-get >/dev/null 2>&1 ||
        die "missing system packages: $*. Install them with your package manager (these scripts know apt-get only)."
    log "installing missing system packages: $*"
    if [ -z "$_ACCORD_APT_UPDATED" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
            die "apt-get update failed (run as root, or with sudo)"
        _ACCORD_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" ||
        die "could not install: $*"
}

# ensure_rust_component NAME: rustfmt and clippy come with rustup's default
# profile, but not with its minimal one.
ensure_rust_component() {
    local component=$1 probe
    case "$component" in
        rustfmt) probe=(cargo fmt --version) ;;
        clippy) probe=(cargo clippy --version) ;;
        *) die "unknown rust component $component" ;;
    esac
    "${probe[@]}" >/dev/null 2>&1 && return 0
    command -v rustup >/dev/null 2>&1 || die "${probe[*]} does not work and rustup is not installed to add $component"
    log "adding the $component component (rustup)"
    rustup component add "$component"
}

ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return 0
    log "installing cargo-nextest (once; this compiles it and takes a few minutes)"
    cargo install cargo-nextest --locked
}

# The API fuzzer of crates/accord/tests/fuzz.rs, with the libraries that
# generate its test cases pinned too: the cases follow from these versions
# and the seed, so a new version is a deliberate bump (schemathesis's in that
# test as well).
ACCORD_SCHEMATHESIS_REQUIREMENTS=(
    "schemathesis==4.32.5"
    "hypothesis==6.170.15"
    "jsonschema-rs==0.60.3"
)

# ensure_schemathesis: installs ACCORD_SCHEMATHESIS_REQUIREMENTS from PyPI
# into a virtualenv under target/, unless that is what it already holds, and
# exports ACCORD_SCHEMATHESIS, the path of its `st` command, for the test.
ensure_schemathesis() {
    local venv="$ACCORD_ROOT/target/schemathesis-venv"
    local stamp="$venv/accord-requirements.txt"
    export ACCORD_SCHEMATHESIS="$venv/bin/st"
    if [ -x "$ACCORD_SCHEMATHESIS" ] && [ -f "$stamp" ] &&
        [ "$(cat "$stamp")" = "${ACCORD_SCHEMATHESIS_REQUIREMENTS[*]}" ]; then
        return 0
    fi
    # Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
    python3 -c 'import ensurepip' >/dev/null 2>&1 || install_packages python3-venv
    log "installing ${ACCORD_SCHEMATHESIS_REQUIREMENTS[*]} into $venv (once)"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "could not create a Python virtualenv in $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${ACCORD_SCHEMATHESIS_REQUIREMENTS[@]}" ||
        die "could not install ${ACCORD_SCHEMATHESIS_REQUIREMENTS[*]} from PyPI"
    printf '%s' "${ACCORD_SCHEMATHESIS_REQUIREMENTS[*]}" >"$stamp"
}

# The S3-compatible server the artifact tests store blobs on (crates/
# test-support's ThrowawayS3 starts one per test on loopback): moto's server
# mode, pinned like schemathesis so a new version is a deliberate bump.
ACCORD_MOTO_REQUIREMENTS=(
    "moto[server]==5.2.5"
)

# ensure_moto: installs ACCORD_MOTO_REQUIREMENTS from PyPI into a virtualenv
# under target/, unless that is what it already holds, and exports
# ACCORD_MOTO_SERVER, the path of its `moto_server` command, for the tests.
ensure_moto() {
    local venv="$ACCORD_ROOT/target/moto-venv"
    local stamp="$venv/accord-requirements.txt"
    export ACCORD_MOTO_SERVER="$venv/bin/moto_server"
    if [ -x "$ACCORD_MOTO_SERVER" ] && [ -f "$stamp" ] &&
        [ "$(cat "$stamp")" = "${ACCORD_MOTO_REQUIREMENTS[*]}" ]; then
        return 0
    fi
    python3 -c 'import ensurepip' >/dev/null 2>&1 || install_packages python3-venv
    log "installing ${ACCORD_MOTO_REQUIREMENTS[*]} into $venv (once)"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "could not create a Python virtualenv in $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${ACCORD_MOTO_REQUIREMENTS[@]}" ||
        die "could not install ${ACCORD_MOTO_REQUIREMENTS[*]} from PyPI"
    printf '%s' "${ACCORD_MOTO_REQUIREMENTS[*]}" >"$stamp"
}

# --- Services --------------------------------------------------------------
#
# ensure_service NAME [optional|required]: makes sure a local service answers
# on its default port, starting it when it is installed but stopped. NAME is
# postgres or redis (each has NAME_ready, NAME_installed and NAME_start).
# With `optional` a missing service is only a note; with `required` it is
# installed when the script knows how (NAME_install), else the run stops.

postgres_ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}
postgres_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 &&
        [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]
}
postgres_start() {
    local version
    version=$(ls /etc/postgresql | head -1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

# A fresh install: Debian's package creates the cluster; give the postgres
# role the password the tests use (ACCORD_TEST_POSTGRES_URL in test.sh), since
# Debian's default authentication over TCP asks for one.
postgres_install() {
    ensure_commands pg_ctlcluster:postgresql pg_isready:postgresql
    postgres_ready || postgres_start
    for _ in $(seq 1 20); do
        postgres_ready && break
        sleep 0.5
    done
    as_root runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'"
}

redis_ready() {
    command -v redis-cli >/dev/null 2>&1 &&
        [ "$(timeout 5 redis-cli -h 127.0.0.1 ping 2>/dev/null)" = "PONG" ]
}
redis_installed() {
    command -v redis-server >/dev/null 2>&1
}
redis_start() {
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
}
# The Redis tests also start throwaway servers of their own (redis-server).
redis_install() {
    ensure_commands redis-server:redis-server redis-cli:redis-tools
    redis_ready || redis_start
}

_service_unavailable() {
    local policy=$1 message=$2
    if [ "$policy" = required ]; then
        die "$message"
    fi
    note "$message; continuing, no test needs it"
}

ensure_service() {
    local name=$1 policy=${2:-optional}
    case "$policy" in
        optional | required) ;;
        *) die "ensure_service: policy must be optional or required, not $policy" ;;
    esac
    if "${name}_ready"; then
        log "$name is running"
        return 0
    fi
    if ! "${name}_installed"; then
        if [ "$policy" = required ] && declare -F "${name}_install" >/dev/null; then
            log "$name is not installed; installing it"
            "${name}_install"
        else
            _service_unavailable "$policy" "$name is not installed"
            return 0
        fi
    fi
    if "${name}_ready"; then
        log "$name is running"
        return 0
    fi
    log "$name is installed but not running; starting it"
    if "${name}_start"; then
        for _ in $(seq 1 20); do
            if "${name}_ready"; then
                log "$name is running"
                return 0
            fi
            sleep 0.5
        done
    fi
    _service_unavailable "$policy" "$name could not be started"
}

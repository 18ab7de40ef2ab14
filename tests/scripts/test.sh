#!/usr/bin/env bash
# Runs the whole RunbookPortal test suite on a fresh Debian machine:
#   1. makes sure PostgreSQL is installed and running and has the test role rbp_test,
#   2. makes sure Chromium is installed (for the Playwright end-to-end tests),
#   3. restores the .NET tools, builds the solution in Release and runs every test project.
# Extra arguments go to `dotnet test`, for example: tests/scripts/test.sh --filter "FullyQualifiedName~Audit"
#
# Environment (all optional):
#   RBP_TEST_POSTGRES  an Npgsql connection string for a role that may CREATE DATABASE;
#                      when set, the script does not install, start or configure PostgreSQL.
#   RBP_CHROMIUM       path of a Chromium binary; when set, the script does not install Chromium.
#   RBP_TEST_RUNAS     a throwaway user for the Engine:RunAs tests; as root the script creates rbp-step.
# The script exports RBP_REQUIRE_SERVICES=1 so that tests fail (instead of skipping) when a service is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO_ROOT="$(pwd)"

log() { printf '==> %s\n' "$*"; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo when it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root and sudo is not installed; run as root or set RBP_TEST_POSTGRES / RBP_CHROMIUM."
    fi
}

# Runs a command as the postgres OS user, from a directory that user can read.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    elif command -v sudo >/dev/null 2>&1; then
        (cd / && sudo -u postgres -- "$@")
    else
        die "'$*' must run as the postgres user and sudo is not installed."
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself."
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Highest PostgreSQL major version whose server binaries are installed (Debian layout), or empty.
pg_installed_version() {
    local dir ver=""
    for dir in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$dir" ] || continue
        dir="${dir#/usr/lib/postgresql/}"
        ver="$(printf '%s\n%s\n' "$ver" "${dir%%/*}" | sed '/^$/d' | sort -V | tail -n1)"
    done
    printf '%s' "$ver"
}

ensure_postgres() {
    if [ -n "${RBP_TEST_POSTGRES:-}" ]; then
        log "PostgreSQL: using the caller's RBP_TEST_POSTGRES"
        return
    fi

    local ver
    ver="$(pg_installed_version)"
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$ver" ]; then
        log "Installing PostgreSQL"
        apt_install postgresql
        ver="$(pg_installed_version)"
        [ -n "$ver" ] || die "PostgreSQL was installed but no /usr/lib/postgresql/<version>/bin/initdb was found."
    fi

    # pg_lsclusters -h: "<ver> <cluster> <port> <status> <owner> <datadir> <logfile>"
    local line
    line="$(pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main"' || true)"
    if [ -z "$line" ]; then
        log "Creating PostgreSQL cluster $ver/main"
        as_root pg_createcluster "$ver" main >/dev/null
        line="$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"')"
        [ -n "$line" ] || die "pg_createcluster $ver main did not create a cluster."
    fi

    local port status
    port="$(awk '{print $3}' <<<"$line")"
    status="$(awk '{print $4}' <<<"$line")"
    if [[ "$status" != online* ]]; then
        log "Starting PostgreSQL $ver/main on port $port"
        as_root pg_ctlcluster "$ver" main start
    else
        log "PostgreSQL $ver/main already running on port $port"
    fi

    local waited=0
    until pg_isready -q -h 127.0.0.1 -p "$port"; do
        if [ "$waited" -ge 30 ]; then
            die "PostgreSQL $ver/main did not accept connections on 127.0.0.1:$port within 30 s (see /var/log/postgresql/postgresql-$ver-main.log)."
        fi
        sleep 1
        waited=$((waited + 1))
    done

    local exists
    exists="$(as_postgres psql -p "$port" -X -v ON_ERROR_STOP=1 -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'rbp_test'")"
    if [ "$exists" != "1" ]; then
        log "Creating PostgreSQL role rbp_test"
        as_postgres psql -p "$port" -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE rbp_test LOGIN CREATEDB PASSWORD 'rbp_test'"
    else
        # Keep an existing role usable by the tests (password and CREATEDB may have been changed by hand).
        as_postgres psql -p "$port" -X -q -v ON_ERROR_STOP=1 -c "ALTER ROLE rbp_test LOGIN CREATEDB PASSWORD 'rbp_test'"
    fi

    export RBP_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=rbp_test;Password=rbp_test;Database=postgres"
    log "PostgreSQL ready: RBP_TEST_POSTGRES=Host=127.0.0.1;Port=$port;Username=rbp_test;Database=postgres"
}

ensure_chromium() {
    if [ -n "${RBP_CHROMIUM:-}" ]; then
        [ -x "$RBP_CHROMIUM" ] || die "RBP_CHROMIUM=$RBP_CHROMIUM is not an executable file."
        log "Chromium: using the caller's RBP_CHROMIUM=$RBP_CHROMIUM"
        return
    fi
    if [ ! -x /usr/bin/chromium ]; then
        log "Installing Chromium"
        apt_install chromium
    fi
    export RBP_CHROMIUM=/usr/bin/chromium
    log "Chromium ready: $("$RBP_CHROMIUM" --version 2>/dev/null || echo "$RBP_CHROMIUM")"
}

# The throwaway user that the Engine:RunAs tests run shell steps as; only root can switch to it, so only then.
ensure_step_user() {
    if [ -n "${RBP_TEST_RUNAS:-}" ]; then
        log "Step user: using the caller's RBP_TEST_RUNAS=$RBP_TEST_RUNAS"
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "Step user: not root, so the RunAs tests check that the portal refuses Engine:RunAs"
        return
    fi
    if ! id rbp-step >/dev/null 2>&1; then
        log "Creating the user rbp-step (shell steps run as it in the RunAs tests)"
        useradd --create-home --shell /usr/sbin/nologin rbp-step
    fi
    export RBP_TEST_RUNAS=rbp-step
}

command -v dotnet >/dev/null 2>&1 || die "dotnet is not on PATH; install the .NET SDK named in global.json."

log "Checking PostgreSQL"
ensure_postgres
log "Checking Chromium"
ensure_chromium
log "Checking the step user"
ensure_step_user
export RBP_REQUIRE_SERVICES=1

log "Restoring .NET tools"
dotnet tool restore

log "Building RunbookPortal.sln (Release)"
dotnet build "$REPO_ROOT/RunbookPortal.sln" -c Release

log "Running tests"
# The projects run in parallel and their output interleaves; a failure is repeated at the very end, where a
# truncated CI log still shows it.
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
status=0
dotnet test "$REPO_ROOT/RunbookPortal.sln" -c Release --no-build --logger "console;verbosity=normal" "$@" 2>&1 \
    | tee "$results/output.log" || status=$?
if [ "$status" -ne 0 ]; then
    printf '\ntest.sh: the failures, repeated:\n' >&2
    grep -E -A 12 '^\s+Failed [A-Za-z]|The active test run was aborted|Test host process crashed|error [A-Z]+[0-9]+:' \
        "$results/output.log" | grep -vE '"LogLevel":' | head -n 150 >&2 || true
    grep -E '^(Passed|Failed)!' "$results/output.log" >&2 || true
    exit "$status"
fi

log "All tests passed"

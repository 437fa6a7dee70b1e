# Sourced by run-pass-bench.sh and run-delivery-bench.sh: `run_db_bench NAME KNOB` runs
# `cargo bench --bench NAME` from the project's root with PostgreSQL's binaries on PATH (Debian
# keeps initdb and friends outside it; needed only without DATABASE_URL), prints the command
# (KNOB: its size setting, as run) and the commit, and keeps the output in
# target/NAME-bench/output.txt.
run_db_bench() {
    local bench=$1 knob=$2
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    if ! command -v initdb >/dev/null 2>&1; then
        for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
            PATH="$d:$PATH"
            break
        done
        export PATH
    fi
    local out=target/$bench-bench
    mkdir -p "$out"
    echo "== command: $knob cargo bench --bench $bench" \
         "(DATABASE_URL $([ -n "${DATABASE_URL:-}" ] && echo set || echo "unset: a private server"))"
    echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    cargo bench --bench "$bench" 2>&1 | tee "$out/output.txt"
}

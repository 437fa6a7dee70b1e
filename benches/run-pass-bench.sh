#!/usr/bin/env bash
# The hourly evaluation pass at scale (criterion-free bench `pass`, release mode): a fresh
# database with CPWATCH_BENCH_CASES synthetic open cases (default 100 000), then, in one run, the
# time to read what the pass reads (baseline), a full pass, a dry run and an idle pass an hour
# later, printed with their ratios to the baseline. See benches/PASS.md.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres benches/run-pass-bench.sh
#       # a new database on that server, dropped at the end
#   benches/run-pass-bench.sh
#       # no DATABASE_URL: a private PostgreSQL from the installed server binaries (cpwatch::pgserver)
#   CPWATCH_BENCH_CASES=1000000 benches/run-pass-bench.sh     # a regional deployment's size
#
# Output is also kept in target/pass-bench/output.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian keeps initdb and friends outside PATH (needed only without DATABASE_URL).
if ! command -v initdb >/dev/null 2>&1; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        PATH="$d:$PATH"
        break
    done
    export PATH
fi

out=target/pass-bench
mkdir -p "$out"
echo "== command: CPWATCH_BENCH_CASES=${CPWATCH_BENCH_CASES:-100000} cargo bench --bench pass" \
     "(DATABASE_URL $([ -n "${DATABASE_URL:-}" ] && echo set || echo "unset: a private server"))"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
cargo bench --bench pass 2>&1 | tee "$out/output.txt"

#!/usr/bin/env bash
# Delivery throughput (criterion-free bench `delivery`, release mode): `cpwatch deliver --once`
# draining CPWATCH_BENCH_MESSAGES queued deliveries (default 15 000, a morning backlog) from
# PostgreSQL into a fast SMTP sink on loopback, by 1 and by 3 processes, against the sink's own
# ceiling over one reused connection (and three). See benches/DELIVERY.md.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres benches/run-delivery-bench.sh
#       # a new database on that server, dropped at the end
#   benches/run-delivery-bench.sh
#       # no DATABASE_URL: a private PostgreSQL from the installed server binaries
#   CPWATCH_BENCH_MESSAGES=50000 benches/run-delivery-bench.sh
#
# Output is also kept in target/delivery-bench/output.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v initdb >/dev/null 2>&1; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        PATH="$d:$PATH"
        break
    done
    export PATH
fi

out=target/delivery-bench
mkdir -p "$out"
echo "== command: CPWATCH_BENCH_MESSAGES=${CPWATCH_BENCH_MESSAGES:-15000} cargo bench --bench delivery" \
     "(DATABASE_URL $([ -n "${DATABASE_URL:-}" ] && echo set || echo "unset: a private server"))"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
cargo bench --bench delivery 2>&1 | tee "$out/output.txt"

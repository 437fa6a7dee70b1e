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
. "$(dirname "$0")/db-bench.sh"
run_db_bench delivery "CPWATCH_BENCH_MESSAGES=${CPWATCH_BENCH_MESSAGES:-15000}"

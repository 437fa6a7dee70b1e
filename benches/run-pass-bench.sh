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
. "$(dirname "$0")/db-bench.sh"
run_db_bench pass "CPWATCH_BENCH_CASES=${CPWATCH_BENCH_CASES:-100000}"

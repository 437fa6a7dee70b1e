#!/usr/bin/env bash
# The census import at a large county's size: a synthetic extract of CENSUS_BENCH_MB
# megabytes (default 100, benches/census_gen.py), imported into a new database with
# `cpwatch import --format cin-census`, its peak memory (GNU time's maximum resident set) and
# wall time printed beside a floor measured in the same run: the same import of the 7-child
# test extract (memory), and reading the big file once with `wc -l` (time).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres benches/run-census-bench.sh
#   CENSUS_BENCH_BIN=target/debug/cpwatch ...   # an existing build (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server (the bench makes and drops a database on it)}"
mb=${CENSUS_BENCH_MB:-100}
bin=${CENSUS_BENCH_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/cpwatch
fi
out=target/census-bench
mkdir -p "$out"
python3 benches/census_gen.py "$mb" > "$out/extract.xml"
db="cpwatch_census_bench_$$"
server=${DATABASE_URL%/*}
psql "$DATABASE_URL" -qc "CREATE DATABASE $db"
trap 'psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
export CPWATCH_DATABASE__URL="$server/$db"
"$bin" migrate >/dev/null
"$bin" import tests/fixtures/census-bench-people.json >/dev/null
printf 'child,role,person\n*,team_manager,p-tm1\n*,social_worker,p-sw1\n*,conference_chair,p-ch1\n' > "$out/roles.csv"

measure() { # label, command...: prints label, seconds, peak KB
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > "$out/$label.out" 2>&1
    read -r secs kb < "$out/time.txt"
    echo "$label $secs $kb"
}
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; binary $bin"
echo "== extract: $(du -m "$out/extract.xml" | cut -f1) MB"
small=$(measure small "$bin" import --format cin-census --roles "$out/roles.csv" tests/fixtures/cin-census-2025.xml)
floor=$(measure wc wc -l "$out/extract.xml")
big=$(measure big "$bin" import --format cin-census --roles "$out/roles.csv" "$out/extract.xml")
again=$(measure again "$bin" import --format cin-census --roles "$out/roles.csv" "$out/extract.xml")
cat "$out/big.out" "$out/again.out"
read -r _ ss sk <<< "$small"; read -r _ ws wk <<< "$floor"; read -r _ bs bk <<< "$big"; read -r _ as ak <<< "$again"
python3 - "$ss" "$sk" "$ws" "$bs" "$bk" "$as" "$ak" <<'PY'
import sys
ss, sk, ws, bs, bk, as_, ak = map(float, sys.argv[1:])
print(f"| measurement | seconds | peak memory | ratio |")
print(f"|---|---|---|---|")
print(f"| floor (time): wc -l of the extract | {ws:.2f} | | 1 |")
print(f"| floor (memory): import of the 7-child test extract | {ss:.2f} | {sk/1024:.1f} MB | 1 |")
print(f"| first import of the large extract | {bs:.2f} | {bk/1024:.1f} MB | {bs/max(ws,0.01):.0f}x the read, {bk/sk:.2f}x the small import's memory |")
print(f"| the same extract again (nothing changes) | {as_:.2f} | {ak/1024:.1f} MB | {as_/max(ws,0.01):.0f}x the read, {ak/sk:.2f}x the small import's memory |")
PY
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

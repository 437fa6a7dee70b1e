#!/usr/bin/env bash
# Working-day offset and count: cpwatch (criterion bench `calendar`) against numpy's
# busday_offset / busday_count, on the same 10 million random dates with the same
# England-and-Wales holidays, in the same run. Prints both throughputs and the ratio, and fails
# if the two disagree on any answer (checksums) or if cpwatch is not at least 5x numpy.
#
#   benches/run-calendar-bench.sh                # full run, with criterion's statistics
#   CPWATCH_BENCH_CRITERION=0 benches/run-calendar-bench.sh   # only the head-to-head passes
#
# Needs python3 with numpy (pip install numpy). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset
# for the numpy run only.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/calendar-bench
mkdir -p "$out"
export CPWATCH_BENCH_DATA="$PWD/$out/dates.bin"
target_ratio="${CPWATCH_BENCH_TARGET:-5}"

echo "== machine: $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(nproc) cores"
echo "== cpwatch (cargo bench --bench calendar)"
cargo bench --bench calendar -- "$@" | tee "$out/cpwatch.txt"
echo "== numpy"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    python3 benches/calendar_numpy.py --data "$CPWATCH_BENCH_DATA" \
    --holidays src/calendar/bank-holidays.json --division england-and-wales | tee "$out/numpy.txt"

echo "== comparison"
python3 - "$out/cpwatch.txt" "$out/numpy.txt" "$target_ratio" <<'EOF'
import sys

def results(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("RESULT "):
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            out[kv["op"]] = kv
    return out

ours, theirs, target = results(sys.argv[1]), results(sys.argv[2]), float(sys.argv[3])
ok = True
tot_n = tot_ours = tot_theirs = 0.0
print(f"{'operation':<16} {'cpwatch dates/s':>16} {'numpy dates/s':>14} {'ratio':>7}  answers")
for op in ("offset_forward", "offset_backward", "count"):
    o, t = ours[op], theirs[op]
    same = o["checksum"] == t["checksum"] and o["n"] == t["n"]
    ratio = float(o["rate"]) / float(t["rate"])
    ok &= same and ratio >= target
    n = float(o["n"])
    tot_n += n
    tot_ours += float(o["seconds"])
    tot_theirs += float(t["seconds"])
    print(f"{op:<16} {float(o['rate']):>16,.0f} {float(t['rate']):>14,.0f} {ratio:>6.1f}x  "
          f"{'identical' if same else 'DIFFERENT'} (checksum {o['checksum']} / {t['checksum']})")
all_ours, all_theirs = tot_n / tot_ours, tot_n / tot_theirs
print(f"{'all three':<16} {all_ours:>16,.0f} {all_theirs:>14,.0f} {all_ours / all_theirs:>6.1f}x")
print(f"target: cpwatch >= {target:g}x numpy on every operation: {'met' if ok else 'NOT MET'}")
sys.exit(0 if ok else 1)
EOF

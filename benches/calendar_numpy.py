#!/usr/bin/env python3
"""numpy's busday_offset / busday_count on the dates written by `cargo bench --bench calendar`.

Same dates, same offsets, same England-and-Wales holidays (read from the compiled-in snapshot
src/calendar/bank-holidays.json), same semantics:

* cpwatch add_working_days(d, n), n >= 1   == numpy busday_offset(d,  n, roll='backward')
* cpwatch sub_working_days(d, n), n >= 1   == numpy busday_offset(d, -n, roll='forward')
* cpwatch working_days_between(a, b)       == numpy busday_count(a, b)

(cpwatch counts from d itself as day 0 whatever its weekday; rolling d back to the previous
working day before moving forward, or on to the next before moving back, gives the same day.)

numpy gets its best case: a precomputed busdaycalendar, preallocated output arrays, and the
best of several passes. Prints one RESULT line per operation, with a checksum of the results.
"""

import argparse
import json
import time

import numpy as np

PASSES = 5


def best_of(f):
    f()  # warm-up
    best = float("inf")
    for _ in range(PASSES):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def report(op, n, seconds, checksum):
    print(
        f"RESULT impl=numpy op={op} n={n} seconds={seconds:.6f} "
        f"rate={n / seconds:.0f} checksum={checksum}",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="target/calendar-bench/dates.bin")
    p.add_argument("--holidays", default="src/calendar/bank-holidays.json")
    p.add_argument("--division", default="england-and-wales")
    args = p.parse_args()

    raw = np.fromfile(args.data, dtype="<i4")
    if raw.size % 3:
        raise SystemExit(f"{args.data}: expected three equal int32 arrays")
    n = raw.size // 3
    a = raw[:n].astype("int64").view("datetime64[D]")
    k = raw[n : 2 * n].astype("int64")
    b = raw[2 * n :].astype("int64").view("datetime64[D]")
    neg_k = -k

    with open(args.holidays, encoding="utf-8") as f:
        feed = json.load(f)
    holidays = np.array([e["date"] for e in feed[args.division]["events"]], dtype="datetime64[D]")
    cal = np.busdaycalendar(weekmask="1111100", holidays=holidays)
    print(f"NUMPY version={np.__version__} n={n} holidays={holidays.size}", flush=True)

    out_d = np.empty(n, dtype="datetime64[D]")
    out_c = np.empty(n, dtype="int64")

    t = best_of(lambda: np.busday_offset(a, k, roll="backward", busdaycal=cal, out=out_d))
    report("offset_forward", n, t, int(out_d.astype("int64").sum()))
    t = best_of(lambda: np.busday_offset(a, neg_k, roll="forward", busdaycal=cal, out=out_d))
    report("offset_backward", n, t, int(out_d.astype("int64").sum()))
    t = best_of(lambda: np.busday_count(a, b, busdaycal=cal, out=out_c))
    report("count", n, t, int(out_c.sum()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Hold cpwatch's compiled-in bank-holiday snapshot against an independent, maintained source.

The snapshot (src/calendar/bank-holidays.json, the GOV.UK feed's shape) is what cpwatch counts
working days with until it has fetched the live feed. A one-off holiday missing from it (a
coronation, a jubilee, a World Cup final) makes every deadline across that day a day early.

This script compares every weekday holiday of the snapshot, per division, with the `holidays`
package from PyPI (UK subdivisions ENG, SCT, NIR), over the snapshot's years (2018-2027), and
prints each difference. Weekend dates are left out on both sides: GOV.UK lists only the weekday
a weekend holiday is moved to, and a weekend is not a working day either way.

    python3 -m venv /tmp/hv && /tmp/hv/bin/pip install holidays
    /tmp/hv/bin/python tools/check-bank-holidays.py            # exit 1 if they differ
    /tmp/hv/bin/python tools/check-bank-holidays.py --write-reference
        # rewrite tests/fixtures/bank-holidays-reference.json, which `cargo test --test
        # bank_holiday_snapshot` holds the snapshot against without needing the network

Run it when a new `holidays` release comes out or before shipping a new snapshot.
"""

import argparse
import datetime
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "src" / "calendar" / "bank-holidays.json"
REFERENCE = ROOT / "tests" / "fixtures" / "bank-holidays-reference.json"
DIVISIONS = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}
YEARS = range(2018, 2028)


def weekday(d: datetime.date) -> bool:
    return d.weekday() < 5


def snapshot_dates() -> dict:
    feed = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    out = {}
    for division in DIVISIONS:
        days = {}
        for e in feed[division]["events"]:
            d = datetime.date.fromisoformat(e["date"])
            if d.year in YEARS and weekday(d):
                days[d] = e["title"]
        out[division] = days
    return out


def independent_dates() -> tuple:
    import holidays  # pip install holidays

    out = {}
    for division, subdiv in DIVISIONS.items():
        cal = holidays.country_holidays("GB", subdiv=subdiv, years=list(YEARS))
        out[division] = {d: name for d, name in cal.items() if weekday(d)}
    return out, holidays.__version__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write-reference",
        action="store_true",
        help=f"write the independent source's dates to {REFERENCE.relative_to(ROOT)}",
    )
    args = parser.parse_args()
    ours = snapshot_dates()
    theirs, version = independent_dates()
    differences = 0
    for division in DIVISIONS:
        for d in sorted(set(ours[division]) | set(theirs[division])):
            if d not in ours[division]:
                print(f"{division}: {d} {d:%a} is a bank holiday ({theirs[division][d]}) "
                      f"that the snapshot lacks")
                differences += 1
            elif d not in theirs[division]:
                print(f"{division}: {d} {d:%a} is in the snapshot ({ours[division][d]}) "
                      f"but not a holiday in holidays {version}")
                differences += 1
    if args.write_reference:
        reference = {
            "source": f"holidays {version} (PyPI), UK subdivisions ENG, SCT, NIR",
            "years": [YEARS.start, YEARS.stop - 1],
            "note": "weekday holidays only; written by tools/check-bank-holidays.py --write-reference",
            "divisions": {
                division: [d.isoformat() for d in sorted(theirs[division])]
                for division in DIVISIONS
            },
        }
        REFERENCE.write_text(json.dumps(reference, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {REFERENCE.relative_to(ROOT)}")
    total = sum(len(v) for v in ours.values())
    if differences:
        print(f"{differences} difference(s) between the snapshot and holidays {version}")
        return 1
    print(f"the snapshot's {total} weekday holidays ({YEARS.start}-{YEARS.stop - 1}) "
          f"match holidays {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

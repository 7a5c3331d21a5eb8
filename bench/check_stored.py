#!/usr/bin/env python3
"""Compares `bash bench/run.sh verify` output (stdin) with the MariaDB runs in bench/results/*/:
every acked message stored once, with a receipt per participant. Runs whose prefix the
database does not hold (an older machine's runs) are listed as not checked."""
import glob, json, sys

rows = {}
for line in sys.stdin:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 5 and cells[1].isdigit():
        rows[cells[0]] = list(map(int, cells[1:]))
checked = bad = unchecked = 0
for f in sorted(glob.glob("bench/results/*/*.json")):
    r = json.load(open(f))
    if r.get("bench", {}).get("backend") != "mariadb" or not r.get("messages"):
        continue
    if r["prefix"] not in rows:
        unchecked += 1
        continue
    stored, distinct, _receipts, wrong = rows[r["prefix"]]
    acked = r["messages"]["acked"]
    checked += 1
    if stored != acked or distinct != stored or wrong:
        bad += 1
        print(f"BAD {f}: acked {acked}, stored {stored}, distinct {distinct}, wrong receipt counts {wrong}")
print(f"{checked} runs checked, {bad} bad, {unchecked} not in this database")
sys.exit(1 if bad else 0)

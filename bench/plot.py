#!/usr/bin/env python3
"""Latency vs rate from bench/results/pairs-<backend>-<pairs>-<rate>.json -> docs/bench-pairs-latency.png."""
import glob, json, re, sys
from collections import defaultdict

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1] if len(sys.argv) > 1 else "docs/bench-pairs-latency.png"
series = defaultdict(list)
for f in glob.glob("bench/results/pairs-*.json"):
    m = re.search(r"pairs-(\w+)-(\d+)-(\d+)\.json$", f)
    r = json.load(open(f))
    rcv = r.get("latencyMs", {}).get("receive")
    if not m or not rcv:
        continue
    lost = r["messages"]["lost"]
    series[m.group(1)].append((int(m.group(3)), rcv["p50"], rcv["p99"], lost))

fig, ax = plt.subplots(figsize=(6.4, 4), dpi=90)
colors = {"mariadb": "tab:blue", "embedded": "tab:orange", "echo": "tab:green"}
for backend, pts in sorted(series.items()):
    pts.sort()
    x = [p[0] for p in pts]
    c = colors.get(backend)
    ax.plot(x, [p[2] for p in pts], "o-", color=c, label=f"{backend} p99")
    ax.plot(x, [p[1] for p in pts], "x--", color=c, alpha=0.6, label=f"{backend} p50")
    for rate, _, p99, lost in pts:
        if lost:
            ax.annotate(f"{lost} lost", (rate, p99), fontsize=7, color="red")
ax.axhline(50, color="grey", lw=0.8, ls=":")
ax.text(ax.get_xlim()[0], 52, "50 ms target", fontsize=7, color="grey")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("offered rate, messages/s (100 pairs, both members sending)")
ax.set_ylabel("send → receive latency, ms")
ax.set_title("chat-host 1:1 pairs, 2 cores (server CPU 0, chat-load CPU 1)", fontsize=9)
ax.grid(True, which="both", lw=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out)
print("wrote", out)

#!/usr/bin/env python3
"""Plots of bench/results/<scenario>/*.json:
- latency vs rate from pairs/pairs-<backend>-<pairs>-<rate>.json -> docs/bench-pairs-latency.png
- server RSS vs sockets from storm/storm-<backend>-<sockets>-<rate>.json -> docs/bench-memory.png
Usage: bench/plot.py [OUT_DIR] (default docs)."""
import glob, json, re, sys
from collections import defaultdict

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out_dir = sys.argv[1] if len(sys.argv) > 1 else "docs"
colors = {"mariadb": "tab:blue", "embedded": "tab:orange", "echo": "tab:green"}


def results(kind):
    """(backend, first number, second number, result) for every clean run of a kind."""
    for f in sorted(glob.glob(f"bench/results/{kind}/{kind}-*.json")):
        m = re.search(rf"{kind}-(\w+)-(\d+)-(\d+)\.json$", f)  # tagged runs (-r2, -perf...) are left out
        if m:
            yield m.group(1), int(m.group(2)), int(m.group(3)), json.load(open(f))


def pairs_latency(path):
    series = defaultdict(list)
    for backend, npairs, rate, r in results("pairs"):
        rcv = r.get("latencyMs", {}).get("receive")
        if rcv:
            series[(backend, npairs)].append((rate, rcv["p50"], rcv["p99"], r["messages"]["lost"]))
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=90)
    for (backend, npairs), pts in sorted(series.items()):
        pts.sort()
        x = [p[0] for p in pts]
        c = colors.get(backend)
        style = "-" if npairs == 100 else ":"
        ax.plot(x, [p[2] for p in pts], "o" + style, color=c, label=f"{backend}, {npairs} pairs, p99")
        ax.plot(x, [p[1] for p in pts], "x--", color=c, alpha=0.5, label=f"{backend}, {npairs} pairs, p50")
        for rate, _, p99, lost in pts:
            if lost:
                ax.annotate(f"{lost} lost", (rate, p99), fontsize=7, color="red")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 52, "50 ms target", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, messages/s (both members of each pair send)")
    ax.set_ylabel("send → receive latency, ms")
    ax.set_title("chat-host 1:1 pairs, 2 cores (server CPU 0, chat-load CPU 1)", fontsize=9)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    print("wrote", path)


def memory(path):
    series = defaultdict(dict)
    for backend, sockets, rate, r in results("storm"):
        s = r.get("server") or {}
        if "rssAfterKib" in s and r.get("connected") == sockets:
            # One point per socket count (the highest rate measured wins).
            series[backend][sockets] = (s["rssBeforeKib"] / 1024, s["rssAfterKib"] / 1024)
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=90)
    for backend, pts in sorted(series.items()):
        x = sorted(pts)
        ax.plot([0] + x, [pts[x[0]][0]] + [pts[n][1] for n in x], "o-", color=colors.get(backend), label=backend)
    top = max((n for pts in series.values() for n in pts), default=10000)
    ax.plot([0, top], [0, top * 20 / 1024], color="grey", lw=0.8, ls=":", label="20 KB per socket (target slope)")
    ax.set_xlabel("connected sockets (idle, joined to nothing)")
    ax.set_ylabel("server RSS, MiB")
    ax.set_title("chat-host server memory vs sockets (connect storm)", fontsize=9)
    ax.grid(True, lw=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    print("wrote", path)


pairs_latency(f"{out_dir}/bench-pairs-latency.png")
memory(f"{out_dir}/bench-memory.png")

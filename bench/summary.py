#!/usr/bin/env python3
"""One line per chat-load JSON result (bench/results/*/*.json by default), as a Markdown table row."""
import glob, json, sys

def row(f):
    r = json.load(open(f))
    lat = r.get("latencyMs", {})
    c = lat.get("connect", {})
    m = r.get("messages") or {}
    s = r.get("server") or {}
    cpu = (r.get("serverCpu") or {}).get("seconds")
    acked = m.get("acked") or 0
    cpu_us = f"{cpu * 1e6 / acked:.0f}" if cpu is not None and acked else "-"
    win = (r.get("serverCpu") or {}).get("window")
    if win:
        cpu_us += f" ({win['cpuUsPerMsg']:.0f})"
    rcv, ack = lat.get("receive", {}), lat.get("ack", {})
    fmt = lambda d, k: f"{d[k]:.1f}" if k in d else "-"
    errs = ",".join(f"{k}={v}" for k, v in r.get("errors", {}).items()) or "0"
    return (f"| {f.split('/')[-1][:-5]} | {r['connected']}/{r['sockets']} | {r['connectFailed']} "
            f"| {fmt(c, 'p50')} / {fmt(c, 'p99')} | {s.get('rssPerSocketKib', 0):.1f} "
            f"| {m.get('sent', '-')} | {acked or '-'} | {m.get('receivedPerSec', 0):.0f} "
            f"| {fmt(ack, 'p50')} / {fmt(ack, 'p99')} | {fmt(rcv, 'p50')} / {fmt(rcv, 'p99')} / {fmt(rcv, 'max')} "
            f"| {m.get('lost', '-')} | {m.get('duplicated', '-')} | {cpu_us} | {errs} |")

HEAD = ("| run | connected | failed | connect p50/p99 ms | RSS/socket KiB | sent | acked | recv/s "
        "| ack p50/p99 ms | receive p50/p99/max ms | lost | dup | server CPU µs/msg: run (steady) | errors |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob("bench/results/*/*.json"))
    if len(files) > 1:
        print(HEAD)
    for f in files:
        print(row(f))

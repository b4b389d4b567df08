#!/usr/bin/env python3
"""Summarises scripts/soak.sh runs and draws docs/soak.png.

Usage: soak_report.py OUT_DIR WARMUP_SECONDS COMMAND [plot|no-plot]
Reads OUT_DIR/{old,new}.csv (t_s, rss_kb, fds, data_kb[, zombies]) and the load reports
OUT_DIR/{old,new}.json; prints a Markdown summary; draws docs/soak.png when matplotlib is
installed (scripts/compare.sh installs requirements-bench.txt into .venv).
"""

import csv
import json
import os
import sys


def load(out, name):
    path = os.path.join(out, f"{name}.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [
            {k: int(v) for k, v in row.items()}
            for row in csv.DictReader(f)
            if all(v.strip() for v in row.values())
        ]
    report = None
    try:
        with open(os.path.join(out, f"{name}.json")) as f:
            report = json.load(f)
    except (OSError, ValueError):
        pass
    return rows, report


def at(rows, t):
    """The first sample at or after t seconds."""
    return next((r for r in rows if r["t_s"] >= t), rows[-1])


def summary(name, rows, report, warmup):
    first, warm, last = rows[0], at(rows, warmup), rows[-1]
    line = (
        f"| {name} | {last['t_s'] / 60:.1f} min | "
        f"{first['rss_kb'] / 1024:.0f} MB | {warm['rss_kb'] / 1024:.0f} MB | "
        f"{last['rss_kb'] / 1024:.0f} MB | {(last['rss_kb'] - warm['rss_kb']) / 1024:+.1f} MB | "
        f"{warm['fds']} → {last['fds']} | {last['data_kb'] / 1024:.0f} MB |"
    )
    if "zombies" in last:
        line += f" {max(r['zombies'] for r in rows):,} / {last['zombies']:,} |"
    else:
        line += " — |"
    if report:
        line += f" {report['ok']:,} ({report['throughput_per_s']:,.0f}/s) |"
    else:
        line += " stopped early (no report) |"
    return line


def main():
    out, warmup, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    plot = (sys.argv[4] if len(sys.argv) > 4 else "plot") == "plot"
    runs = {n: load(out, n) for n in ("old", "new")}
    runs = {n: r for n, r in runs.items() if r and r[0]}
    print(f"Command: `{command}`\n")
    print(
        "| build | ran | RSS at start | after warm-up | at end | growth after warm-up "
        "| descriptors | data dir at end | zombie children (most / at end) | execs measured |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (rows, report) in runs.items():
        print(summary(name, rows, report, warmup))
    if not plot:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib is not installed: no plot)")
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name, (rows, _) in runs.items():
        t = [r["t_s"] / 60 for r in rows]
        label = {"old": "store before segment files", "new": "this build"}[name]
        ax1.plot(t, [r["rss_kb"] / 1024 for r in rows], label=label)
        ax2.plot(t, [r["data_kb"] / 1024 for r in rows], label=label)
    ax1.set_ylabel("server RSS (MB)")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.set_title("64 clients × session_exec `true`, on-disk store")
    ax2.set_ylabel("data dir (MB)")
    ax2.set_xlabel("minutes")
    ax2.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
    ax1.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
    fig.tight_layout()
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "soak.png")
    fig.savefig(path, dpi=110)
    print(f"\nPlot: docs/soak.png")


if __name__ == "__main__":
    main()

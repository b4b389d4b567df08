#!/usr/bin/env python3
"""Turns the results of scripts/scale.sh into the scale section of BENCHMARKS.md.

Reads, from the results directory: meta.json, and per run NAME (shells, cats, clients)
NAME.json (the `stablehand load --json` report plus sessions, start/end times and the server's
RSS before the run) and NAME.samples.tsv (epoch seconds, VmRSS KiB, threads, child processes
of the server, every 200 ms). Writes the section between `<!-- scale:begin -->` and
`<!-- scale:end -->` (appended when the markers are absent). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"
HEADING = "## Scale runs (scripts/scale.sh)"
RUNS = {
    "shells": "1,000 live shell sessions, exec `true`",
    "cats": "live `cat` process sessions, exec one line",
    "clients": "200 HTTP clients, each exec `true` on its own shell",
}
P99_LIMIT_US = 10_000
IDLE_KIB_LIMIT = 16


def samples(path: Path, start: float, end: float) -> list[tuple[float, int, int, int]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        t, rss, threads, kids = float(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])
        if start <= t <= end:
            rows.append((t, rss, threads, kids))
    return rows


def num(x: float, unit: str = "") -> str:
    return f"{x:,.0f}{unit}" if x >= 100 else f"{x:,.1f}{unit}"


def ms(us: float) -> str:
    return f"{us / 1000:,.2f} ms"


def summarize(results: Path) -> tuple[list[str], dict]:
    facts: dict = {}
    lines = [
        "| Run | Sessions live (children seen) | Clients | Measured | Calls ok | Errors "
        "| Calls/s | p50 | p99 | max | Server RSS before → all live → peak "
        "| RSS per session, all live / peak | Threads (peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in RUNS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        rows = samples(results / f"{name}.samples.tsv", d["started"], d["ended"])
        lat = d.get("latency_us") or {}
        errors = sum((d.get("errors") or {}).values())
        before = d.get("rss_before_kib", 0)
        peak = max((r[1] for r in rows), default=0)
        threads = max((r[2] for r in rows), default=0)
        kids = max((r[3] for r in rows), default=0)
        per = (peak - before) / d["sessions"] if peak else 0.0
        # The first sample with every session's process alive: all created, few execs yet.
        live = next((r[1] for r in rows if r[3] >= d["sessions"]), 0)
        per_live = (live - before) / d["sessions"] if live else 0.0
        facts[name] = {"p99": lat.get("p99", 0.0), "errors": errors, "threads": threads,
                       "kids": kids, "per_kib": per, "per_live_kib": per_live,
                       "sessions": d["sessions"],
                       "secs": d.get("duration_s", 0.0), "ok": d.get("ok", 0)}
        lines.append(
            f"| {label} | {d['sessions']:,} ({kids:,}) | {d['clients']} "
            f"| {d.get('duration_s', 0):.1f} s | {d.get('ok', 0):,} | {errors} "
            f"| {d.get('throughput_per_s', 0):,.0f} | {ms(lat.get('p50', 0))} "
            f"| {ms(lat.get('p99', 0))} | {ms(lat.get('max', 0))} "
            f"| {before / 1024:,.1f} → {live / 1024:,.1f} → {peak / 1024:,.1f} MiB "
            f"| {num(per_live)} / {num(per)} KiB | {threads} |")
    return lines, facts


def targets(facts: dict, cores: int) -> list[str]:
    lines = ["| Target | Measured | Result |", "|---|---:|---|"]
    limit = 2 * cores + 8
    if "shells" in facts:
        f = facts["shells"]
        ok = f["threads"] <= limit
        res = "met" if ok else f"missed by {f['threads'] - limit}"
        lines.append(f"| threads ≤ 2 × cores + 8 = {limit} at 1,000 sessions | {f['threads']} "
                     f"| **{res}** |")
    if "cats" in facts:
        f = facts["cats"]
        ok = f["p99"] < P99_LIMIT_US and f["kids"] >= 10_000
        if f["sessions"] < 10_000:
            nofile, per = facts.get("nofile_hard", 0), facts.get("fds_per_session", 4)
            lines.append(
                f"| 10,000 live sessions held, p99 exec < 10 ms at 64 clients "
                f"| {f['sessions']:,} sessions: p99 {ms(f['p99'])} "
                f"| **not measured at 10,000**: this machine's hard open-file limit is "
                f"{nofile:,} and cannot be raised without CAP_SYS_RESOURCE; 10,000 sessions "
                f"need {10_000 * per:,} descriptors ({per} each). At the {f['sessions']:,} that "
                f"fit, p99 is {'under' if f['p99'] < P99_LIMIT_US else 'over'} 10 ms |")
        else:
            held = "held" if f["kids"] >= 10_000 else f"only {f['kids']:,} children seen"
            lines.append(f"| 10,000 live sessions held ({held}), p99 exec < 10 ms at 64 clients "
                         f"| {ms(f['p99'])} | **{'met' if ok else 'missed'}**"
                         + ("" if f["p99"] < P99_LIMIT_US else
                            f" by {ms(f['p99'] - P99_LIMIT_US)}") + " |")
    if "clients" in facts:
        f = facts["clients"]
        ok = f["errors"] == 0 and f["ok"] > 0 and f["secs"] >= 59.0
        lines.append(f"| 200 concurrent HTTP clients for 60 s with zero errors "
                     f"| {f['errors']} errors in {f['ok']:,} calls over {f['secs']:.1f} s "
                     f"| **{'met' if ok else 'missed'}** |")
    for name in ("shells", "cats"):
        if name in facts and isinstance(facts[name], dict):
            f = facts[name]
            ok = 0 < f["per_live_kib"] <= IDLE_KIB_LIMIT
            lines.append(
                f"| runtime memory ≤ {IDLE_KIB_LIMIT} KiB per idle session ({name}, "
                f"{f['sessions']:,} sessions) | {num(f['per_live_kib'])} KiB once all are live "
                f"| **{'met' if ok else 'missed'}** |")
    return lines


def section(results: Path) -> str:
    meta = json.loads((results / "meta.json").read_text())
    table, facts = summarize(results)
    if not facts:
        sys.exit("scale_report: no run results found in " + str(results))
    facts["nofile_hard"] = int(meta.get("nofile_hard") or 0)
    facts["fds_per_session"] = int(meta.get("fds_per_session") or 4)
    cores = int(meta.get("cores") or 1)
    out = [
        HEADING,
        "",
        "<!-- Written by scripts/scale_report.py; edit that script, not this section. -->",
        "",
        "**Command** (from the repository root; builds release, then runs each scale run on a "
        "fresh `stablehand serve --http 127.0.0.1:PORT --in-memory` with `max_sessions = "
        "11000`, and writes this section):",
        "",
        "```sh",
        meta.get("command", "scripts/scale.sh"),
        "```",
        "",
        "Each run is `stablehand load --scenario exec --clients N --sessions-per-client S "
        "--duration D --warmup 2s --json`; every client creates its sessions before the clock "
        "starts and then runs closed-loop over them in turn. The server's VmRSS, threads and "
        "child processes are read from `/proc` every 200 ms for the whole run (session "
        "creation included); children are separate processes, so VmRSS is the runtime's own "
        "memory. The load generator runs on the same 2 cores.",
        "",
        f"**Machine.** {meta.get('cpu', '?')}, {cores} cores, "
        f"{int(meta.get('mem_kib', 0)) / 1024 / 1024:.1f} GiB; kernel {meta.get('kernel', '?')}; "
        f"{meta.get('bash', '')}. Commit {meta.get('commit', '?')}, "
        f"{meta.get('started_utc', '?')} UTC, load average at start "
        f"`{meta.get('loadavg_start', '?')}`.",
        "",
        *table,
        "",
        "### Targets",
        "",
        *targets(facts, cores),
        "",
        "RSS per session is (VmRSS − VmRSS before the run) ÷ sessions: *all live* at the "
        "first sample in which every session's process is alive (all created, the first "
        "clients already running execs; the 64 connections included), *peak* at the highest "
        "sample of the run. The peak also holds what the store keeps of every exec (records "
        "and transcripts, up to sled's cache), which grows with the number of calls rather "
        "than of sessions. Heap bytes per idle session, exact, come from a counting allocator "
        "in `cargo bench --bench kinds` (section *Session kinds* above).",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="directory of the scale results")
    ap.add_argument("--benchmarks", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    body = f"{BEGIN}\n{section(args.results)}{END}"
    text = args.benchmarks.read_text() if args.benchmarks.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    args.benchmarks.write_text(text)
    print(f"scale_report: wrote the section in {args.benchmarks}", file=sys.stderr)


if __name__ == "__main__":
    main()

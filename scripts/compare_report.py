#!/usr/bin/env python3
"""Turns the results of scripts/compare.sh into a section of BENCHMARKS.md and docs/latency.png.

Reads, from the results directory:
  baselines.json          output of `cargo bench --bench baselines`
  SCENARIO-cN.json        one `stablehand load --json` report per run, N = clients
                          (SCENARIO is bare-noop, noop, state, exec or create-end)
  meta.json               optional: the command, seconds per run, load average at start

Writes the Markdown between `<!-- compare:begin -->` and `<!-- compare:end -->` in
BENCHMARKS.md (appending a new section with those markers when they are absent) and draws the
latency plot with matplotlib.

Usage: compare_report.py RESULTS_DIR [--benchmarks BENCHMARKS.md] [--plot docs/latency.png]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"
HEADING = "## Comparison with the physical baselines (scripts/compare.sh)"

# Targets of the issue "Load generator and the benchmark record".
EXEC_P50_FACTOR = 1.5  # exec p50 (1 client) <= 1.5 x (pipe p50 + HTTP no-op p50)
EXEC_THROUGHPUT_MIN = 20_000.0  # exec calls/s with many clients, each on its own session
NOOP_THROUGHPUT_SHARE = 0.8  # no-op throughput >= 80% of the bare jsonrpsee no-op

SCENARIO_LABELS = {
    "bare-noop": "bare jsonrpsee no-op `ping`",
    "noop": "stablehand no-op",
    "state": "stablehand `session_state`",
    "exec": "stablehand exec `true`",
    "create-end": "stablehand create + end",
}
EXEC_LABEL = "stablehand\nexec true"
RUN_FILE = re.compile(r"^(?P<scenario>[a-z-]+)-c(?P<clients>\d+)\.json$")


# ---------------------------------------------------------------------------------------------
# Inputs


def load_runs(results: Path) -> dict[tuple[str, int], dict]:
    """Every `stablehand load --json` report in the directory, keyed by (scenario, clients)."""
    runs = {}
    for path in sorted(results.glob("*.json")):
        m = RUN_FILE.match(path.name)
        if not m:
            continue
        with path.open() as f:
            report = json.load(f)
        clients = int(report.get("clients", m["clients"]))
        runs[(m["scenario"], clients)] = report
    return runs


def load_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    with path.open() as f:
        return json.load(f)


def run_cmd(*argv: str) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def machine(started: str | None) -> list[tuple[str, str]]:
    """The machine description: CPU, cores, memory, kernel, toolchain, code and date (the
    run's start as compare.sh recorded it, else now)."""
    cpu = None
    lscpu = run_cmd("lscpu")
    if lscpu:
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                cpu = value.strip()
                break
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                mem = f"{kib / 1024 / 1024:.1f} GiB ({kib} kB MemTotal)"
                break
    except OSError:
        pass
    commit = run_cmd("git", "rev-parse", "--short", "HEAD")
    if commit and run_cmd("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    bash = run_cmd("bash", "--version")
    return [
        ("CPU (`lscpu` model name)", cpu or "unknown"),
        ("Cores (`nproc`)", run_cmd("nproc") or "unknown"),
        ("Memory", mem or "unknown"),
        ("Kernel (`uname -r`)", run_cmd("uname", "-r") or "unknown"),
        ("Bash", bash.splitlines()[0] if bash else "unknown"),
        ("Rust (`rustc --version`)", run_cmd("rustc", "--version") or "unknown"),
        ("Commit (`git rev-parse --short HEAD`)", commit or "unknown"),
        ("Date (UTC)", started or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")),
    ]


# ---------------------------------------------------------------------------------------------
# Rows


class Row:
    """One line of the table: a measurement and, where one applies, its baseline."""

    def __init__(self, label: str, clients: int | None, ops: float | None, lat: dict,
                 errors: dict | None, note: str = ""):
        self.label = label
        self.clients = clients
        self.ops = ops
        self.p50 = lat.get("p50")
        self.p90 = lat.get("p90")
        self.p99 = lat.get("p99")
        self.max = lat.get("max")
        self.errors = errors
        self.note = note
        self.base_label: str | None = None
        self.base_p50: float | None = None
        self.base_ops: float | None = None

    def against(self, label: str, p50: float | None, ops: float | None) -> "Row":
        self.base_label, self.base_p50, self.base_ops = label, p50, ops
        return self


def from_load(scenario: str, report: dict) -> Row:
    lat = report.get("latency_us") or {}
    label = SCENARIO_LABELS.get(scenario, scenario)
    return Row(label, report.get("clients"), report.get("throughput_per_s"), lat,
               report.get("errors") or {})


def from_baseline(label: str, summary: dict) -> Row:
    lat = {k: summary.get(f"{k}_us") for k in ("p50", "p90", "p99", "max")}
    return Row(label, summary.get("bashes", 1), summary.get("per_s"), lat, None)


# The throughput baselines of benches/baselines.rs, with their table and plot labels.
THROUGHPUT_BASELINES = (
    ("pipe_throughput", "64 warm bashes, `true; echo __M`, one poll loop (baseline)",
     "64 bashes\nbare"),
    ("protocol_throughput", "64 warm bashes under the session protocol, one poll loop "
     "(baseline: the exec ceiling)", "64 bashes\nsession\nprotocol"),
)


def valid(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# ---------------------------------------------------------------------------------------------
# Formatting


def us(x: float | None) -> str:
    if not valid(x):
        return "—"
    if x >= 10_000:
        return f"{x:,.0f}"
    return f"{x:,.1f}"


def short_us(x: float) -> str:
    """A bar label: whole microseconds from 100 up."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def rate(x: float | None) -> str:
    return f"{x:,.0f}" if x is not None and math.isfinite(x) and x >= 0 else "—"


def ratio(x: float | None, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x is not None and math.isfinite(x) else "—"


def errors_cell(errors: dict | None) -> str:
    if errors is None:
        return "—"
    total = sum(int(v) for v in errors.values())
    if total == 0:
        return "0"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(errors.items()) if v)
    return f"**{total}** ({parts})"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| Measurement | Clients | ops/s | p50 µs | p90 µs | p99 µs | max µs | Errors "
        "| Baseline (same run) | p50 ÷ baseline p50 | ops/s ÷ baseline ops/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        p50_ratio = r.p50 / r.base_p50 if valid(r.p50) and valid(r.base_p50) else None
        ops_ratio = r.ops / r.base_ops if valid(r.ops) and valid(r.base_ops) else None
        base = r.base_label or "—"
        label = r.label + (f" {r.note}" if r.note else "")
        out.append(
            f"| {label} | {r.clients if r.clients is not None else '—'} | {rate(r.ops)} "
            f"| {us(r.p50)} | {us(r.p90)} | {us(r.p99)} | {us(r.max)} | {errors_cell(r.errors)} "
            f"| {base} | {ratio(p50_ratio)}{'×' if p50_ratio is not None else ''} "
            f"| {ratio(ops_ratio)} |"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Targets


def target_lines(runs: dict, base: dict | None, many: int) -> list[str]:
    """The three targets, each met or missed with the margin."""
    lines = ["| Target | Measured | Limit | Result |", "|---|---:|---:|---|"]

    def missing(name: str, why: str) -> None:
        lines.append(f"| {name} | — | — | **not measured** ({why}) |")

    # 1. exec p50, 1 client, against the floor pipe + HTTP no-op.
    name = f"exec `true` p50, 1 client ≤ {EXEC_P50_FACTOR} × (pipe p50 + HTTP no-op p50)"
    exec1, bare1 = runs.get(("exec", 1)), runs.get(("bare-noop", 1))
    pipe = (base or {}).get("pipe_round_trip") or {}
    if exec1 and bare1 and valid(pipe.get("p50_us")):
        p50 = (exec1.get("latency_us") or {}).get("p50")
        floor = pipe["p50_us"] + bare1["latency_us"]["p50"]
        limit = EXEC_P50_FACTOR * floor
        if valid(p50):
            if p50 <= limit:
                res = (f"**met**, {limit - p50:,.1f} µs to spare "
                       f"({p50 / floor:.2f}× the floor of {floor:,.1f} µs)")
            else:
                res = (f"**missed** by {p50 - limit:,.1f} µs: {p50 / floor:.2f}× the floor of "
                       f"{floor:,.1f} µs; needs {p50 / limit:.2f}× faster")
            lines.append(f"| {name} | {p50:,.1f} µs | ≤ {limit:,.1f} µs | {res} |")
        else:
            missing(name, "no successful exec")
    else:
        missing(name, "exec, bare no-op or pipe results absent")

    # 2. exec throughput with many clients on their own sessions.
    name = (f"exec `true` throughput, {many} clients on their own sessions "
            f"≥ {EXEC_THROUGHPUT_MIN:,.0f}/s")
    execn = runs.get(("exec", many))
    if execn:
        tput = execn.get("throughput_per_s") or 0.0
        if tput >= EXEC_THROUGHPUT_MIN:
            res = (f"**met** by {tput - EXEC_THROUGHPUT_MIN:,.0f}/s "
                   f"({tput / EXEC_THROUGHPUT_MIN:.2f}× the target)")
        else:
            need = (f"needs {EXEC_THROUGHPUT_MIN / tput:.2f}× more" if tput > 0
                    else "no call succeeded")
            res = (f"**missed** by {EXEC_THROUGHPUT_MIN - tput:,.0f}/s "
                   f"({tput / EXEC_THROUGHPUT_MIN:.0%} of the target; {need})")
            ceiling = ((base or {}).get("protocol_throughput") or {}).get("per_s")
            if valid(ceiling):
                res += (f". 64 bare bashes under the session protocol, driven by one poll "
                        f"loop with no server, reach {ceiling:,.0f}/s in the same run: the "
                        f"target is {EXEC_THROUGHPUT_MIN / ceiling:.2f}× that ceiling, and "
                        f"stablehand reaches {tput / ceiling:.0%} of it")
        lines.append(f"| {name} | {tput:,.0f}/s | ≥ {EXEC_THROUGHPUT_MIN:,.0f}/s | {res} |")
    else:
        missing(name, f"no exec run with {many} clients")

    # 3. no-op throughput against the bare jsonrpsee no-op, same client count.
    name = f"no-op throughput, {many} clients ≥ {NOOP_THROUGHPUT_SHARE:.0%} of bare jsonrpsee no-op"
    noopn, baren = runs.get(("noop", many)), runs.get(("bare-noop", many))
    if noopn and baren and valid(baren.get("throughput_per_s")):
        tput, bare = noopn.get("throughput_per_s") or 0.0, baren["throughput_per_s"]
        limit = NOOP_THROUGHPUT_SHARE * bare
        share = tput / bare
        if tput >= limit:
            res = f"**met**: {share:.0%} of bare, {tput - limit:,.0f}/s above the limit"
        else:
            res = (f"**missed** by {limit - tput:,.0f}/s: {share:.0%} of bare "
                   f"({bare:,.0f}/s); needs {limit / tput:.2f}× more" if tput > 0 else
                   "**missed**: no call succeeded")
        lines.append(f"| {name} | {tput:,.0f}/s | ≥ {limit:,.0f}/s | {res} |")
    else:
        missing(name, f"no-op or bare no-op run with {many} clients absent")
    return lines


# ---------------------------------------------------------------------------------------------
# Plot


def plot(path: Path, runs: dict, base: dict | None, many: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    # Panel 1: p50 and p99 at 1 client, baselines first.
    groups: list[tuple[str, float | None, float | None, bool]] = []
    if base:
        for key, label in (("spawn_wait_bash", "spawn+wait\nbash -c true"),
                           ("pipe_round_trip", "pipe round trip\nwarm bash")):
            s = base.get(key)
            if s:
                groups.append((label, s.get("p50_us"), s.get("p99_us"), True))
    for scenario, label, is_base in (("bare-noop", "bare jsonrpsee\nno-op (HTTP)", True),
                                     ("noop", "stablehand\nno-op", False),
                                     ("state", "stablehand\nsession_state", False),
                                     ("exec", EXEC_LABEL, False),
                                     ("create-end", "stablehand\ncreate+end", False)):
        r = runs.get((scenario, 1))
        if r:
            lat = r.get("latency_us") or {}
            groups.append((label, lat.get("p50"), lat.get("p99"), is_base))

    # Panel 2: throughput at many clients.
    bars: list[tuple[str, float, bool]] = []
    for scenario, label, is_base in (("bare-noop", "bare jsonrpsee\nno-op", True),
                                     ("noop", "stablehand\nno-op", False),
                                     ("state", "stablehand\nsession_state", False),
                                     ("exec", "stablehand\nexec true", False)):
        r = runs.get((scenario, many))
        if r:
            bars.append((label, r.get("throughput_per_s") or 0.0, is_base))
    for key, _, label in THROUGHPUT_BASELINES:
        b = (base or {}).get(key) or {}
        if valid(b.get("per_s")):
            bars.insert(len(bars) - 1 if bars and bars[-1][0].endswith("exec true") else len(bars),
                        (label, b["per_s"], True))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw={"width_ratios": [3, 2.5]})
    width = 0.38
    xs = range(len(groups))
    p50s = [g[1] if valid(g[1]) else float("nan") for g in groups]
    p99s = [g[2] if valid(g[2]) else float("nan") for g in groups]
    b1 = ax1.bar([x - width / 2 for x in xs], p50s, width, label="p50", color="#4c72b0")
    b2 = ax1.bar([x + width / 2 for x in xs], p99s, width, label="p99", color="#dd8452")
    for bar_set in (b1, b2):
        for rect, g in zip(bar_set, groups, strict=True):
            if g[3]:
                rect.set_hatch("//")
                rect.set_edgecolor("white")
    for rects, vals in ((b1, p50s), (b2, p99s)):
        for rect, v in zip(rects, vals, strict=True):
            if math.isfinite(v):
                ax1.annotate(short_us(v), (rect.get_x() + rect.get_width() / 2, v),
                             xytext=(0, 2), textcoords="offset points",
                             ha="center", va="bottom", fontsize=7)
    # The exec target (1.5 x the floor) as a short line over the exec group.
    pipe = (base or {}).get("pipe_round_trip") or {}
    bare1 = runs.get(("bare-noop", 1))
    exec_at = [i for i, g in enumerate(groups) if g[0] == EXEC_LABEL]
    handles = [Patch(color="#4c72b0", label="p50"), Patch(color="#dd8452", label="p99")]
    if exec_at and bare1 and valid(pipe.get("p50_us")):
        limit = EXEC_P50_FACTOR * (pipe["p50_us"] + (bare1.get("latency_us") or {}).get("p50", 0.0))
        i = exec_at[0]
        handles.append(ax1.hlines(limit, i - 0.45, i + 0.45, colors="#c44e52", linestyles="--",
                                  label=f"exec p50 target {us(limit)} µs"))
    handles.append(Patch(facecolor="#bbbbbb", hatch="//", edgecolor="white",
                         label="physical baseline"))
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax1.set_ylabel("latency, µs (log scale)")
    ax1.set_xticks(list(xs), [g[0] for g in groups], fontsize=8)
    ax1.set_title("Round trip, 1 client")
    ax1.legend(handles=handles, fontsize=8)
    ax1.grid(axis="y", which="both", alpha=0.3)

    xs2 = range(len(bars))
    rects = ax2.bar(list(xs2), [b[1] for b in bars], 0.6,
                    color=["#8c8c8c" if b[2] else "#55a868" for b in bars])
    for rect, b in zip(rects, bars, strict=True):
        if b[2]:
            rect.set_hatch("//")
            rect.set_edgecolor("white")
        ax2.annotate(rate(b[1]), (rect.get_x() + rect.get_width() / 2, b[1]),
                     xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                     fontsize=8)
    ax2.axhline(EXEC_THROUGHPUT_MIN, color="#c44e52", linestyle="--", linewidth=1,
                label=f"exec target {EXEC_THROUGHPUT_MIN:,.0f}/s")
    bare = runs.get(("bare-noop", many))
    if bare and valid(bare.get("throughput_per_s")):
        ax2.axhline(NOOP_THROUGHPUT_SHARE * bare["throughput_per_s"], color="#8172b3",
                    linestyle=":", linewidth=1,
                    label=f"no-op target ({NOOP_THROUGHPUT_SHARE:.0%} of bare)")
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax2.set_xticks(list(xs2), [b[0] for b in bars], fontsize=8)
    ax2.set_ylabel("successful calls per second")
    ax2.set_title(f"Throughput, {many} clients")
    ax2.legend(fontsize=8)
    ax2.grid(axis="y", alpha=0.3)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Section


def section(results: Path, runs: dict, base: dict | None, meta: dict, many: int,
            plot_rel: str) -> str:
    rows: list[Row] = []
    if base:
        if base.get("spawn_wait_bash"):
            rows.append(from_baseline("spawn + wait `bash --noprofile --norc -c true` (baseline)",
                                      base["spawn_wait_bash"]))
        if base.get("pipe_round_trip"):
            rows.append(from_baseline("pipe round trip `true; echo __M` to a warm bash (baseline)",
                                      base["pipe_round_trip"]))
        for key, label, _ in THROUGHPUT_BASELINES:
            if base.get(key):
                rows.append(from_baseline(label, base[key]))
    bare_by_clients = {c: r for (s, c), r in runs.items() if s == "bare-noop"}
    for c in sorted(bare_by_clients):
        row = from_load("bare-noop", bare_by_clients[c])
        row.label += " (baseline)"
        rows.append(row)
    pipe = (base or {}).get("pipe_round_trip") or {}
    floor = None
    if 1 in bare_by_clients and valid(pipe.get("p50_us")):
        floor = pipe["p50_us"] + (bare_by_clients[1].get("latency_us") or {}).get("p50", 0.0)
        rows.append(Row("floor: pipe p50 + bare HTTP no-op p50", 1, None, {"p50": floor}, None))

    def bare_base(c: int) -> tuple[str, float | None, float | None]:
        b = bare_by_clients.get(c)
        if not b:
            return ("—", None, None)
        return (f"bare no-op, {c} client{'s' if c != 1 else ''}",
                (b.get("latency_us") or {}).get("p50"), b.get("throughput_per_s"))

    for scenario in ("noop", "state", "exec", "create-end"):
        for c in sorted(c for (s, c) in runs if s == scenario):
            row = from_load(scenario, runs[(scenario, c)])
            if scenario in ("noop", "state"):
                row.against(*bare_base(c))
            elif scenario == "exec" and c == 1 and floor is not None:
                row.against("floor (pipe + HTTP no-op)", floor, None)
            elif scenario == "exec" and c > 1 and (base or {}).get("protocol_throughput"):
                ceiling = base["protocol_throughput"]
                row.against("64 bashes under the session protocol", ceiling.get("p50_us"),
                            ceiling.get("per_s"))
            elif scenario == "create-end" and c == 1 and base and base.get("spawn_wait_bash"):
                s = base["spawn_wait_bash"]
                row.against("spawn + wait bash", s.get("p50_us"), s.get("per_s"))
            rows.append(row)

    any_run = next(iter(runs.values()), {})
    protocols = sorted({r.get("protocol") for (s, _), r in runs.items()
                        if s != "bare-noop" and r.get("protocol")})
    durations = sorted({r.get("duration_s") for r in runs.values() if r.get("duration_s")})
    command = meta.get("command") or "scripts/compare.sh"
    secs = f"{meta['secs']:g}" if meta.get("secs") else "?"
    bench_secs = f"{meta['bench_secs']:g}" if meta.get("bench_secs") else "?"
    warmup = meta.get("warmup", "1s")

    out = [
        "<!-- Written by scripts/compare_report.py; edit that script, not this section. -->",
        "",
        "**Command** (from the repository root; builds release, runs the baselines bench and "
        "every load run, then writes this section and the plot):",
        "",
        "```sh",
        command,
        "```",
        "",
        "Each load run is `stablehand load --url URL --scenario SCENARIO --clients N "
        f"--duration {secs}s --warmup {warmup} --json`"
        " against `stablehand serve --http 127.0.0.1:PORT --in-memory`; the bare no-op runs use "
        "`--protocol raw` against `examples/bare_jsonrpsee.rs`"
        + (f"; stablehand runs speak protocol `{'`, `'.join(protocols)}`" if protocols else "")
        + ". The pipe and spawn baselines come from `cargo bench --bench baselines` "
        f"({bench_secs} s each) in the same run. Clients are closed-loop: each "
        "sends its next call when the previous one answers; exec and state clients each have "
        "their own session. The load generator runs on the same cores as the servers. Latencies "
        "are of successful calls.",
        "",
        "**Machine.**",
        "",
    ]
    started = meta.get("started_utc", "").replace("T", " ").removesuffix("Z")[:16] or None
    for key, value in machine(started):
        out.append(f"- {key}: {value}")
    if meta.get("loadavg_start"):
        out.append(f"- Load average at start (`/proc/loadavg`): {meta['loadavg_start']}")
    if durations:
        span = (f"{durations[0]:.2f}" if f"{durations[0]:.2f}" == f"{durations[-1]:.2f}"
                else f"{durations[0]:.2f} to {durations[-1]:.2f}")
        out.append(f"- Measured seconds per load run: {span}")
    out += [
        "",
        "### Results",
        "",
        "Ratios: `p50 ÷ baseline p50` (lower is better) and `ops/s ÷ baseline ops/s` "
        "(higher is better), against the baseline measured in the same run.",
        "",
    ]
    out += table(rows)
    out += ["", "### Targets", ""]
    out += target_lines(runs, base, many)
    out += [
        "",
        f"![latency]({plot_rel})",
        "",
        f"Left: p50 and p99 of one client's round trip, log scale. Right: throughput with "
        f"{many} clients. Hatched bars are the physical baselines.",
    ]
    if not any_run:
        out.insert(0, "_No load results were found._")
    return "\n".join(out) + "\n"


def write_section(benchmarks: Path, body: str) -> None:
    text = benchmarks.read_text() if benchmarks.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{body}{END}"
    begin, end = text.find(BEGIN), text.find(END)
    if begin != -1 and end != -1 and begin < end:
        text = text[:begin] + block + text[end + len(END):]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    benchmarks.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="directory of the JSON results")
    ap.add_argument("--benchmarks", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "latency.png")
    ap.add_argument("--no-plot", action="store_true", help="write the section only")
    args = ap.parse_args()

    runs = load_runs(args.results)
    base = load_json(args.results / "baselines.json")
    meta = load_json(args.results / "meta.json") or {}
    if not runs and not base:
        print(f"compare_report: no results in {args.results}", file=sys.stderr)
        return 1
    many = int(meta.get("clients") or max((c for (_, c) in runs), default=1))

    try:
        plot_rel = args.plot.resolve().relative_to(args.benchmarks.resolve().parent).as_posix()
    except ValueError:
        plot_rel = args.plot.as_posix()
    body = section(args.results, runs, base, meta, many, plot_rel)
    write_section(args.benchmarks, body)
    if not args.no_plot:
        plot(args.plot, runs, base, many)
        print(f"compare_report: wrote {args.plot}")
    print(f"compare_report: wrote the section in {args.benchmarks}")
    # The targets, on the terminal too.
    for line in target_lines(runs, base, many)[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        print(f"  {cells[0]}: {cells[1]} (limit {cells[2]}): {cells[3].replace('**', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

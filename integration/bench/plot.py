#!/usr/bin/python3
"""Draws the failover benchmark's pictures from the records of one run.

    integration/bench/plot.py RECORDS_DIR OUT_DIR [--run K]

RECORDS_DIR is what `failover-scenarios --records DIR` wrote (integration/bench/run.sh
--pictures does both steps): one JSON-lines file per measured event
(SCENARIO-INTERVAL-AGENT-runN.jsonl: a header line, then one line per request with its
send and reply time in ms relative to the event and the host that answered) and
summary.json (every sample's outage). For each scenario and interval it draws
SCENARIO-INTERVAL.png: the client's view, vipd and keepalived side by side from run K of
the same bench run (default 1), one mark per request at its send time, in the row and
colour of the host that answered; lost requests are red marks in the "lost" row, so an
outage is a gap in the host rows. The counted outage is shaded, the event is the line at
0. summary.png is the outage table as bars (median, whiskers min..max): one small chart
per interval and scenario, each on its own scale.

Needs python3-matplotlib (Debian). Draws nothing it did not read.
"""

import argparse
import collections
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AGENTS = ["vipd", "keepalived"]
HOST_COLOURS = {"lb1": "#1f77b4", "lb2": "#ff7f0e"}
LOST_COLOUR = "#d62728"
ROWS = {"lb1": 2, "lb2": 1, None: 0}


def interval_key(label):
    """'1s' / '100ms' -> milliseconds, for sorting."""
    if label.endswith("ms"):
        return float(label[:-2])
    if label.endswith("s"):
        return float(label[:-1]) * 1000
    return float("inf")


def read_trace(path):
    with open(path) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if not lines:
        raise ValueError(f"{path}: empty")
    return lines[0], lines[1:]


def draw_panel(ax, head, recs):
    by_host = collections.defaultdict(list)
    lost = []
    for r in recs:
        if r.get("reply_ms") is None:
            lost.append(r["sent_ms"])
        else:
            by_host[r.get("name")].append(r["sent_ms"])
    for host, xs in sorted(by_host.items(), key=lambda kv: str(kv[0])):
        y = ROWS.get(host, 3)
        ax.scatter(xs, [y] * len(xs), marker="|", s=60, linewidths=0.6,
                   color=HOST_COLOURS.get(host, "#2ca02c"),
                   label=f"answered by {host} ({len(xs)})")
    if lost:
        ax.scatter(lost, [0] * len(lost), marker="|", s=60, linewidths=0.6,
                   color=LOST_COLOUR, label=f"lost ({len(lost)})")
    if head.get("outage_ms"):
        a, b = head["outage_ms"]
        ax.axvspan(a, b, color=LOST_COLOUR, alpha=0.12, lw=0)
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.set_yticks([0, 1, 2])
    ax.set_yticklabels(["lost", "lb2", "lb1"])
    ax.set_ylim(-0.6, 3.2)  # room for the legend above the lb1 row
    ax.set_xlabel("ms since the event (request send time)")
    outage = head.get("outage_len_ms", 0.0)
    ax.set_title(f"{head['agent']}: outage {outage:.1f} ms, {head.get('lost', 0)} lost",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", ncol=3, fontsize=7, framealpha=0.9, markerscale=0.8)


def scenario_pictures(records, out, run):
    """One PNG per (scenario, interval) with both agents of run `run`."""
    found = collections.defaultdict(dict)
    for name in sorted(os.listdir(records)):
        if not name.endswith(".jsonl"):
            continue
        head, recs = read_trace(os.path.join(records, name))
        if head.get("run") != run:
            continue
        found[(head["scenario"], head["interval"])][head["agent"]] = (head, recs)
    written = []
    for (scenario, interval), per_agent in sorted(found.items()):
        agents = [a for a in AGENTS if a in per_agent]
        fig, axes = plt.subplots(1, len(agents), figsize=(6.2 * len(agents), 3.4),
                                 sharex=True, squeeze=False)
        lo = min(min(r["sent_ms"] for r in per_agent[a][1]) for a in agents)
        hi = max(max(r["sent_ms"] for r in per_agent[a][1]) for a in agents)
        for ax, a in zip(axes[0], agents):
            draw_panel(ax, *per_agent[a])
            ax.set_xlim(lo, hi)
        name = per_agent[agents[0]][0].get("scenario_name", scenario)
        fig.suptitle(f"{name}, advert interval {interval}: what the client saw "
                     f"(UDP request every 2 ms to the VIP; run {run})", fontsize=11)
        fig.tight_layout()
        path = os.path.join(out, f"{scenario}-{interval}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def median(v):
    s = sorted(v)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summary_picture(records, out):
    """The outage table: one small chart per (interval, scenario), each on its own scale
    (a 1 s master death and a 10 ms one differ a hundredfold), vipd beside keepalived."""
    with open(os.path.join(records, "summary.json")) as f:
        rows = json.load(f)
    cells = collections.defaultdict(list)
    order = []
    for r in rows:
        if r["scenario"] not in order:
            order.append(r["scenario"])
        cells[(r["scenario"], r["interval"], r["agent"])].append(r["outage_len_ms"])
    names = {r["scenario"]: r.get("scenario_name", r["scenario"]) for r in rows}
    intervals = sorted({i for (_, i, _) in cells}, key=interval_key, reverse=True)
    fig, axes = plt.subplots(len(intervals), len(order),
                             figsize=(2.7 * len(order), 2.1 * len(intervals) + 0.6),
                             squeeze=False)
    colours = ["#4c72b0", "#dd8452"]
    for i, iv in enumerate(intervals):
        for j, scenario in enumerate(order):
            ax = axes[i][j]
            top = 0.0
            for k, agent in enumerate(AGENTS):
                v = cells.get((scenario, iv, agent))
                if not v:
                    continue
                m = median(v)
                top = max(top, max(v))
                ax.bar([k], [m], 0.6, yerr=[[m - min(v)], [max(v) - m]], capsize=3,
                       color=colours[k], label=agent)
                ax.annotate(f"{m:.0f}" if m >= 10 or m == 0 else f"{m:.1f}", (k, max(v)),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                            textcoords="offset points")
            ax.set_ylim(0, top * 1.25 if top > 0 else 1)
            ax.set_xticks(range(len(AGENTS)))
            ax.set_xticklabels(AGENTS, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
            if i == 0:
                ax.set_title(names[scenario], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{iv} adverts\noutage, ms", fontsize=8)
    n = max((len(v) for v in cells.values()), default=0)
    fig.suptitle("Failover benchmark: the outage the client saw (median of up to "
                 f"{n} runs; whiskers min..max), vipd vs keepalived", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out, "summary.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records")
    p.add_argument("out")
    p.add_argument("--run", type=int, default=1, help="which run's traces to draw (default 1)")
    a = p.parse_args()
    if not os.path.isfile(os.path.join(a.records, "summary.json")):
        sys.exit(f"plot.py: {a.records} has no summary.json (run the bench with --records)")
    os.makedirs(a.out, exist_ok=True)
    written = scenario_pictures(a.records, a.out, a.run)
    written.append(summary_picture(a.records, a.out))
    for w in written:
        print(w)


if __name__ == "__main__":
    main()

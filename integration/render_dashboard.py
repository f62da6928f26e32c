#!/usr/bin/python3
"""Draws the panels of the shipped Grafana dashboard from a live Prometheus, as a PNG.

    integration/render_dashboard.py PROMETHEUS_URL DASHBOARD_JSON OUT_PNG \
        --start UNIX --end UNIX [--step S] [--rate-interval 4s] [--title TEXT]

Not Grafana: a plain matplotlib rendering of each panel's own queries over [start, end]
(range queries; instant ones at `end`), in the dashboard's order, so that a test run can
show what the dashboard would show. The namespace test
operate::prometheus_scrapes_the_pair_dashboard_has_data_and_split_brain_alert_fires runs it
against its Prometheus (docs/operations.md, "Monitoring", shows one such picture).
Grafana variables: $__rate_interval and $__interval become --rate-interval, $__range the
length of [start, end]. Needs python3-matplotlib (Debian).
"""

import argparse
import json
import math
import re
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def api(base, path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=20) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(metric.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()


def value_names(panel):
    """Value mappings of the panel ({"0": "init", ...}), if any."""
    names = {}
    for m in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        for k, v in m.get("options", {}).items():
            names[float(k)] = v.get("text", k)
    return names


def draw(ax, panel, base, a):
    rng = f"{int(a.end - a.start)}s"
    kind = panel["type"]
    names = value_names(panel)
    drawn = 0
    for t in panel.get("targets", []):
        expr = (t["expr"].replace("$__rate_interval", a.rate_interval)
                .replace("$__interval", a.rate_interval).replace("$__range", rng))
        if t.get("instant") or kind in ("stat", "bargauge"):
            res = api(base, "/api/v1/query", {"query": expr, "time": a.end})
            if kind == "bargauge":
                res = sorted(res, key=lambda r: float(r["metric"].get("le", "inf")
                                                      .replace("+Inf", "inf")))
            labels = [legend(t.get("legendFormat"), r["metric"]) for r in res]
            vals = [float(r["value"][1]) for r in res]
            vals = [0.0 if math.isnan(v) else v for v in vals]
            ax.bar(range(len(vals)), vals, color="#4c72b0")
            ax.set_xticks(range(len(vals)))
            ax.set_xticklabels(labels, rotation=45 if kind == "bargauge" else 20,
                               ha="right", fontsize=6)
            for i, v in enumerate(vals):
                text = names.get(v, f"{v:.3g}")
                ax.annotate(text, (i, v), ha="center", va="bottom", fontsize=6)
            drawn += len(vals)
            continue
        res = api(base, "/api/v1/query_range",
                  {"query": expr, "start": a.start, "end": a.end, "step": a.step})
        for r in res:
            xs = [float(p[0]) - a.start for p in r["values"]]
            ys = [float(p[1]) for p in r["values"]]
            ax.step(xs, ys, where="post", lw=1.2, label=legend(t.get("legendFormat"), r["metric"]))
            drawn += 1
    if names and kind == "state-timeline":
        ks = sorted(names)
        ax.set_yticks(ks)
        ax.set_yticklabels([names[k] for k in ks], fontsize=7)
    if kind not in ("stat", "bargauge"):
        ax.set_xlabel("s since the start", fontsize=7)
        if drawn:
            ax.legend(fontsize=5.5, loc="best", framealpha=0.8)
    ax.set_title(panel["title"], fontsize=8)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return drawn


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prometheus")
    p.add_argument("dashboard")
    p.add_argument("out")
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--end", type=float, required=True)
    p.add_argument("--step", default="1s")
    p.add_argument("--rate-interval", default="4s")
    p.add_argument("--title", default="")
    a = p.parse_args()
    with open(a.dashboard) as f:
        dash = json.load(f)
    panels = [x for x in dash["panels"] if x.get("type") != "row"]
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.9 * rows), squeeze=False)
    empty = []
    for i, panel in enumerate(panels):
        if draw(axes[i // cols][i % cols], panel, a.prometheus.rstrip("/"), a) == 0:
            empty.append(panel["title"])
    for j in range(len(panels), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(a.title or dash.get("title", ""), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(a.out, dpi=90)
    print(f"{a.out}: {len(panels)} panels" + (f", without data: {empty}" if empty else ""))


if __name__ == "__main__":
    main()

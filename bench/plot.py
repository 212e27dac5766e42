"""Draw docs/img/benchmarks.png from bench/out/results.json (needs matplotlib).

Run by run.py with whichever interpreter has matplotlib (the CPython 'ours' venv installs it via
the package's `bench` extra):  python bench/plot.py RESULTS.json OUT.png

The bars are each system's median throughput divided by raw C's for the same workload, on a log
axis: workloads have different units, so only ratios share one axis honestly.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or the bench machine
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from report import medians  # noqa: E402
from workloads import WORKLOADS  # noqa: E402


def draw(suite: Dict[str, Any], out: str) -> None:
    med = medians(suite)
    base = med.get("raw-c", {})
    systems: List[str] = [s for s in suite["systems"]
                          if s != "raw-c" and s not in suite["skipped"] and s in med]
    workloads = [w for w in WORKLOADS if base.get(w)]
    if not systems or not workloads:
        raise SystemExit("nothing to plot (raw-c and at least one other system are needed)")
    height = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.25 * len(workloads) * max(3, len(systems)) / 2))
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(systems):
        ys, xs = [], []
        for j, w in enumerate(workloads):
            v = med[s].get(w)
            if v and w not in suite["errors"].get(s, {}):
                ys.append(j + i * height - 0.4 + height / 2)
                xs.append(v / base[w])
        ax.barh(ys, xs, height=height, label=s, color=cmap(i % 10))
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    # plain tick labels (0.1, 0.2, 0.5, 1, 2) read better than powers of ten
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)]
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in ticks if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: "%g" % v))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads)
    ax.invert_yaxis()
    ax.set_xlabel("throughput ÷ raw C (log scale; 1 = the C floor)")
    meta = suite["meta"]
    ax.set_title("sophy benchmarks, N={:,}, median of {} run{}".format(
        meta["n"], meta["runs"], "" if meta["runs"] == 1 else "s"))
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        draw(json.load(f), sys.argv[2])

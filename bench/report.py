"""Turn the suite's collected figures into markdown (docs/benchmarks.md and stdout).

Input is the `suite` dict built by run.py (also saved as bench/out/results.json):
  meta      date, machine, command, n, runs, interpreters and library versions per system
  systems   system names in report order
  skipped   {system: reason}           -> shown as n/a
  runs      {system: [{workload: ops_per_s}, ...]}   one dict per suite run
  errors    {system: {workload: message}}
  memory    {system: {...}}             from memory mode, optional
Every figure is the median over runs; every ratio is computed from medians of this one suite run.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional

from workloads import WORKLOADS

PEER = {"ours-cpython": "sophy-0.7.1-cpython", "ours-pypy": "sophy-0.7.1-pypy",
        "lmdb": "sophy-0.7.1-cpython", "plyvel": "sophy-0.7.1-cpython",
        "sqlite3": "sophy-0.7.1-cpython"}


def medians(suite: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """{system: {workload: median ops/s}} over the runs in which the workload succeeded."""
    out: Dict[str, Dict[str, float]] = {}
    for system, runs in suite["runs"].items():
        per: Dict[str, List[float]] = {}
        for run in runs:
            for w, v in run.items():
                per.setdefault(w, []).append(v)
        out[system] = {w: statistics.median(vs) for w, vs in per.items()}
    return out


def spread_sentence(suite: Dict[str, Any]) -> str:
    """How far apart the runs of one figure were: (slowest - fastest) / median."""
    spreads = []
    for runs in suite["runs"].values():
        per: Dict[str, List[float]] = {}
        for run in runs:
            for w, v in run.items():
                per.setdefault(w, []).append(v)
        spreads += [(max(vs) - min(vs)) / statistics.median(vs) for vs in per.values()
                    if len(vs) > 1 and statistics.median(vs) > 0]
    if not spreads:
        return "Only one run per figure: no spread to report."
    return ("Between runs of the same figure, fastest and slowest differed by %.0f %% of the "
            "median (median over all figures; worst %.0f %%)."
            % (100 * statistics.median(spreads), 100 * max(spreads)))


def _fmt_ops(v: Optional[float]) -> str:
    if v is None:
        return "–"
    return "{:,.0f}".format(v) if v >= 100 else "{:,.1f}".format(v)


def _fmt_ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return ("%.2f×" % r) if r < 10 else ("%.1f×" % r)


def _cell(system: str, w: str, med: Dict[str, Dict[str, float]], suite: Dict[str, Any]) -> str:
    if system in suite["skipped"]:
        return "n/a"
    if w in suite["errors"].get(system, {}):
        return "FAIL"
    return _fmt_ops(med.get(system, {}).get(w))


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def throughput_tables(suite: Dict[str, Any]) -> List[str]:
    """The ops/s table plus the two ratio tables (to raw C, to sophy 0.7.1 same interpreter)."""
    med = medians(suite)
    systems: List[str] = suite["systems"]
    ran = [s for s in systems if s not in suite["skipped"]]
    lines = ["### Throughput (operations per second, median of %d run(s))" % suite["meta"]["runs"],
             ""]
    rows = [[w, unit] + [_cell(s, w, med, suite) for s in systems]
            for w, (unit, _d) in WORKLOADS.items()]
    lines += _table(["workload", "unit"] + systems, rows)

    def ratio_rows(pairs: List[tuple]) -> List[List[str]]:
        out = []
        for w, (unit, _d) in WORKLOADS.items():
            row = [w, unit]
            for a, b in pairs:
                bad = (w in suite["errors"].get(a, {})) or (w in suite["errors"].get(b, {}))
                row.append("FAIL" if bad else _fmt_ratio(med.get(a, {}).get(w),
                                                          med.get(b, {}).get(w)))
            out.append(row)
        return out

    vs_c = [(s, "raw-c") for s in ran if s != "raw-c" and "raw-c" in ran]
    if vs_c:
        lines += ["", "### Ratio to raw C (system ÷ raw-c; 1.00× = as fast as the C floor)", ""]
        lines += _table(["workload", "unit"] + [a for a, _ in vs_c], ratio_rows(vs_c))
    vs_peer = [(s, PEER[s]) for s in ran if s in PEER and PEER[s] in ran]
    if vs_peer:
        lines += ["", "### Ratio to sophy 0.7.1 on the same interpreter (> 1.00× = faster)", ""]
        lines += _table(["workload", "unit"] + ["%s ÷ %s" % (a, b) for a, b in vs_peer],
                        ratio_rows(vs_peer))
    return lines


def _verdict(m: Dict[str, Any]) -> str:
    if not m.get("limit_mb"):
        return "baseline"
    return "pass" if m[m.get("limit_on", "growth_mb")] < m["limit_mb"] else "**over limit**"


def memory_lines(suite: Dict[str, Any]) -> List[str]:
    """The memory-mode section (empty when memory mode did not run)."""
    mem: Dict[str, Any] = suite.get("memory") or {}
    if not mem:
        return []
    lines = ["", "### Memory (memory mode)", "",
             "| system | check | rows / cycles | RSS growth (total) | of it anonymous (heap) "
             "| of it file-backed | limit | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---|"]

    def mb(v: Any) -> str:
        return "–" if v is None else "%.1f MB" % v

    for system, res in mem.items():
        if "unavailable" in res:
            lines.append("| %s | – | – | – | – | – | – | n/a: %s |" % (system, res["unavailable"]))
        for check, err in res.get("errors", {}).items():
            lines.append("| %s | %s | – | – | – | – | – | FAIL: %s |" % (system, check, err))
        m = res.get("memory", {})
        if "full_scan" in m:
            s = m["full_scan"]
            verdict = _verdict(s) if s["rows"] == s["expected_rows"] else "FAIL: row count"
            lines.append("| %s | peak during one full scan | %s | %s | %s | %s | %s | %s |" % (
                system, "{:,}".format(s["rows"]), mb(s["growth_mb"]), mb(s.get("anon_growth_mb")),
                mb(s.get("file_growth_mb")),
                ("%.0f MB (heap)" % s["limit_mb"]) if s.get("limit_mb") else "–", verdict))
        if "churn" in m:
            c = m["churn"]
            lines.append("| %s | after set/get/delete cycles | %s | %s | – | – | %s | %s |" % (
                system, "{:,}".format(c["cycles"]), mb(c["growth_mb"]),
                ("%.0f MB" % c["limit_mb"]) if c.get("limit_mb") else "–", _verdict(c)))
    lines += ["",
              "RSS is read from /proc/self/status. Scan: peak VmHWM (reset via /proc/self/clear_refs"
              " before the scan) minus VmRSS before it; the anonymous part is the sampled peak of "
              "RssAnon. Sophia 2.2 maps its node files (`db.<name>.mmap` defaults to 1), so total "
              "RSS grows by about the data size during a scan even in raw C: those pages are "
              "file-backed and reclaimable, so the 20 MB limit is applied to the anonymous (heap) "
              "part, where a binding leak would show. Churn: VmRSS after minus VmRSS before, "
              "measured after a warm-up of as many cycles, because the engine itself (raw C, same "
              "cycle) grows by ~70 MB over the first million cycles before reaching steady state."]
    return lines


def memory_failed(suite: Dict[str, Any]) -> List[str]:
    """Names of memory checks that failed or went over their limit."""
    bad = []
    for system, res in (suite.get("memory") or {}).items():
        bad += ["%s/%s" % (system, c) for c in res.get("errors", {})]
        for check, m in res.get("memory", {}).items():
            if isinstance(m, dict) and _verdict(m) == "**over limit**":
                bad.append("%s/%s" % (system, check))
    return bad


def markdown(suite: Dict[str, Any], chart: Optional[str]) -> str:
    """The whole docs/benchmarks.md."""
    meta = suite["meta"]
    lines = ["# Benchmarks", "",
             "Generated by `%s` on %s." % (meta["command"], meta["date"]), "",
             "- Code measured: commit %s." % meta.get("source", "?"),
             "- Machine: %s, %s cores, %s RAM, %s" % (meta["cpu"], meta["cores"], meta["ram"],
                                                      meta["os"]),
             "- N = {:,} rows (keys 13 bytes `key%010d`, values 100 bytes); ".format(meta["n"])
             + "each figure is the median of %d run(s), each run a fresh process and store;"
             % meta["runs"] + " ratios come from the medians of this one suite run.",
             "- Load average (1, 5, 15 min) at start %s, at end %s; wall time of the suite %s s. "
             % (meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?"),
                meta.get("elapsed_s", "?"))
             + "The machine has 2 cores shared with other work. " + spread_sentence(suite),
             "- Systems and interpreters:"]
    for s in suite["systems"]:
        if s in suite["skipped"]:
            lines.append("  - `%s`: n/a (%s)" % (s, suite["skipped"][s]))
        else:
            lines.append("  - `%s`: %s" % (s, meta["versions"].get(s, "?")))
    lines += [""]
    lines += throughput_tables(suite)
    if chart:
        lines += ["", "![throughput relative to raw C](%s)" % chart]
    errs = {s: e for s, e in suite["errors"].items() if e}
    if errs:
        lines += ["", "### Failed workloads", ""]
        for s, e in errs.items():
            for w, msg in e.items():
                lines.append("- `%s` / `%s`: %s" % (s, w, msg))
    lines += memory_lines(suite)
    lines += ["", "### Workloads", ""]
    lines += ["- `%s` (%s): %s" % (w, u, d) for w, (u, d) in WORKLOADS.items()]
    lines += ["", "### Method", ""] + [
        "- Every system runs in its own process; Python systems from their own virtualenv "
        "(sophy 0.7.1 is also named `sophy`). Inputs are built before the clock starts; every "
        "workload checks its answers (row and hit counts), a wrong answer is a FAIL, not a figure.",
        "- Each system is fed its natural type: `str` for ours, sophy 0.7.1 and sqlite3; `bytes` "
        "for lmdb and plyvel. Single operations are single-statement transactions everywhere "
        "(LMDB: one transaction per operation; SQLite: autocommit).",
        "- Durability is matched: nothing fsyncs per write (Sophia's default log, LMDB "
        "`sync=False`, LevelDB default `sync=False`, SQLite WAL with `synchronous=NORMAL`).",
        "- LevelDB has no transactions: `txn_100` and `batch_1000` use an atomic WriteBatch. "
        "LevelDB and LMDB have no multi-get: `multi_get_100` is a list of gets (in one read "
        "transaction for LMDB); SQLite uses one `WHERE k IN (...)` query.",
        "- `raw-c` is bench/c/bench_sophia.c over the same pinned engine (with the repository's "
        "patch series) and the engine's compile flags; `multi_get_100` there is 100 `sp_get` "
        "calls, `batch_1000` and `txn_100` one `sp_begin`/`sp_commit` each.",
        "- The chart shows each system's throughput divided by raw C, log scale.",
    ]
    return "\n".join(lines) + "\n"

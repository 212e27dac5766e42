"""Memory mode (run inside a worker process): does the binding keep memory flat?

Two checks, both read from /proc/self/status:

* full scan: fill a store with `rows` rows, then iterate all of them once; the figures are the
  peak RSS (VmHWM) during the scan minus VmRSS just before it, and the same for anonymous memory
  (RssAnon, the heap: where a binding leak would show). The peak is reset first through
  /proc/self/clear_refs ("5" resets VmHWM) so the fill phase's own peak is not charged to the
  scan; a sampling thread records the highest VmRSS/RssAnon it sees (RssAnon has no kernel peak).
  The engine maps its files, so total RSS grows by about the data size even in raw C
  (bench_sophia --scan): those pages are file-backed and reclaimable, and the limit applies to
  the anonymous part.
* churn: `rows` set/get/delete cycles over a small rotating key set; the figure is VmRSS after
  minus VmRSS after an equally long warm-up, which exposes a per-operation leak (1 byte per
  cycle = ~1 MB). bench_sophia --churn runs the same cycle in C as the engine's own baseline.

Limits (20 MB, 5 MB) are reported next to the figures; nothing here asserts on them, run.py
decides what to print.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any, Dict, List

from workloads import KEY_FMT, VALUE

SCAN_LIMIT_MB = 20.0
CHURN_LIMIT_MB = 5.0
CHURN_KEYS = 1000   # rotating key set: tombstones of a handful of keys, not a growing store


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Peak tracker: the highest VmRSS and RssAnon seen every few milliseconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = status_kb("VmRSS")
        self.peak_anon = status_kb("RssAnon")
        self.stop = threading.Event()

    def sample(self) -> None:
        self.peak = max(self.peak, status_kb("VmRSS"))
        self.peak_anon = max(self.peak_anon, status_kb("RssAnon"))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.005)


def scan_growth(store: Any, rows: int) -> Dict[str, Any]:
    """Peak RSS growth (MB) during one full scan of a store holding `rows` rows."""
    gc.collect()
    before = status_kb("VmRSS")
    anon0, file0 = status_kb("RssAnon"), status_kb("RssFile")
    exact = _reset_peak()
    sampler = _Sampler()
    sampler.start()
    t0 = time.perf_counter()
    seen = store.scan_all()
    dt = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    sampler.sample()
    peak = max(status_kb("VmHWM") if exact else 0, sampler.peak)
    return {"rows": seen, "expected_rows": rows, "growth_mb": (peak - before) / 1024.0,
            "anon_growth_mb": (sampler.peak_anon - anon0) / 1024.0,
            "file_growth_mb": (status_kb("RssFile") - file0) / 1024.0,
            "limit_mb": SCAN_LIMIT_MB, "limit_on": "anon_growth_mb", "seconds": dt,
            "method": "VmHWM after clear_refs" if exact else "sampled VmRSS"}


def churn_growth(store: Any, cycles: int) -> Dict[str, Any]:
    """RSS growth (MB) over `cycles` set/get/delete cycles, measured after a warm-up."""
    keys: List[Any] = [KEY_FMT % i for i in range(CHURN_KEYS)]
    db = store.db  # the binding's own mapping API: this checks the binding, not the adapter
    value = VALUE

    def cycle(count: int) -> int:
        ok = 0
        for i in range(count):
            k = keys[i % CHURN_KEYS]
            db[k] = value
            if db.get(k) == value:
                ok += 1
            del db[k]
        return ok

    # Warm up with as many cycles as are measured: the engine itself (raw C, same cycle) grows
    # by ~70 MB over the first million cycles until its in-memory index reaches steady state,
    # and only growth beyond that can be the binding's.
    cycle(cycles)
    gc.collect()
    before = status_kb("VmRSS")
    t0 = time.perf_counter()
    ok = cycle(cycles)
    dt = time.perf_counter() - t0
    gc.collect()
    after = status_kb("VmRSS")
    return {"cycles": cycles, "ok": ok, "growth_mb": (after - before) / 1024.0,
            "limit_mb": CHURN_LIMIT_MB, "limit_on": "growth_mb", "seconds": dt}


def run(cls: type, directory: str, rows: int) -> Dict[str, Any]:
    """Both checks on fresh stores under `directory`; returns a JSON-able dict."""
    out: Dict[str, Any] = {"memory": {}, "errors": {}}
    store = cls(os.path.join(directory, "scan"))
    try:
        batch = 10_000
        keys = [KEY_FMT % i for i in range(rows)]
        for i in range(0, rows, batch):  # update(): the fastest way in, the fill is not measured
            store.db.update({k: VALUE for k in keys[i:i + batch]})
        del keys
        out["memory"]["rss_start_mb"] = status_kb("VmRSS") / 1024.0
        out["memory"]["full_scan"] = scan_growth(store, rows)
    except Exception as exc:
        out["errors"]["full_scan"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        store.close()
    store = cls(os.path.join(directory, "churn"))
    try:
        out["memory"]["churn"] = churn_growth(store, rows)
    except Exception as exc:
        out["errors"]["churn"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        store.close()
    return out

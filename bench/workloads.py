"""The workloads of the suite, written once against the small adapter interface of adapters.py.

Every workload builds its inputs (keys, batches, bounds) *before* the clock starts, times only the
loop that talks to the store, and checks what came back (row counts, found counts): a system that
returns wrong answers fails the workload instead of reporting a fast figure. The sizes mirror
bench/c/bench_sophia.c exactly, so the raw-C floor does the same amount of work.
"""
from __future__ import annotations

import gc
import os
import random
import threading
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

KEY_FMT = "key%010d"          # 13 bytes
MISSING_FMT = "key%09dx"      # 13 bytes, sorts between stored keys so misses land mid-tree
VALUE = "v" * 100             # 100 bytes
RANGE_ROWS = 100
PREFIX_ROWS = 1000            # "key" + 7 digits selects 1,000 consecutive keys
BATCH_ROWS = 1000
MULTI_ROWS = 100
TXN_ROWS = 100
THREAD_COUNTS = (1, 2, 4)

# name -> (unit, description); the order here is the order of the report.
WORKLOADS: Dict[str, Tuple[str, str]] = {
    "seq_set": ("sets/s", "sequential set of N keys into an empty store"),
    "rand_set": ("sets/s", "set of N keys in random order into an empty store"),
    "rand_get": ("gets/s", "N gets of existing keys, random order"),
    "missing_get": ("gets/s", "N gets of absent keys (they sort between stored keys)"),
    "full_scan": ("rows/s", "iterate all N (key, value) pairs in key order"),
    "range_100": ("scans/s", "inclusive range scans of 100 rows from random starts"),
    "prefix_scan": ("scans/s", "prefix scans, 1,000 rows each"),
    "batch_1000": ("batches/s", "atomic batch write (update()) of 1,000 pairs"),
    "multi_get_100": ("calls/s", "multi-get of 100 random existing keys"),
    "txn_100": ("txns/s", "transactions of 100 writes each"),
    "threads_1": ("gets/s", "random gets, 1 thread"),
    "threads_2": ("gets/s", "random gets, 2 threads (aggregate)"),
    "threads_4": ("gets/s", "random gets, 4 threads (aggregate)"),
}


class WorkloadError(Exception):
    """A workload produced a wrong answer (the figure would be meaningless)."""


def counts(n: int) -> Dict[str, int]:
    """How many operations each workload performs for N rows (kept equal to the C program)."""
    return {
        "range_100": max(20, min(2000, n // 100)),
        "prefix_scan": min(200, n // PREFIX_ROWS),
        "batch_1000": max(2, n // BATCH_ROWS),
        "multi_get_100": n // MULTI_ROWS,
        "txn_100": n // TXN_ROWS,
    }


def _timed(fn: Callable[[], Any]) -> Tuple[Any, float]:
    # Collect garbage left by the previous workload so it is not charged to this one.
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _check(name: str, got: int, want: int) -> None:
    if got != want:
        raise WorkloadError("%s: expected %d, got %d" % (name, want, got))


def _threaded_gets(store: Any, keys: Sequence[Any], nthreads: int) -> Tuple[int, float]:
    """Split `keys` over `nthreads` threads; time from a common start to the last join."""
    per = len(keys) // nthreads
    chunks = [keys[i * per:(i + 1) * per] for i in range(nthreads)]
    found = [0] * nthreads
    errors: List[BaseException] = []
    start = threading.Barrier(nthreads + 1)

    def work(i: int) -> None:
        # each thread gets its own handle where the system needs one (sqlite3 connections)
        getter = store.thread_getter()
        start.wait()
        try:
            found[i] = getter(chunks[i])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    gc.collect()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    _check("threads_%d" % nthreads, sum(found), per * nthreads)
    return per * nthreads, dt


def run_all(open_store: Callable[[str], Any], native: type, n: int, directory: str, seed: int,
            only: Sequence[str] = ()) -> Dict[str, Any]:
    """Run the workloads against stores made by `open_store(path)`.

    Returns {"results": {name: {"ops", "seconds"}}, "errors": {name: message}}. `native` is str or
    bytes: the type the system is fed (each system gets its natural type; conversion is not timed).
    """
    rnd = random.Random(seed)
    enc: Callable[[str], Any] = (lambda s: s) if native is str else (lambda s: s.encode())
    value = enc(VALUE)
    keys = [enc(KEY_FMT % i) for i in range(n)]
    results: Dict[str, Dict[str, float]] = {}
    errors: Dict[str, str] = {}
    wanted = set(only) if only else set(WORKLOADS)
    c = counts(n)

    def record(name: str, fn: Callable[[], Tuple[int, float]]) -> None:
        if name not in wanted:
            return
        try:
            ops, secs = fn()
            results[name] = {"ops": ops, "seconds": secs}
        except Exception as exc:  # one broken workload must not hide the others
            errors[name] = "%s: %s" % (type(exc).__name__, exc)

    seq = open_store(os.path.join(directory, "seq"))
    try:
        def seq_set() -> Tuple[int, float]:
            _, dt = _timed(lambda: seq.set_all(keys, value))
            return n, dt
        record("seq_set", seq_set)
    finally:
        seq.close()

    # The random-order store is the one every read workload uses afterwards.
    store = open_store(os.path.join(directory, "rand"))
    try:
        shuffled = keys[:]
        rnd.shuffle(shuffled)

        def rand_set() -> Tuple[int, float]:
            _, dt = _timed(lambda: store.set_all(shuffled, value))
            return n, dt
        record("rand_set", rand_set)
        if "rand_set" in errors:  # nothing below is meaningful on a store that failed to fill
            return {"results": results, "errors": errors}

        get_keys = keys[:]
        rnd.shuffle(get_keys)

        def rand_get() -> Tuple[int, float]:
            found, dt = _timed(lambda: store.get_all(get_keys))
            _check("rand_get", found, n)
            return n, dt
        record("rand_get", rand_get)

        missing = [enc(MISSING_FMT % i) for i in range(n)]
        rnd.shuffle(missing)

        def missing_get() -> Tuple[int, float]:
            found, dt = _timed(lambda: store.get_all(missing))
            _check("missing_get", found, 0)
            return n, dt
        record("missing_get", missing_get)

        def full_scan() -> Tuple[int, float]:
            rows, dt = _timed(store.scan_all)
            _check("full_scan", rows, n)
            return n, dt
        record("full_scan", full_scan)

        starts = [rnd.randrange(n - RANGE_ROWS + 1) for _ in range(c["range_100"])]
        bounds = [(keys[s], keys[s + RANGE_ROWS - 1]) for s in starts]

        def range_100() -> Tuple[int, float]:
            rows, dt = _timed(lambda: store.ranges(bounds))
            _check("range_100", rows, RANGE_ROWS * len(bounds))
            return len(bounds), dt
        record("range_100", range_100)

        prefixes = [enc("key%07d" % rnd.randrange(max(1, n // PREFIX_ROWS)))
                    for _ in range(c["prefix_scan"])]

        def prefix_scan() -> Tuple[int, float]:
            if not prefixes:
                raise WorkloadError("N too small for a 1,000-row prefix")
            rows, dt = _timed(lambda: store.prefixes(prefixes))
            _check("prefix_scan", rows, PREFIX_ROWS * len(prefixes))
            return len(prefixes), dt
        record("prefix_scan", prefix_scan)

        # distinct keys, so every batch really holds 1,000 pairs
        batches = [{keys[i]: value for i in rnd.sample(range(n), min(n, BATCH_ROWS))}
                   for _ in range(c["batch_1000"])]

        def batch_1000() -> Tuple[int, float]:
            _, dt = _timed(lambda: store.batches(batches))
            return len(batches), dt
        record("batch_1000", batch_1000)

        groups = [[keys[rnd.randrange(n)] for _ in range(MULTI_ROWS)]
                  for _ in range(c["multi_get_100"])]

        def multi_get_100() -> Tuple[int, float]:
            found, dt = _timed(lambda: store.multi_gets(groups))
            _check("multi_get_100", found, MULTI_ROWS * len(groups))
            return len(groups), dt
        record("multi_get_100", multi_get_100)

        txn_groups = [[keys[rnd.randrange(n)] for _ in range(TXN_ROWS)]
                      for _ in range(c["txn_100"])]

        def txn_100() -> Tuple[int, float]:
            _, dt = _timed(lambda: store.txns(txn_groups, value))
            return len(txn_groups), dt
        record("txn_100", txn_100)

        for t in THREAD_COUNTS:
            record("threads_%d" % t, lambda t=t: _threaded_gets(store, get_keys, t))

        # a final read-back proves the writes of the batch/transaction workloads landed
        if "txn_100" in wanted and txn_groups and store.get_all(txn_groups[0]) != TXN_ROWS:
            errors["txn_100"] = "WorkloadError: written keys not readable afterwards"
    finally:
        store.close()
    return {"results": results, "errors": errors}

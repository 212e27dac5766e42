"""Concurrency: threads move money between accounts in SSI transactions while readers scan and
views stay open; the books must always balance.

Invariants checked:

* every scan — a plain cursor, a view held open across many transfers, exact-key reads in a
  view — sees the constant total balance;
* a view is repeatable: scanning it again gives exactly the same rows;
* no lost update: each account's final balance is its opening balance plus what the ledger
  (written in the same transactions) says came in and went out, and the ledger has exactly as
  many entries as transfers reported success;
* no deadlock: every thread finishes (joined with a timeout);
* the same holds after closing and reopening the environment.

    python stress/transfers.py --threads 8 --transfers 5000 --accounts 20

``run_transfers`` is what tests/test_concurrency.py calls with small numbers.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TypeVar

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from sophy import Sophia, TransactionConflict, TransactionLocked  # noqa: E402

OPENING = 1000
DBS = [("accounts", "u64"), ("ledger", "string")]
T = TypeVar("T")


def retry(fn: Callable[[], T], attempts: int = 10000,
          counter: Optional[Dict[str, int]] = None) -> T:
    """Run ``fn`` (one whole transaction) until it commits; TransactionConflict and
    TransactionLocked mean "someone else won, try again" under SSI. ``counter`` counts the
    retries by exception name."""
    delay = 0.0001
    for _ in range(attempts):
        try:
            return fn()
        except (TransactionConflict, TransactionLocked) as exc:
            if counter is not None:
                name = type(exc).__name__
                counter[name] = counter.get(name, 0) + 1
            time.sleep(random.random() * delay)  # jitter so the losers do not collide again
            delay = min(delay * 2, 0.005)
    raise RuntimeError("no commit in %d attempts" % attempts)


@dataclass
class Figures:
    threads: int = 0
    transfers: int = 0           # committed transfers (== ledger entries)
    conflicts: int = 0           # TransactionConflict retried
    locked: int = 0              # TransactionLocked retried
    scans: int = 0               # full scans of live cursors and views, each balanced
    view_rescans: int = 0        # second scans of an open view that matched the first
    view_point_reads: int = 0    # exact-key total reads from open views
    seconds: float = 0.0
    failures: List[str] = field(default_factory=list)


class Books:
    """The accounts and their ledger in one environment."""

    def __init__(self, env: Sophia, accounts: int) -> None:
        self.env = env
        self.acc = env["accounts"]
        self.ledger = env["ledger"]
        self.n = accounts
        self.total = OPENING * accounts

    def open_accounts(self) -> None:
        self.acc.update((i, str(OPENING)) for i in range(self.n))

    def transfer(self, tid: str, src: int, dst: int, amount: int) -> None:
        with self.env.transaction(lock_timeout=0.05) as txn:
            acc = txn[self.acc]
            s, d = int(acc[src]), int(acc[dst])
            time.sleep(0)  # give up the GIL between read and write so transactions overlap
            acc[src] = str(s - amount)
            acc[dst] = str(d + amount)
            txn[self.ledger][tid] = "%d:%d:%d" % (src, dst, amount)

    def check_books(self, where: str) -> List[str]:
        """Final-state invariants: balances agree with the ledger, entry by entry."""
        problems = []
        balances = {k: int(v) for k, v in self.acc}
        expected = {i: OPENING for i in range(self.n)}
        for _, entry in self.ledger:
            src, dst, amount = map(int, entry.split(":"))
            expected[src] -= amount
            expected[dst] += amount
        if balances != expected:
            problems.append("%s: balances disagree with the ledger (lost update): %s"
                            % (where, {k: (balances.get(k), v) for k, v in expected.items()
                                       if balances.get(k) != v}))
        if sum(balances.values()) != self.total:
            problems.append("%s: total %d != %d" % (where, sum(balances.values()), self.total))
        return problems


def run_transfers(path: str, threads: int = 4, transfers: int = 100, accounts: int = 10,
                  readers: int = 2, view_holders: int = 1, seed: int = 1,
                  join_timeout: float = 300.0) -> Figures:
    figures = Figures(threads=threads)
    env = Sophia(path, databases=DBS)
    books = Books(env, accounts)
    books.open_accounts()
    done = threading.Event()
    lock = threading.Lock()
    failures: List[str] = figures.failures
    successes = [0] * threads

    def fail(msg: str) -> None:
        with lock:
            failures.append(msg)

    def writer(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        retried: Dict[str, int] = {}
        try:
            for n in range(transfers):
                src = rng.randrange(accounts)
                dst = (src + rng.randrange(1, accounts)) % accounts
                amount = rng.randint(1, 50)
                retry(lambda: books.transfer("w%d-%06d" % (w, n), src, dst, amount),
                      counter=retried)
                successes[w] += 1
        except BaseException as exc:
            fail("writer %d: %r" % (w, exc))
        finally:
            with lock:
                figures.conflicts += retried.get("TransactionConflict", 0)
                figures.locked += retried.get("TransactionLocked", 0)

    def reader(r: int) -> None:
        try:
            while not done.is_set():
                total = sum(int(v) for v in books.acc.values())
                if total != books.total:
                    fail("reader %d: cursor scan total %d != %d" % (r, total, books.total))
                with lock:
                    figures.scans += 1
        except BaseException as exc:
            fail("reader %d: %r" % (r, exc))

    def view_holder(h: int) -> None:
        try:
            while not done.is_set():
                with books.acc.view("books-%d" % h) as view:
                    first = list(view)
                    # keep it open while transfers commit, then read it again two ways
                    for _ in range(3):
                        if done.is_set():
                            break
                        total = sum(int(v) for _, v in view)
                        if total != books.total:
                            fail("view %d: scan total %d" % (h, total))
                    again = list(view)
                    if again != first:
                        fail("view %d: a second scan of an open view differs" % h)
                    point = sum(int(view[i]) for i in range(accounts))
                    if point != books.total:
                        fail("view %d: exact-key total %d" % (h, point))
                    if sum(int(v) for _, v in first) != books.total:
                        fail("view %d: first scan total unbalanced" % h)
                with lock:
                    figures.scans += 1
                    figures.view_rescans += 1
                    figures.view_point_reads += 1
        except BaseException as exc:
            fail("view holder %d: %r" % (h, exc))

    t0 = time.monotonic()
    workers = [threading.Thread(target=writer, args=(w,), name="writer-%d" % w)
               for w in range(threads)]
    watchers = [threading.Thread(target=reader, args=(r,), name="reader-%d" % r)
                for r in range(readers)]
    watchers += [threading.Thread(target=view_holder, args=(h,), name="view-%d" % h)
                 for h in range(view_holders)]
    for t in workers + watchers:
        t.daemon = True  # a deadlocked thread must not keep the process alive
        t.start()
    deadline = time.monotonic() + join_timeout
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
    done.set()
    for t in watchers:
        t.join(max(0.0, deadline - time.monotonic()) + 30)
    stuck = [t.name for t in workers + watchers if t.is_alive()]
    figures.seconds = time.monotonic() - t0
    if stuck:
        failures.append("deadlock: threads still running after %.0fs: %s"
                        % (join_timeout, stuck))
        return figures  # do not close an environment threads are still inside
    figures.transfers = sum(successes)
    ledger_entries = sum(1 for _ in books.ledger.keys())
    if ledger_entries != figures.transfers:
        failures.append("ledger has %d entries, %d transfers succeeded"
                        % (ledger_entries, figures.transfers))
    failures.extend(books.check_books("live"))
    env.close()
    env = Sophia(path, databases=DBS)
    try:
        reopened = Books(env, accounts)
        failures.extend(reopened.check_books("after reopen"))
        entries = sum(1 for _ in reopened.ledger.keys())
        if entries != figures.transfers:
            failures.append("after reopen the ledger has %d entries" % entries)
    finally:
        env.close()
    return figures


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--transfers", type=int, default=5000, help="per writer thread")
    p.add_argument("--accounts", type=int, default=20)
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--path")
    args = p.parse_args(argv)
    path = args.path or tempfile.mkdtemp(prefix="sophy-transfers-")
    print("transfer stress: %d writers x %d transfers over %d accounts, %d readers, %d views, %s"
          % (args.threads, args.transfers, args.accounts, args.readers, args.views,
             sys.implementation.name), flush=True)
    f = run_transfers(path, args.threads, args.transfers, args.accounts, args.readers,
                      args.views, args.seed)
    print("committed transfers (= ledger):  %d" % f.transfers)
    print("retried: conflicts %d, locked %d" % (f.conflicts, f.locked))
    print("balanced scans (cursor + view):  %d" % f.scans)
    print("open-view rescans identical:     %d" % f.view_rescans)
    print("time:                            %.1f s" % f.seconds)
    if not args.path:
        shutil.rmtree(path, ignore_errors=True)
    if f.failures:
        print("FAILED:")
        for msg in f.failures[:20]:
            print("  " + msg)
        return 1
    print("all invariants held")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A torn log tail (what a power loss leaves) must not block, crash or silently corrupt ``open``.

The engine refuses to open a log whose last record is torn or corrupt; ``repair_log`` cuts it at
the first bad record so every complete commit before it is recovered and at most the torn commit
is lost. Each scenario builds the same history, damages the bytes of the *last* commit (or
appends junk after it) and checks the recovered state against a model of the history.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Dict, List, Tuple

import pytest

import sophy
from sophy import EnvironmentLocked, Sophia, SophiaError
from sophy._repair import LogRepairError, check_log, crc32c, repair_log

DBS = [("a", "string"), ("b", "u64")]
State = Tuple[Dict[Any, Any], Dict[Any, Any]]


def open_env(path: str) -> Sophia:
    return Sophia(path, databases=DBS)


def state_of(env: Sophia) -> State:
    return dict(env["a"]), dict(env["b"])


def log_files(path: str) -> List[str]:
    d = os.path.join(path, "log")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".log"))


def last_log(path: str) -> str:
    return log_files(path)[-1]


def apply_base(env: Sophia) -> None:
    """Single writes, a deletion, an atomic batch and a two-database transaction."""
    a, b = env["a"], env["b"]
    for i in range(20):
        a["single-%02d" % i] = "v%d" % i
    del a["single-03"]
    a.update(("batch-%d" % i, "round-0") for i in range(8))
    with env.transaction() as txn:
        txn[a]["seq"] = "1"
        txn[b][1] = "1"


LAST_COMMITS: Dict[str, Callable[[Sophia], None]] = {
    "single": lambda env: env["a"].__setitem__("last", "x" * 40),
    "batch": lambda env: env["a"].update(("batch-%d" % i, "round-1") for i in range(8)),
    "txn": lambda env: _txn_commit(env),
}


def _txn_commit(env: Sophia) -> None:
    with env.transaction() as txn:
        txn[env["a"]]["seq"] = "2"
        txn[env["b"]][2] = "2"


def build(path: str, last: str) -> Tuple[State, State, int, int]:
    """History = base commits, then one ``last`` commit in a separate session.

    Returns (state before the last commit, state after it, log size before, log size after):
    the bytes between the two sizes are exactly the last commit's records."""
    env = open_env(path)
    apply_base(env)
    before = state_of(env)
    env.close()
    size_before = os.path.getsize(last_log(path))
    env = open_env(path)
    LAST_COMMITS[last](env)
    after = state_of(env)
    env.close()
    return before, after, size_before, os.path.getsize(last_log(path))


def assert_open_refused(path: str) -> None:
    with pytest.raises(SophiaError, match="corrupted log file|log of .* is damaged"):
        open_env(path)


def reopen_state(path: str) -> State:
    env = open_env(path)
    try:
        return state_of(env)
    finally:
        env.close()


def test_crc32c_matches_the_standard_check_value() -> None:
    # the engine's CRC-32C has no inversion: the standard one is ~crc(~0, data)
    assert crc32c(0xFFFFFFFF, b"123456789") ^ 0xFFFFFFFF == 0xE3069283
    assert crc32c(0, b"\0" * 13) == 0  # why all-zero records slip past the engine's check


def test_intact_log_is_left_alone(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    _, after, _, _ = build(path, "txn")
    log = last_log(path)
    with open(log, "rb") as f:
        original = f.read()
    report = repair_log(path)
    assert report.clean and report.bytes_dropped == 0 and report.saved == []
    assert report.files_checked == 1
    # 19 + 1 deletion singles, one batch of 8, two transactions of 2 records, in two sessions
    assert report.records_kept == 20 + 1 + 8 + 2 + 2
    assert report.transactions_kept == 21 + 1 + 1 + 1
    with open(log, "rb") as f:
        assert f.read() == original
    assert reopen_state(path) == after


# (name, how to damage the last commit's bytes given (log, start, end))
def _truncate_by(n: int) -> Callable[[str, int, int], None]:
    def damage(log: str, start: int, end: int) -> None:
        os.truncate(log, end - min(n, end - start))
    return damage


def _truncate_to(frac: float) -> Callable[[str, int, int], None]:
    def damage(log: str, start: int, end: int) -> None:
        os.truncate(log, start + max(1, int((end - start) * frac)))
    return damage


def _flip_at(rel: int) -> Callable[[str, int, int], None]:
    def damage(log: str, start: int, end: int) -> None:
        pos = start + rel if rel >= 0 else end + rel
        with open(log, "r+b") as f:
            f.seek(pos)
            byte = f.read(1)
            f.seek(pos)
            f.write(bytes([byte[0] ^ 0x5A]))
    return damage


DAMAGES = {
    "cut-1-byte": _truncate_by(1),
    "cut-13-bytes": _truncate_by(13),
    "cut-to-1-byte": _truncate_to(0.0),
    "cut-to-half": _truncate_to(0.5),
    "flip-last-data-byte": _flip_at(-1),
    "flip-record-size": _flip_at(9),
    "flip-record-crc": _flip_at(0),
}


@pytest.mark.parametrize("last", sorted(LAST_COMMITS))
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_torn_last_commit_is_dropped_and_the_rest_recovered(tmp_path: Any, last: str,
                                                            damage: str) -> None:
    path = str(tmp_path / "env")
    before, _, start, end = build(path, last)
    log = last_log(path)
    DAMAGES[damage](log, start, end)
    with open(log, "rb") as f:
        damaged = f.read()
    assert_open_refused(path)
    assert os.path.getsize(log) == len(damaged)  # a refused open changes nothing
    report = repair_log(path)
    assert not report.clean
    assert report.files_truncated == [log]
    assert report.bytes_dropped == len(damaged) - start
    assert os.path.getsize(log) == start
    (saved,) = report.saved
    assert saved == log + ".torn-1"
    with open(saved, "rb") as f:
        assert f.read() == damaged[start:]  # the cut bytes are kept, byte for byte
    assert reopen_state(path) == before


@pytest.mark.parametrize("junk", [b"\0" * 5, b"\xffgarbage\x01" * 3, b"\x10" + b"\0" * 12])
def test_junk_after_the_last_commit_is_cut(tmp_path: Any, junk: bytes) -> None:
    path = str(tmp_path / "env")
    _, after, _, end = build(path, "batch")
    with open(last_log(path), "ab") as f:
        f.write(junk)
    assert_open_refused(path)
    report = repair_log(path)
    assert report.bytes_dropped == len(junk)
    assert os.path.getsize(last_log(path)) == end
    assert reopen_state(path) == after


@pytest.mark.parametrize("zeros", [13, 26, 4096])
def test_zero_filled_tail_is_cut_by_repair(tmp_path: Any, zeros: int) -> None:
    # a file extended before its data reached the disk reads back as zeros
    path = str(tmp_path / "env")
    _, after, _, end = build(path, "txn")
    with open(last_log(path), "ab") as f:
        f.write(b"\0" * zeros)
    report = repair_log(path)
    assert report.bytes_dropped == zeros and "empty" in report.problems[0]
    assert os.path.getsize(last_log(path)) == end
    assert reopen_state(path) == after


ZERO_TAIL_PROBE = r"""
import sys, sophy
path = sys.argv[1]
try:
    env = sophy.Sophia(path, databases=[("a", "string"), ("b", "u64")])
except sophy.SophiaError:
    sys.exit(0)  # refusing to open is the acceptable answer
rows = dict(env["a"])
env["a"]["after"] = "x"
env.close()
assert "" not in rows, "phantom row replayed from zeros"
env = sophy.Sophia(path, databases=[("a", "string"), ("b", "u64")])
assert env["a"]["after"] == "x"
env.close()
"""


@pytest.mark.parametrize("zeros", [13, 26])
def test_zero_filled_tail_without_repair_is_refused_not_replayed(tmp_path: Any, zeros: int,
                                                                 run_python: Any) -> None:
    path = str(tmp_path / "env")
    build(path, "txn")
    with open(last_log(path), "ab") as f:
        f.write(b"\0" * zeros)
    proc = run_python(ZERO_TAIL_PROBE, path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])


def test_torn_first_record_never_loses_later_commits(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    open_env(path).close()
    with open(last_log(path), "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05")  # 5 bytes of a record header
    try:
        env = open_env(path)
    except SophiaError:
        return  # refusing to open is acceptable
    env["a"]["committed"] = "yes"
    env.close()
    assert reopen_state(path)[0] == {"committed": "yes"}


def test_repair_of_a_torn_first_record_keeps_later_commits(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    open_env(path).close()
    with open(last_log(path), "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05")
    report = repair_log(path)
    assert report.bytes_dropped == 5 and report.records_kept == 0
    env = open_env(path)
    env["a"]["committed"] = "yes"
    env.close()
    assert reopen_state(path)[0] == {"committed": "yes"}


def test_torn_file_header_gets_a_fresh_header(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    open_env(path).close()
    log = last_log(path)
    os.truncate(log, 4)
    with pytest.raises(SophiaError, match="corrupted log file|log of .* is damaged"):
        open_env(path)
    report = repair_log(path)
    assert report.bytes_dropped == 4
    assert os.path.getsize(log) == 11
    env = open_env(path)
    env["a"]["k"] = "v"
    env.close()
    assert reopen_state(path)[0] == {"k": "v"}


def test_corruption_in_an_older_file_sets_later_files_aside(tmp_path: Any) -> None:
    """Only a prefix of the history may be replayed: files after a cut are set aside whole."""
    path = str(tmp_path / "env")
    env = open_env(path)
    env["a"]["file1"] = "1"
    env.log_rotate()
    env["a"]["file2-first"] = "2"
    env["a"]["file2-second"] = "2"
    env.log_rotate()
    env["a"]["file3"] = "3"
    env.close()
    first, second, third = log_files(path)
    os.truncate(second, os.path.getsize(second) - 1)  # tear file2-second
    assert_open_refused(path)
    report = repair_log(path)
    assert report.files_checked == 3
    assert report.files_truncated == [second] and report.files_set_aside == [third]
    assert not os.path.exists(third) and os.path.exists(third + ".torn-1")
    assert reopen_state(path)[0] == {"file1": "1", "file2-first": "2"}


def test_repair_twice_keeps_both_cuts(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    build(path, "single")
    log = last_log(path)
    for n in (1, 2):
        with open(log, "ab") as f:
            f.write(b"junk%d" % n)
        report = repair_log(path)
        assert report.saved == [log + ".torn-%d" % n]
    assert repair_log(path).clean


def test_check_log_changes_nothing(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    _, _, start, end = build(path, "single")
    os.truncate(last_log(path), end - 3)
    report = check_log(path)
    assert report.dry_run and report.bytes_dropped == end - 3 - start and report.saved == []
    assert os.path.getsize(last_log(path)) == end - 3
    assert_open_refused(path)


def test_repair_refuses_an_open_environment(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = open_env(path)
    try:
        with pytest.raises(EnvironmentLocked):
            repair_log(path)
    finally:
        env.close()
    assert repair_log(path).clean


def test_foreign_file_is_refused_untouched(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    open_env(path).close()
    log = last_log(path)
    with open(log, "wb") as f:
        f.write(b"not a sophia log at all")
    with pytest.raises(LogRepairError, match="not a Sophia 2.2 log"):
        repair_log(path)
    with open(log, "rb") as f:
        assert f.read() == b"not a sophia log at all"


def test_custom_log_path_and_missing_log_dir(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    logs = str(tmp_path / "elsewhere")
    env = Sophia(path, databases=DBS, log_path=logs)
    env["a"]["k"] = "v"
    env.close()
    (name,) = os.listdir(logs)
    with open(os.path.join(logs, name), "ab") as f:
        f.write(b"\x07")
    assert repair_log(path).files_checked == 0  # <path>/log does not exist
    assert repair_log(path, log_path=logs).bytes_dropped == 1


@pytest.mark.skipif("repair" not in inspect.signature(Sophia.__init__).parameters,
                    reason="Sophia(path, repair=True) is not wired yet")
def test_open_with_repair(tmp_path: Any) -> None:  # pragma: no cover - depends on wiring
    path = str(tmp_path / "env")
    before, _, start, end = build(path, "txn")
    os.truncate(last_log(path), end - 1)
    env = Sophia(path, databases=DBS, repair=True)
    try:
        assert state_of(env) == before
    finally:
        env.close()
    assert sophy is not None


def test_native_crc_agrees_with_the_pure_one() -> None:
    from sophy import _repair
    native = _repair._native_crc()
    if native is None:
        pytest.skip("the compiled module exports no sy_crc32c helper (pure Python is used)")
    for n in (0, 1, 7, 8, 13, 100, 4097):
        data = os.urandom(n)
        assert native(0, data) == crc32c(0, data)
        assert native(0xDEADBEEF, data) == crc32c(0xDEADBEEF, data)

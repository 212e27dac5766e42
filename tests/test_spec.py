"""Every example of the original sophy README (v2.1), as README.md shows it, runs and gives the
results the spec shows."""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from sophy import ConfigurationError, Sophia

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks(lang: str):
    return re.findall(r"```%s\n(.*?)```" % lang, README, re.S)


def test_readme_quickstart_doctest(tmp_path):
    quick = [b for b in _blocks("python") if b.lstrip().startswith(">>>")]
    assert quick, "README lost its quickstart"
    text = quick[0].replace("'/path/to/data-dir'", repr(str(tmp_path / "data")))
    test = doctest.DocTestParser().get_doctest(text, {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 30


def test_readme_databases_on_startup(tmp_path):
    env = Sophia(str(tmp_path), databases=[("users", "string"), ("clicks", ("string", "u64")),
                                           ("tweets", ("string", "u64"))])
    env["users"]["huey"] = "cat"
    env["clicks"][("huey", 1)] = "x"
    env.close()
    block = [b for b in _blocks("python") if "databases=[" in b][0]
    ns: dict = {"Sophia": Sophia}
    exec(block.replace("'/var/lib/sophia/my-app'", repr(str(tmp_path))), ns)
    assert ns["user_db"]["huey"] == "cat"
    ns["env"].close()


def test_readme_configuration_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = [b for b in _blocks("python") if "memory_limit" in b][0]
    ns: dict = {"Sophia": Sophia}
    exec(block, ns)
    env, db = ns["env"], ns["db"]
    assert env.is_open
    assert db.mmap is True and db.compression == "lz4"
    assert db.compaction_cache == 1024 ** 3 == env.memory_limit
    assert env.config["log.sync"] == 0
    env.close()


def test_spec_configuration_properties(tmp_path):
    env = Sophia(str(tmp_path), auto_open=False)
    env.memory_limit = 1024 * 1024 * 1024
    db = env.create_database("test-db", index_type=("string", "u64"))
    db.mmap = True
    db.compression = "lz4"
    env.open()
    env.scheduler_checkpoint()
    env.scheduler_gc()
    db[("a", 1)] = "b"
    assert db.index_count >= 1
    assert len(db) == 1
    assert db.status == "online"
    assert db.memory_used > 0
    with pytest.raises(ConfigurationError, match="before the environment opens"):
        db.mmap = False
    env.close()
    env = Sophia(str(tmp_path), databases=[("test-db", ("string", "u64"))])
    assert list(env["test-db"]) == [(("a", 1), "b")]
    env.close()


def test_spec_multipart_slicing(tmp_path):
    env = Sophia(str(tmp_path))
    db = env.create_database("multi", ("string", "u64"))
    for s in ("a", "b"):
        for n in (1, 2, 3):
            db[(s, n)] = "%s%d" % (s, n)
    assert [k for k, _ in db[("a", 2):("b", 1)]] == [("a", 2), ("a", 3), ("b", 1)]
    assert [k for k, _ in db[("b", 1):("a", 2)]] == [("b", 1), ("a", 3), ("a", 2)]
    assert [k for k, _ in db[("b",):]] == [("b", 1), ("b", 2), ("b", 3)]
    assert [k for k, _ in db[:("a",)]] == [("a", 1), ("a", 2), ("a", 3)]
    env.close()


def test_spec_cursor_options(tmp_path):
    env = Sophia(str(tmp_path))
    db = env.create_database("c", "string")
    db.update(aa="foo", abc="bar", az="baze", baz="nugget")
    assert list(db.cursor(order=">", key="abc")) == [("az", "baze"), ("baz", "nugget")]
    assert list(db.cursor(order="<", key="az", keys=False)) == ["bar", "foo"]
    assert list(db.cursor(order="<=", key="az", values=False)) == ["az", "abc", "aa"]
    assert list(db.cursor(order=">=", key="b")) == [("baz", "nugget")]
    assert list(db.cursor(order="<=", prefix="a", values=False)) == ["az", "abc", "aa"]
    env.close()

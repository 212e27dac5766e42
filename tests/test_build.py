"""The build foundation: the pinned engine is verified, the patch series applies in order, and
the compiled module is the engine we pinned."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

import sophy
from sophy._sophia_ffi import ffi, lib

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SOURCE = ROOT / "csrc" / "engine_source.py"


def load_engine_source():
    spec = importlib.util.spec_from_file_location("engine_source_under_test", ENGINE_SOURCE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


es = load_engine_source()
have_engine = all((es.ENGINE_DIR / n).is_file() for n in es.SHA256)
needs_engine = pytest.mark.skipif(not have_engine, reason="engine files not in csrc/sophia")


@needs_engine
def test_pinned_files_verify():
    es.verify_dir(es.ENGINE_DIR)


@needs_engine
def test_tampered_file_is_refused(tmp_path):
    for name in es.SHA256:
        shutil.copyfile(es.ENGINE_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / "sophia.c").read_bytes())
    data[1000] ^= 0x01
    (tmp_path / "sophia.c").write_bytes(bytes(data))
    with pytest.raises(es.EngineSourceError, match="sha256"):
        es.verify_dir(tmp_path)


@needs_engine
def test_override_dir_with_tampered_file_is_refused(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name in es.SHA256:
        shutil.copyfile(es.ENGINE_DIR / name, src / name)
    with open(src / "sophia.h", "a") as f:
        f.write("/* tampered */\n")
    monkeypatch.setenv(es.ENV_DIR, str(src))
    with pytest.raises(es.EngineSourceError, match="expected"):
        es.ensure_engine(tmp_path / "dest")
    assert not (tmp_path / "dest" / "sophia.h").exists()


def test_missing_files_say_how_to_provide(tmp_path):
    with pytest.raises(es.EngineSourceError) as info:
        es.verify_dir(tmp_path)
    assert es.ENV_DIR in str(info.value) and "sophy==0.7.1" in str(info.value)


PATCH_A = """--- a/f.c
+++ b/f.c
@@ -1,3 +1,4 @@
 line one
+line one-and-a-half
 line two
 line three
"""
PATCH_B = """--- a/f.c
+++ b/f.c
@@ -1,4 +1,4 @@
 line one
-line one-and-a-half
+line 1.5
 line two
 line three
"""


def _fake_tree(tmp_path: Path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "f.c").write_text("line one\nline two\nline three\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    return engine, patches


def test_patches_apply_in_order(tmp_path):
    engine, patches = _fake_tree(tmp_path)
    # names sort A before B; B only applies on top of A
    (patches / "0001-add.patch").write_text(PATCH_A)
    (patches / "0002-edit.patch").write_text(PATCH_B)
    for p in es.patch_series(patches):
        es.apply_patch_text(p.read_text(), engine, p.name)
    assert (engine / "f.c").read_text() == "line one\nline 1.5\nline two\nline three\n"


def test_patch_applies_at_an_offset(tmp_path):
    # a later patch of a series is made against the pristine file: earlier patches move its
    # lines, so (like patch(1)) the hunk is found at the nearest offset with the same context
    engine, _ = _fake_tree(tmp_path)
    (engine / "f.c").write_text("new first line\nline one\nline two\nline three\n")
    es.apply_patch_text(PATCH_A, engine, "0001-add.patch")
    assert (engine / "f.c").read_text() == \
        "new first line\nline one\nline one-and-a-half\nline two\nline three\n"


def test_patch_out_of_order_fails(tmp_path):
    engine, _ = _fake_tree(tmp_path)
    with pytest.raises(es.EngineSourceError, match="does not apply"):
        es.apply_patch_text(PATCH_B, engine, "0002-edit.patch")
    assert (engine / "f.c").read_text() == "line one\nline two\nline three\n"


def test_patch_naming_missing_file_fails(tmp_path):
    engine, _ = _fake_tree(tmp_path)
    with pytest.raises(es.EngineSourceError, match="does not exist"):
        es.apply_patch_text(PATCH_A.replace("f.c", "g.c"), engine, "x.patch")


def test_empty_patch_fails(tmp_path):
    engine, _ = _fake_tree(tmp_path)
    with pytest.raises(es.EngineSourceError, match="no file changes"):
        es.apply_patch_text("just words\n", engine, "x.patch")


@needs_engine
def test_prepare_build_copy_applies_series_to_a_copy(tmp_path):
    patches = tmp_path / "patches"
    patches.mkdir()
    header = (es.ENGINE_DIR / "sophia.h").read_text().splitlines(keepends=True)
    patch = "--- a/sophia.h\n+++ b/sophia.h\n@@ -1,2 +1,3 @@\n %s+/* patched */\n %s" % (
        header[0], header[1])
    (patches / "0001.patch").write_text(patch)
    out = es.prepare_build_copy(tmp_path / "out", es.ENGINE_DIR, patches)
    assert (out / "sophia.h").read_text().splitlines()[1] == "/* patched */"
    es.verify_dir(es.ENGINE_DIR)  # the pristine files are untouched


def test_module_reports_pinned_engine(tmp_path):
    env = sophy.Sophia(str(tmp_path / "d"), auto_open=False)
    assert env.version == "2.2"
    assert env.build == "669d57b"
    assert sophy.ENGINE_BUILD == env.build
    env.close()


def test_module_exposes_engine_and_helpers():
    for name in ("sp_env", "sp_open", "sp_get", "sy_get", "sy_set", "sy_cursor_fetch",
                 "sy_set_many", "sy_commit"):
        assert hasattr(lib, name), name
    assert ffi.sizeof("sy_env") > 0


def test_engine_source_is_not_tracked():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, stdout=subprocess.PIPE,
                           check=True, text=True).stdout.split()
    assert not [f for f in files if f.split("/")[-1] in ("sophia.c", "sophia.h")]

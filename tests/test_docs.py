"""Run the examples in docs/*.md: every ```python block with ``>>>`` prompts is a doctest (the
blocks of one page share their globals, in order, in a fresh working directory); other python
blocks must at least compile."""
from __future__ import annotations

import doctest
import gc
import re
from pathlib import Path
from typing import List, Tuple

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> List[Tuple[int, str]]:
    """(line number of the block's first line, source) of each python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_docs_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"index.md", "guide.md", "api.md", "changelog.md", "differences.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = page.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict = {}
    report: List[str] = []
    try:
        for lineno, source in python_blocks(text):
            if ">>>" not in source:
                compile(source, "%s:%d" % (page.name, lineno), "exec")
                continue
            test = parser.get_doctest(source, globs, page.name, str(page), lineno)
            runner.run(test, out=report.append, clear_globs=False)
            globs = test.globs  # get_doctest copies the globals: carry them forward
    finally:
        # environments left open by a failing example must not keep their directories locked
        for value in list(globs.values()):
            close = getattr(value, "close", None)
            if close is not None and type(value).__module__.startswith("sophy"):
                try:
                    close()
                except Exception:
                    pass
        globs.clear()
        gc.collect()
    assert runner.failures == 0, "".join(report)


def test_api_reference_names_every_public_member() -> None:
    """docs/api.md mentions (in backticks) every public name and every public member of the
    public classes, so the reference cannot silently fall behind the code."""
    import inspect

    import sophy

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = []
    for name in sophy.__all__ + ["__version__", "ENGINE_VERSION", "ENGINE_BUILD"]:
        if "`%s" % name not in text:
            missing.append(name)
        obj = getattr(sophy, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for member in dir(obj):
            if member.startswith("_"):
                continue
            if not re.search(r"`%s\b" % re.escape(member), text):
                missing.append("%s.%s" % (name, member))
    assert not missing, "not in docs/api.md: %s" % ", ".join(missing)

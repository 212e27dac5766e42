"""Shared fixtures: only generic ones live here (test modules keep their own helpers)."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable, Iterator, List

import pytest

import sophy

# Child processes import sophy from the same place as this interpreter (editable install or
# source tree): put src/ on their path explicitly so they never pick another copy.
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


@pytest.fixture
def make_env(tmp_path: Any) -> Iterator[Callable[..., sophy.Sophia]]:
    """``make_env(databases=[...], name='env', **options)`` -> an open ``Sophia`` in
    ``tmp_path/name``; every environment made is closed at teardown."""
    made: List[sophy.Sophia] = []

    def make(databases: Any = (("db", "string"),), name: str = "env",
             **options: Any) -> sophy.Sophia:
        env = sophy.Sophia(str(tmp_path / name), databases=list(databases), **options)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.fixture
def run_python() -> Callable[..., "subprocess.CompletedProcess[str]"]:
    """``run_python(code, *args, timeout=60)``: run ``code`` in a fresh interpreter (this one)
    with sophy importable; returns the completed process (text stdout/stderr)."""

    def run(code: str, *args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
        env = dict(os.environ)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=timeout, env=env)

    return run

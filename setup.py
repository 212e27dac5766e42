"""Build wiring only: metadata lives in pyproject.toml, the extension in build_ffi.py."""
from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])

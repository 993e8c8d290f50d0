"""pygasi media package.

The modules in `COMPILED_MODULES` run for every packet and every 20 ms frame; `setup.py` builds
them with mypyc when it can (`make compile` in a checkout). The compiled and the pure-Python
modules are the same source and behave the same; compiled, the engine's own work (all but the
Opus codec) costs about a third less CPU (bench/README.md). They are used together or not at
all: mypyc links them to each other directly, so one stale module would still call the others'
old code. The pure-Python ones are
used instead when `PYGASI_INTERPRETED` is set (profilers see inside them) or, in a checkout,
when a source changed after the build (`SOURCE_REASON` says why).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED_MODULES = (
    "stats",
    "concealment",
    "level",
    "jitterbuffer",
    "rtp_session",
    "mixer",
    "pipeline",
    "resample",
    "clock",
    "codecs.g711",
    "rtp",
)
NATIVE_LIBRARY = "_compiled"  # mypyc's group: media/_compiled__mypyc.*.so holds the code

_HERE = Path(__file__).resolve().parent


def _source(name: str) -> Path:
    return _HERE.joinpath(*name.split(".")).with_suffix(".py")


def _built(name: str) -> Path | None:
    base = _HERE.joinpath(*name.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = base.with_name(base.name + suffix)
        if path.exists():
            return path
    return None


def _source_reason() -> str | None:
    """Why the pure-Python modules are used, or None to use the compiled ones."""
    if os.environ.get("PYGASI_INTERPRETED"):
        return "PYGASI_INTERPRETED is set"
    built = [_built(name) for name in (*COMPILED_MODULES, f"{NATIVE_LIBRARY}__mypyc")]
    if not any(built):
        return "not compiled"
    if not all(built):
        return "compiled only in part"
    if (_HERE.parent / "pyproject.toml").exists():  # a checkout, built in place
        for name, path in zip(COMPILED_MODULES, built, strict=False):
            assert path is not None
            if _source(name).stat().st_mtime > path.stat().st_mtime:
                return f"{_source(name).relative_to(_HERE.parent)} changed after the build"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the compiled modules' pure-Python source instead of the extension."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(name))


SOURCE_REASON = _source_reason()
COMPILED = SOURCE_REASON is None
if not COMPILED and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourceFinder())

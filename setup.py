"""Builds media's per-packet modules with mypyc (optional: without it pygasi is pure Python).

The media engine's own work per call and 20 ms - the RTP session, the jitter buffer, the mixer,
the pipeline - is thousands of Python bytecodes; compiled by mypyc from the same typed source it
costs about a third less CPU (all but the Opus codec; bench/README.md). The module list is
`media.COMPILED_MODULES`. `PYGASI_COMPILE=0` skips the build; any failure (no compiler, no
mypyc) leaves a pure-Python install and says so. In a checkout, `make compile` builds in place.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

HERE = Path(__file__).resolve().parent


def media_constant(name: str) -> Any:
    """A constant of media/__init__.py, read without importing the package (its
    dependencies may be absent where this runs)."""
    tree = ast.parse((HERE / "media" / "__init__.py").read_text())
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise RuntimeError(f"media/__init__.py has no {name}")


def extensions() -> list[Any]:
    if os.environ.get("PYGASI_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify

        names = media_constant("COMPILED_MODULES")
        paths = ["media/" + name.replace(".", "/") + ".py" for name in names]
        group = f"media.{media_constant('NATIVE_LIBRARY')}"
        modules = mypycify(paths, opt_level="3", group_name=group)
    except (Exception, SystemExit) as exc:  # no mypyc; mypyc's errors exit
        print(f"pygasi: media modules not compiled ({exc}); pure Python", file=sys.stderr)
        return []
    for module in modules:
        module.optional = True  # a compiler error leaves the pure-Python module
    return list(modules)


setup(ext_modules=extensions())

"""The media modules mypyc compiles (setup.py): built and in use where they should be."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import media

ROOT = Path(__file__).resolve().parents[2]


def test_compiled_modules_are_in_use_when_expected() -> None:
    # `make pytest` sets PYGASI_EXPECT_COMPILED: a build that failed must not pass unseen
    # (the tests would then only have run the pure-Python modules).
    if not os.environ.get("PYGASI_EXPECT_COMPILED"):
        pytest.skip("PYGASI_EXPECT_COMPILED is not set")
    assert media.COMPILED, media.SOURCE_REASON
    for name in media.COMPILED_MODULES:
        module = importlib.import_module(f"media.{name}")
        assert module.__file__ is not None and not module.__file__.endswith(".py"), name


def test_interpreted_on_request() -> None:
    """PYGASI_INTERPRETED loads every compiled module's source (profilers see inside it)."""
    probe = (
        "import media, media.pipeline, media.mixer;"
        "print(media.COMPILED, media.pipeline.__file__.endswith('.py'),"
        " media.mixer.__file__.endswith('.py'))"
    )
    env = {**os.environ, "PYGASI_INTERPRETED": "1"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True", "True"]


def _fake_checkout(root: Path, built: list[str], newer: str | None = None) -> str | None:
    """media/__init__.py's verdict in a copy of the package whose compiled modules are empty
    files: `built` names those that exist, `newer` a source touched after them."""
    package = root / "media"
    (package / "codecs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (package / "__init__.py").write_text((ROOT / "media" / "__init__.py").read_text())
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in media.COMPILED_MODULES:
        path = package.joinpath(*name.split("."))
        path.with_suffix(".py").write_text("")
        os.utime(path.with_suffix(".py"), (1_000_000, 1_000_000))
        if name in built:
            path.with_name(path.name + suffix).write_text("")
    if built:
        (package / f"{media.NATIVE_LIBRARY}__mypyc{suffix}").write_text("")
    if newer is not None:
        source = package.joinpath(*newer.split(".")).with_suffix(".py")
        os.utime(source, None)  # now: after the build
        for path in package.rglob(f"*{suffix}"):
            os.utime(path, (2_000_000, 2_000_000))
    spec = importlib.util.spec_from_file_location(
        "pygasi_fake_media", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    before = list(sys.meta_path)
    env = os.environ.pop("PYGASI_INTERPRETED", None)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.meta_path[:] = before
        if env is not None:
            os.environ["PYGASI_INTERPRETED"] = env
    reason: str | None = module.SOURCE_REASON
    return reason


@pytest.mark.parametrize(
    ("built", "newer", "expected"),
    [
        ("all", None, None),
        ("none", None, "not compiled"),
        ("some", None, "compiled only in part"),
        ("all", "mixer", "media/mixer.py changed after the build"),
        ("all", "codecs.g711", "media/codecs/g711.py changed after the build"),
    ],
)
def test_a_checkout_runs_the_source_unless_every_compiled_module_is_current(
    tmp_path: Path, built: str, newer: str | None, expected: str | None
) -> None:
    """A stale compiled module would run the old code (and the others would call it): all of
    the source runs instead, and says why."""
    names = {
        "all": list(media.COMPILED_MODULES),
        "none": [],
        "some": list(media.COMPILED_MODULES[:2]),
    }[built]
    assert _fake_checkout(tmp_path, names, newer) == expected

"""The installed ``pygasi`` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import allocator_restart, main
from gateway.config import GatewayConfig


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("pygasi ")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "pygasi"
    result = subprocess.run([str(script), "version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("pygasi 0.1.0")


def test_unknown_command_exits_2() -> None:
    script = Path(sys.executable).parent / "pygasi"
    result = subprocess.run(
        [str(script), "frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_run_restarts_once_with_the_configured_allocator() -> None:
    config = GatewayConfig()
    assert config.runtime.allocator == "malloc"
    env = allocator_restart(config, {"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "PYTHONMALLOC": "malloc"}
    # Restarted (or an allocator chosen outside): go on, whatever it is.
    assert allocator_restart(config, env) is None
    assert allocator_restart(config, {"PYTHONMALLOC": "pymalloc_debug"}) is None
    config.runtime.allocator = "pymalloc"
    assert allocator_restart(config, {"PATH": "/usr/bin"}) is None

"""systemd/pygasi.service: the settings the README promises, and systemd's own check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import DrainConfig

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pygasi.service"


def settings() -> dict[str, list[str]]:
    """Key -> every value, per the unit-file syntax (keys may repeat; '#' starts a comment)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_gateway_with_a_drain_it_can_finish() -> None:
    unit = settings()
    assert unit["ExecStart"] == ["/opt/pygasi/bin/pygasi run --config /etc/pygasi/pygasi.toml"]
    assert unit["Type"] == ["notify"]  # gateway.cli sends READY=1 once SIP listens
    assert "network-online.target" in unit["Wants"][0]
    assert set(unit["After"][0].split()) >= {"network-online.target", "prosody.service"}
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["TimeoutStopSec"][0]) > DrainConfig().timeout
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["pygasi"]
    assert int(unit["LimitNOFILE"][0]) >= 65536
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ):
        assert unit[key] == [value], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    # The unit as installed, except that ExecStart points at this venv's console script.
    script = Path(sys.executable).parent / "pygasi"
    text = UNIT.read_text().replace("/opt/pygasi/bin/pygasi", str(script))
    copy = tmp_path / "pygasi.service"
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stderr.splitlines() if "pygasi.service" in line]
    assert result.returncode == 0 and not problems, result.stderr

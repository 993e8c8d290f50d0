"""Shared pytest set-up: real-peer markers that must never be skipped silently on CI."""

from __future__ import annotations

import os
import shutil

import pytest

# Marker -> the executable that the real peer provides (Debian package in parentheses).
PEER_BINARIES: dict[str, str] = {
    "sipp": "sipp",  # sip-tester
    "kamailio": "kamailio",  # kamailio, kamailio-tls-modules
    "prosody": "prosody",  # prosody
    "baresip": "baresip",  # baresip
}


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, binary in PEER_BINARIES.items():
        if item.get_closest_marker(marker) is None:
            continue
        if shutil.which(binary) is not None:
            continue
        message = (
            f"real peer {binary!r} (marker {marker!r}) is not installed; "
            "run scripts/install-test-deps as root"
        )
        if _on_ci():
            # On CI a missing peer is a set-up defect, never a silent skip.
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

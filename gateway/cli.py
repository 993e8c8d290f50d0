"""The ``pygasi`` command line.

Subcommands appear as the product grows; ``run`` and ``check-config`` arrive with dial-in
(the gateway that binds a SIP call to a conference participant).
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("pygasi")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pygasi", description="SIP <-> Jitsi Meet gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"pygasi {package_version()} (Python {platform.python_version()})")
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

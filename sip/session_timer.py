"""Session timers (RFC 4028): who refreshes the session, and how often."""

from __future__ import annotations

from dataclasses import dataclass

from sip.errors import SipParseError
from sip.grammar import parse_params
from sip.message import Request, Response

DEFAULT_INTERVAL = 1800  # RFC 4028 §4 recommends 1800 s
MIN_SE = 90  # RFC 4028 §5: never below 90 s


@dataclass
class SessionTimer:
    interval: int
    we_refresh: bool

    @staticmethod
    def parse(value: str) -> tuple[int, str | None]:
        """``Session-Expires: 1800;refresher=uac`` -> (1800, "uac")."""
        delta, _, rest = value.partition(";")
        delta = delta.strip()
        if not delta.isdigit():
            raise SipParseError(f"invalid Session-Expires: {value[:40]!r}")
        params = parse_params(";" + rest if rest else "", "Session-Expires")
        refresher = params.get("refresher")
        return min(int(delta), 2**31), refresher.lower() if refresher else None

    @classmethod
    def for_uas(cls, request: Request, min_se: int) -> SessionTimer | None:
        """The timer we run as the UAS of ``request`` (RFC 4028 §9)."""
        value = request.headers.get("Session-Expires")
        if value is None:
            return None
        interval, refresher = cls.parse(value)
        interval = max(interval, min_se)
        if refresher is None:
            # §9: the UAS picks; the UAC refreshes when it supports the extension.
            supported = {t.lower() for t in request.headers.values("Supported")}
            refresher = "uac" if "timer" in supported else "uas"
        return cls(interval=interval, we_refresh=refresher == "uas")

    @classmethod
    def for_uac(cls, request: Request, response: Response) -> SessionTimer | None:
        """The timer a 2xx to our request sets up (RFC 4028 §7.2)."""
        value = response.headers.get("Session-Expires")
        if value is None:
            return None
        interval, refresher = cls.parse(value)
        return cls(interval=interval, we_refresh=(refresher or "uac") == "uac")

    def add_to_response(self, response: Response) -> None:
        refresher = "uas" if self.we_refresh else "uac"
        response.headers.set("Session-Expires", f"{self.interval};refresher={refresher}")
        if refresher == "uac":
            # §9: the UAC must know it has to refresh.
            response.headers.set("Require", "timer")

    def refresh_header_value(self, _outbound: bool = False) -> str:
        """Session-Expires for a refresh we send: we stay the refresher (we are its UAC)."""
        return f"{self.interval};refresher=uac"

    def check_min_se(self, min_se: int) -> bool:
        return self.interval >= min_se

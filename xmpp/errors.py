"""Errors of the conference leg's signalling: parse errors for peer input, typed join failures
for the gateway (jigasi.md §1.6 maps each to a SIP outcome), connection failures."""

from __future__ import annotations


class XmppError(Exception):
    """Base of every error the conference leg's signalling raises."""


class StanzaParseError(XmppError, ValueError):
    """A stanza from a peer that cannot be understood: a missing or malformed attribute, a
    number out of range, bad JSON. The only error peer input may raise; the handler answers
    the IQ with ``condition`` (RFC 6120 §8.3.3.1 ``bad-request`` unless something more
    specific applies) and leaves everything else alone."""

    def __init__(self, reason: str, condition: str = "bad-request") -> None:
        super().__init__(reason)
        self.reason = reason
        self.condition = condition


class JingleParseError(StanzaParseError):
    """A malformed ``<jingle>`` (XEP-0166 §8: answered ``bad-request``)."""


class ConnectionFailed(XmppError):
    """The XMPP connection could not be established (TCP, TLS, stream) in time."""


class AuthenticationFailed(ConnectionFailed):
    """SASL failed: wrong credentials, or no mechanism both sides accept (e.g. ANONYMOUS
    disabled on the VirtualHost)."""


class ConferenceRequestError(XmppError):
    """The focus refused or never answered the conference request (jingle.md §2.2)."""

    def __init__(self, reason: str, condition: str | None = None) -> None:
        super().__init__(reason)
        self.condition = condition


class JoinError(XmppError):
    """The MUC join failed. ``condition`` is the XMPP error condition (RFC 6120 §8.3.3),
    ``text`` the server's explanation if any."""

    def __init__(self, reason: str, condition: str | None = None, text: str | None = None) -> None:
        super().__init__(reason)
        self.condition = condition
        self.text = text


class RoomPasswordError(JoinError):
    """``not-authorized``: the room is password-protected and the password was missing or
    wrong (XEP-0045 §7.2.5). ``password_given`` tells which."""

    def __init__(self, password_given: bool, text: str | None = None) -> None:
        what = "wrong room password" if password_given else "the room needs a password"
        super().__init__(what, "not-authorized", text)
        self.password_given = password_given


class LobbyEnabled(JoinError):
    """``registration-required``: a members-only room. With Jitsi's lobby the error carries
    ``<lobbyroom xmlns="http://jitsi.org/jitmeet">`` (jingle.md §10, jigasi.md §1.6-1.7);
    ``lobby_room`` is its JID, None for a plain members-only room."""

    def __init__(self, lobby_room: str | None, text: str | None = None) -> None:
        reason = f"lobby enabled ({lobby_room})" if lobby_room else "members-only room"
        super().__init__(reason, "registration-required", text)
        self.lobby_room = lobby_room


class RoomFull(JoinError):
    """``service-unavailable``: the room reached its occupant limit (XEP-0045 §7.2.10,
    Jitsi's mod_muc_max_occupants)."""

    def __init__(self, text: str | None = None) -> None:
        super().__init__("the room is full", "service-unavailable", text)


class NotAllowed(JoinError):
    """``not-allowed`` (room creation restricted, an invalid nick under
    mod_muc_resource_validate) or ``forbidden`` (banned)."""


class DisplayNameRequired(JoinError):
    """``not-acceptable`` with ``<displayname-required/>``: the lobby wants a ``<nick>``."""


class JoinTimeout(JoinError):
    """No self-presence and no error within the join timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no answer to the MUC join within {timeout:g} s", None, None)
        self.timeout = timeout


class RequestRefused(XmppError):
    """An IQ we sent (e.g. a mute request to the focus) was answered with an error."""

    def __init__(self, what: str, condition: str | None, text: str | None = None) -> None:
        super().__init__(
            f"{what} refused: {condition or 'timeout'}" + (f" ({text})" if text else "")
        )
        self.condition = condition
        self.text = text

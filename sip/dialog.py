"""SIP dialogs (RFC 3261 §12): identity, sequence numbers, route set and remote target."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from sip.errors import SipParseError
from sip.headers import Headers, NameAddr, parse_name_addr
from sip.message import Request, Response
from sip.uri import Uri


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # our From/To address, without tag
    remote_uri: NameAddr
    remote_target: Uri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, confirmed: bool) -> Dialog:
        """The dialog a UAS creates with its response (§12.1.1): the route set is the request's
        Record-Route in order, the remote target its Contact."""
        remote = request.from_
        target = _contact_uri(request)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=_strip_tag(request.to),
            remote_uri=_strip_tag(remote),
            remote_target=target,
            route_set=request.record_routes,
            local_seq=0,
            remote_seq=request.cseq.seq,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC creates from a 1xx/2xx with a To tag (§12.1.2): the route set is
        the response's Record-Route reversed."""
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_strip_tag(request.from_),
            remote_uri=_strip_tag(response.to),
            remote_target=_contact_uri(response, fallback=request.uri),
            route_set=list(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    def confirm_from(self, response: Response) -> None:
        """An early UAC dialog becomes confirmed by its 2xx; the 2xx's Record-Route and
        Contact replace the early ones (§12.1.2, §13.2.2.4)."""
        self.state = DialogState.CONFIRMED
        self.route_set = list(reversed(response.record_routes))
        self.remote_target = _contact_uri(response, fallback=self.remote_target)

    def refresh_target(self, message: Request | Response) -> None:
        """Target refresh requests and their 2xx update the remote target (§12.2)."""
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri

    def accept_remote_cseq(self, request: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return False
        if self.remote_seq is None or seq > self.remote_seq:
            self.remote_seq = seq
        return True

    def next_seq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def request_target(self) -> tuple[Uri, list[NameAddr]]:
        """Request-URI and Route headers for a new request (§12.2.1.1): loose routing when the
        first route has ``lr``, strict routing otherwise."""
        if not self.route_set:
            return self.remote_target.without_headers(), []
        first = self.route_set[0]
        if first.uri.lr:
            return self.remote_target.without_headers(), list(self.route_set)
        uri = replace(first.uri, params={k: v for k, v in first.uri.params.items()})
        routes = [*self.route_set[1:], NameAddr(uri=self.remote_target)]
        return uri.without_headers(), routes

    def next_hop(self) -> Uri:
        """Where the request goes first: the first route, else the Request-URI (§8.1.2)."""
        uri, routes = self.request_target()
        if routes and self.route_set[0].uri.lr:
            return routes[0].uri
        return uri  # no route set, or a strict router that is now the Request-URI

    def build_request(
        self, method: str, via: str, contact: str | None, seq: int | None = None
    ) -> Request:
        uri, routes = self.request_target()
        headers = Headers()
        headers.add("Via", via)
        for route in routes:
            headers.add("Route", str(route))
        headers.add("Max-Forwards", "70")
        local = NameAddr(
            self.local_uri.uri, self.local_uri.display_name, dict(self.local_uri.params)
        )
        local.params["tag"] = self.local_tag
        remote = NameAddr(
            self.remote_uri.uri, self.remote_uri.display_name, dict(self.remote_uri.params)
        )
        if self.remote_tag:
            remote.params["tag"] = self.remote_tag
        headers.add("From", str(local))
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq if seq is not None else self.next_seq()} {method}")
        if contact is not None:
            headers.add("Contact", contact)
        return Request(method=method, uri=uri, headers=headers)


def _strip_tag(addr: NameAddr) -> NameAddr:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(uri=addr.uri, display_name=addr.display_name, params=params)


def _contact_uri(message: Request | Response, fallback: Uri | None = None) -> Uri:
    try:
        contacts = message.contacts
    except SipParseError:
        contacts = []
    if contacts:
        return contacts[0].uri
    if fallback is not None:
        return fallback
    raise SipParseError("dialog-creating message without Contact")


def parse_route_header(value: str) -> NameAddr:
    return parse_name_addr(value)

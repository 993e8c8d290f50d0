"""pygasi's SIP stack: a sans-IO core (messages, transactions, dialogs, SDP, digest) with a thin
asyncio shell (transports, user agent)."""

from sip.errors import SipParseError
from sip.headers import CSeq, Headers, NameAddr, Via
from sip.message import Message, Request, Response, StreamFramer, parse_message
from sip.uri import Uri, parse_uri

__all__ = [
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "Via",
    "parse_message",
    "parse_uri",
]

"""Guards for the one slixmpp private attribute the connection relies on: if slixmpp renames
it, closed connections would silently keep a send task each (a leak), so fail loudly here."""

from __future__ import annotations

import inspect

from slixmpp.xmlstream import xmlstream


def test_send_task_attribute_exists() -> None:
    source = inspect.getsource(xmlstream.XMLStream)
    # xmpp/connection.py stop_send_task() cancels this task when a connection closes.
    assert "self._run_out_filters" in source
    assert "ensure_future" in source or "create_task" in source

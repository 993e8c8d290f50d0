"""pygasi xmpp package."""

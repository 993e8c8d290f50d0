"""pygasi sip package."""

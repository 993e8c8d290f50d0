"""pygasi media package."""

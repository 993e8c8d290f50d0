"""pygasi gateway package."""

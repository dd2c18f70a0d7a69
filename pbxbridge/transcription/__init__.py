"""Local speech-to-text of call recordings and full-text search over it."""

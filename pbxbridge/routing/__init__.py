"""Overflow routing (FastAGI), manager line states and click-to-call."""

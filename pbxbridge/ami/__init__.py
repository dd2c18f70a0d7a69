"""Asterisk Manager Interface: frames, the live listener and the trace simulator."""

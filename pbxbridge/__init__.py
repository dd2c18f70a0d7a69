"""pbxbridge: every sales call on Asterisk/FreePBX lands on the client's card."""

__version__ = "0.1.0"

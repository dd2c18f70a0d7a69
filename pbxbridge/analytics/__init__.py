"""Speech analytics: every transcribed call checked against the sales scripts, and how the conversation went."""

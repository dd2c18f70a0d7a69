"""Client cards and their phone numbers."""

"""Calls the AMI stream never carried, rebuilt from Asterisk's CEL and CDR tables (FreePBX's asteriskcdrdb)."""

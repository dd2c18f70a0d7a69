"""Calls: the pure tracker that turns AMI events into finished calls, and their storage."""

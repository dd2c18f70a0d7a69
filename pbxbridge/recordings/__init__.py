"""Call recordings: locating MixMonitor files and reading their format."""

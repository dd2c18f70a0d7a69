"""The ``pbxbridge`` command line."""

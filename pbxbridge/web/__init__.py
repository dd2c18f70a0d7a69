"""The web app and REST API."""

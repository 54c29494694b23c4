"""Flowbin's HTTP API: thin Flask views over the services in ``shared``."""

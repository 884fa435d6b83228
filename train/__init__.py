"""Drivers and the `equalinfo` command line."""

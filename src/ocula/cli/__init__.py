"""Typer commands over the Python API."""

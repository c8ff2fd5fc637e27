"""Tests import the project as the package ``ov3r`` (``pip install -e .`` maps the repo root to it)."""

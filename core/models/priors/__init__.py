"""Priors shipped with the project (data, no code): see README.md."""

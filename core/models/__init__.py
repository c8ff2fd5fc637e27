"""Torch modules of the engine (imported lazily by their users)."""

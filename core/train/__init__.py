"""Training loops for the learned parts of the engine."""

"""Beam transforms, one module per stage, and the pure functions they call."""

"""Moved: ``o365lib.modeling.transfer`` (kept as a re-export until callers switch)."""
from o365lib.modeling.transfer import transfer_weights  # noqa: F401

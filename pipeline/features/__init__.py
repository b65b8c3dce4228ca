"""Pure per-clip feature functions: audio descriptors, music descriptors, text embeddings."""


class ClipError(ValueError):
    """A clip that cannot be turned into features; recorded, never fatal."""

"""Pure per-clip feature functions: audio descriptors, music descriptors, text embeddings."""

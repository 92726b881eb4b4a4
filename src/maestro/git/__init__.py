"""Git, in pure Python (dulwich): checkpoints and rollback, the in-memory index, the one tree walker, housekeeping."""

"""The session store: ``.flow/maestro/`` on disk (the fsync'd event log, the lock, atomic writes) and
the derived views.
"""

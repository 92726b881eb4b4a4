"""config.yaml: the typed model, reading it (one-line errors naming file, line and key) and writing it
(``maestro init``).
"""

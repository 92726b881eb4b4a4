"""Which catalogue capabilities a feature request mentions: the questions the ``tech_stack`` decision is asked."""

from __future__ import annotations

import re

__all__ = ["CAPABILITY_WORDS", "capabilities"]

CAPABILITY_WORDS = {
    "http client": ("http client", "http request", "fetch", "api client"),
    "web framework": ("web app", "web framework", "web server", "http server", "endpoint", "rest api"),
    "orm": ("orm", "database model", "sql database"),
    "cli": ("command line", "cli"),
    "oauth": ("oauth", "login with"),
}
"""Capability → the words in a request that ask for it (whole words, any case)."""


def capabilities(text: str) -> list[str]:
    """Catalogue capabilities ``text`` mentions, in catalogue order (none found: the test runner)."""
    low = text.lower()
    found = [
        cap for cap, words in CAPABILITY_WORDS.items() if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words)
    ]
    return found or ["test runner"]

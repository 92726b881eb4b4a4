"""Crashing a real ``maestro`` on purpose: :data:`DRIVER`, the script that SIGKILLs it at a chosen moment."""

from __future__ import annotations

from pathlib import Path

DRIVER = Path(__file__).resolve().parents[1] / "crash_driver.py"
"""``tests/crash_driver.py``: runs the ``maestro`` command line and SIGKILLs it where the environment says."""

"""The command line: parse, call the library, print, set the exit code.  All user-facing wording lives here."""

from maestro.cli.main import main

__all__ = ["main"]

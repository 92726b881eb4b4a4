"""Validation: gates (JUnit counts, missing tools), acceptance commands, requirement traceability."""

"""The decision engine and its strategies: every choice maestro makes, with its options, evidence and rationale."""

from maestro.decide.context import DecisionContext, Strategy
from maestro.decide.engine import DecisionEngine

__all__ = ["DecisionContext", "DecisionEngine", "Strategy"]

"""Data layer: the Problem record, loaders, preparation and the synthetic coverage task."""
from exprl.data.problem import Problem
from exprl.data.prompts import POLICY_SYSTEM_PROMPT, policy_messages

__all__ = ["Problem", "POLICY_SYSTEM_PROMPT", "policy_messages"]

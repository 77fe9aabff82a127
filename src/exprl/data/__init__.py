"""Data layer: the Problem record, loaders, preparation and the synthetic coverage task."""
from exprl.data.loaders import Rejection, load_problems, parse_field_mapping, write_problems
from exprl.data.prepare import PrepareConfig, PrepareReport, prepare
from exprl.data.problem import Problem
from exprl.data.prompts import POLICY_SYSTEM_PROMPT, policy_messages

__all__ = ["Problem", "POLICY_SYSTEM_PROMPT", "policy_messages", "load_problems", "write_problems",
           "parse_field_mapping", "Rejection", "PrepareConfig", "PrepareReport", "prepare"]

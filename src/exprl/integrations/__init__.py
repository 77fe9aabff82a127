"""Adapters that run exprl's judge and rewards inside another RL framework.

Each subpackage may import its framework; nothing else in exprl imports these packages, and they
import exprl's core (data, judge, rewards) like any user would (`tests/test_layers.py`).
"""

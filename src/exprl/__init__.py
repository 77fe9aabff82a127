"""ExpRL: exploratory RL for LLM mid-training."""
__version__ = "0.1.0"

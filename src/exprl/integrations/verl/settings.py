"""exprl's own section of a verl config (`exprl:`), read into exprl's config classes.

One place declares each setting: the judge's in `JudgeConfig`, the advantages' in `RewardConfig`,
here only what the verl adapter adds. Unknown keys are errors naming the key, as in every exprl
config (`exprl.config.from_dict`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exprl.config import from_dict
from exprl.errors import ConfigError
from exprl.judge.types import JudgeConfig
from exprl.rewards.config import RewardConfig
from exprl.rewards.record import Signal
from exprl.train.config import SIGNALS, JudgedMethod



@dataclass
class VerlSettings:
    """What the reward manager and the trainer mode read from the config's `exprl:` section."""

    method: JudgedMethod = field(default="exprl-outcome", metadata={
        "help": "exprl-outcome: one judgment of the whole trace, group-normalised (docs/method.md §2.5); "
                "exprl-process: one judgment per `###` step, DeltaNorm per token (docs/method.md §2.6)."})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={
        "help": "exprl's judge (any backend, with its cache), as in an exprl recipe."})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={
        "help": "How judge rewards become advantages, as in an exprl recipe's `reward:`."})

    @property
    def signal(self) -> Signal:
        return SIGNALS[self.method]


def read_settings(config: Any) -> VerlSettings:
    """The `exprl:` section of a verl config (an OmegaConf DictConfig or a plain mapping)."""
    section = config.get("exprl") if hasattr(config, "get") else None
    if section is None:
        raise ConfigError("the verl config has no `exprl:` section: start from one of the configs in "
                          "exprl.integrations.verl.CONFIG_DIR")
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(section):
            section = OmegaConf.to_container(section, resolve=True)
    except ImportError:  # a plain mapping needs no OmegaConf
        pass
    return from_dict(VerlSettings, section, where="verl config", prefix="exprl.")

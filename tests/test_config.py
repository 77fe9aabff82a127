from dataclasses import dataclass, field
from typing import Literal

import pytest

from exprl.config import load_config
from exprl.errors import ConfigError


@dataclass
class Inner:
    beta: float = field(default=0.001, metadata={"help": "KL coefficient"})
    mode: Literal["delta", "end", "group"] = "delta"


@dataclass
class Outer:
    name: str = "run"
    steps: int = 10
    urls: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


def test_yaml_and_overrides_merge_onto_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 3\ninner:\n  beta: 1e-6\n")
    cfg = load_config(Outer, recipe, ["inner.mode=end", "urls=[http://a, http://b]"])
    assert cfg.steps == 3 and cfg.inner.beta == pytest.approx(1e-6)
    assert cfg.inner.mode == "end" and cfg.urls == ["http://a", "http://b"] and cfg.name == "run"


@pytest.mark.parametrize("override, needle", [
    ("inner.betta=1", "'inner.betta'"),
    ("stepz=1", "'stepz'"),
    ("steps=many", "'steps'"),
    ("inner.mode=sideways", "'inner.mode'"),
    ("noequals", "key=value"),
])
def test_bad_keys_and_values_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        load_config(Outer, None, [override])


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_config(Outer, tmp_path / "nope.yaml")

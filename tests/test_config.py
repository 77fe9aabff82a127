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


def test_extends_merges_a_variant_over_the_recipe_it_names(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nsteps: 3\nurls: [http://a]\ninner:\n  beta: 0.5\n  mode: end\n")
    (tmp_path / "variant.yaml").write_text("extends: base.yaml\nurls: [http://b]\ninner:\n  mode: group\n")
    cfg = load_config(Outer, tmp_path / "variant.yaml", ["steps=4"])
    # mappings merge key by key, anything else (a list too) is replaced
    assert (cfg.name, cfg.steps, cfg.urls) == ("base", 4, ["http://b"])
    assert (cfg.inner.beta, cfg.inner.mode) == (0.5, "group")


def test_extends_names_a_missing_or_circular_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nsteps: 1\n")
    with pytest.raises(ConfigError, match="leads back"):
        load_config(Outer, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(Outer, tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="'extends' must name one recipe"):
        load_config(Outer, tmp_path / "d.yaml")

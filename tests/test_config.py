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
# -- ranges declared on the fields, duplicate keys, nearest keys ----------------------------------
def _command_configs():
    from exprl.data.prepare import PrepareConfig
    from exprl.data.synthetic import SyntheticTaskConfig
    from exprl.demo.config import DemoConfig
    from exprl.eval.config import BenchmarkConfig, EvalConfig, FilterConfig
    from exprl.judge.calibrate import CalibrationConfig
    from exprl.judge.types import JudgeConfig
    from exprl.pipeline import PipelineConfig
    from exprl.train.config import TrainConfig

    return [TrainConfig, PipelineConfig, PrepareConfig, SyntheticTaskConfig, EvalConfig, FilterConfig,
            BenchmarkConfig, DemoConfig, CalibrationConfig, JudgeConfig]


def _numeric_fields(cls, seen=None):
    import dataclasses
    import typing

    seen = set() if seen is None else seen
    if cls in seen:
        return
    seen.add(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        for arg in args:
            for inner in (arg, *typing.get_args(arg)):
                if dataclasses.is_dataclass(inner):
                    yield from _numeric_fields(inner, seen)
        if any(a in (int, float) for a in args):
            yield cls, f


def test_every_numeric_setting_of_every_command_declares_its_range():
    from exprl.config import Range

    fields = [(cls, f) for config in _command_configs() for cls, f in _numeric_fields(config)]
    assert len(fields) > 80
    missing = [f"{cls.__name__}.{f.name}" for cls, f in fields if "range" not in f.metadata]
    assert not missing, f"numeric settings without a declared range: {missing}"
    for cls, f in fields:
        bounds = Range.parse(f.metadata["range"])
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            assert f.default in bounds, f"{cls.__name__}.{f.name}: its default {f.default} is outside {bounds}"


@pytest.mark.parametrize("override, needle", [
    ("inner.beta=nan", "'inner.beta' must be a finite number, got nan"),
    ("inner.beta=.inf", "'inner.beta' must be a finite number, got inf"),
    ("inner.beta=-1", "'inner.beta' must be at least 0, got -1.0"),
    ("steps=0", "'steps' must be at least 1, got 0"),
    ("share=1.5", "'share' must be in (0, 1], got 1.5"),
])
def test_a_number_outside_its_declared_range_is_refused_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config(Ranged, None, [override])
    assert needle in str(info.value)


@dataclass
class RangedInner:
    beta: float = field(default=0.1, metadata={"help": "b", "range": "[0, inf)"})


@dataclass
class Ranged:
    steps: int = field(default=1, metadata={"help": "s", "range": "[1, inf)"})
    share: float = field(default=0.5, metadata={"help": "sh", "range": "(0, 1]"})
    inner: RangedInner = field(default_factory=RangedInner)


def test_values_set_after_loading_are_held_to_the_same_ranges():
    from exprl.config import check_values

    config = load_config(Ranged, None, [])
    config.inner.beta = float("nan")
    with pytest.raises(ConfigError, match=r"'inner\.beta' must be a finite number"):
        check_values(config)


def test_a_key_written_twice_names_the_key_and_both_lines(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 3\ninner:\n  beta: 1e-6\n  mode: end\n  beta: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, recipe)
    assert "r.yaml" in str(info.value) and "'beta'" in str(info.value) and "line 3 and line 5" in str(info.value)


def test_an_unknown_key_gets_the_nearest_known_one():
    with pytest.raises(ConfigError, match=r"unknown key 'stepz' for Outer; did you mean 'steps'\?"):
        load_config(Outer, None, ["stepz=1"])

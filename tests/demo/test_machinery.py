"""The machinery condition in the demo report (exprl.demo.machinery): the benchmark's rows for the run's own
design, and the verdict over every design tried."""
from __future__ import annotations

import pytest

from exprl.config import load_config
from exprl.demo.config import DemoConfig
from exprl.demo.machinery import every_at_8, holds, machinery_section, oracle_method, read_rows, rows_for
from exprl.recipes import require_bundled


def config(*overrides: str) -> DemoConfig:
    return load_config(DemoConfig, require_bundled("demo"), list(overrides))


def row(design: str, overrides: list[str], grpo: float, oracle: float, budget: int = 100) -> dict:
    every = lambda value: {"hard": {"every_step_pass_n": value}}  # noqa: E731
    return {"design": design, "overrides": overrides, "seed": 0, "budget": budget, "num_train_hard": 8 * budget,
            "methods": {"grpo": every(grpo), "exprl-outcome": every(oracle)}, "oracle_method": "exprl-outcome",
            "machinery_holds": holds(oracle, grpo)}


ROWS = [row("plain", [], grpo=0.0, oracle=3.1),
        row("plain-lr", ["training.learning_rate=1e-4"], grpo=3.1, oracle=25.0, budget=300),
        row("longer-base", ["base.steps=4200", "base.target_easy_greedy=0"], grpo=12.5, oracle=18.8),
        {"design": "base-only", "overrides": [], "machinery_holds": None, "methods": {}}]


@pytest.mark.parametrize("oracle, grpo, expected", [(20.0, 5.0, True), (19.9, 0.0, False), (40.0, 5.1, False),
                                                    (None, 0.0, None)])
def test_the_condition_is_the_oracle_at_least_20_and_grpo_at_most_5(oracle, grpo, expected):
    assert holds(oracle, grpo) is expected


def test_the_oracle_of_a_row_is_the_better_of_outcome_and_process_that_ran():
    every = lambda value: {"hard": {"every_step_pass_n": value}}  # noqa: E731
    assert oracle_method({"grpo": every(9.0), "exprl-outcome": every(3.1), "exprl-process": every(6.2)}) == \
        "exprl-process"
    assert oracle_method({"grpo": every(9.0), "exprl-outcome": every(0.0)}) == "exprl-outcome"
    assert oracle_method({"grpo": every(9.0)}) is None and every_at_8({"grpo": every(9.0)}, None) is None


def test_a_run_sees_the_rows_of_its_own_task_and_base_whatever_the_training_settings():
    assert [r["design"] for r in rows_for(config(), ROWS)] == ["plain", "plain-lr"]
    assert [r["design"] for r in rows_for(config("base.steps=4200", "base.target_easy_greedy=0"), ROWS)] == \
        ["longer-base"]
    assert rows_for(config("task.hard_min_steps=12"), ROWS) == []
    # Training settings and the number of training problems (a fresh pool) are not the design.
    assert len(rows_for(config("training.learning_rate=1e-3", "task.num_train_hard=7"), ROWS)) == 2


def test_the_section_quotes_the_rows_and_says_whether_any_design_passed():
    section = machinery_section(config(), ROWS)
    assert "| 0 | 300 | 2400 | training.learning_rate=1e-4 | 3.1 | 25.0 | yes |" in section
    assert "| 0 | 100 | 800 | - | 0.0 | 3.1 | **no** |" in section
    assert "Over the 3 designs measured (3 rows), it held for plain-lr." in section
    failed = machinery_section(config(), ROWS[:1] + ROWS[2:])
    assert "it held for none, so the claim was not put to a test here" in failed
    assert "Not measured for this run's task and base model." in machinery_section(config("task.hard_max_steps=15"),
                                                                                    ROWS)


def test_every_shipped_row_names_a_design_the_demo_recipe_loads():
    rows = read_rows()
    assert rows, "the shipped machinery rows are missing"
    for shipped in rows:
        config(*shipped["overrides"])  # a ConfigError names the row's bad key
        methods = shipped["methods"]
        assert shipped["machinery_holds"] == holds(every_at_8(methods, oracle_method(methods)),
                                                   every_at_8(methods, "grpo"))

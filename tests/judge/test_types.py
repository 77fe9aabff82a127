"""JudgeResult.reward: the one place a judge score becomes a reward."""
from __future__ import annotations

import pytest

from exprl.judge.types import JudgeResult, JudgeStatus


def test_a_score_from_1_to_5_becomes_a_reward_from_0_to_1():
    assert [JudgeResult(score, JudgeStatus.OK).reward for score in range(1, 6)] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("status", [JudgeStatus.UNPARSEABLE, JudgeStatus.TIMEOUT, JudgeStatus.ERROR])
def test_an_unscorable_judgment_has_no_reward_never_a_zero(status):
    result = JudgeResult(None, status, error="why")
    assert result.reward is None and not result.ok
    assert JudgeResult(3, status).reward is None  # a stray score under a failure status does not count

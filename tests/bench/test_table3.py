"""`python -m bench table3`: the requests it sends, with and without critic blocks."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import parser
from bench.table3 import ESTIMATORS, request, tag_of


def _args(*extra: str):
    return parser().parse_args(["table3", "--out", str(Path("unused")), *extra])


def test_block_goes_to_every_critic_and_not_to_gm():
    a = _args("--critic", "joint", "--block", "16")
    for key in ESTIMATORS:
        req = request(key, a)
        critic = req.estimator.critic
        assert critic.kind == "joint" and critic.width == 0.25
        assert critic.block == (None if key == "gm" else 16), key
        assert req.estimator.train.batch_size == 64
    assert tag_of(a) == "joint_b16_w0.25_s1875-1875_seeds3"


def test_without_block_requests_and_result_folders_are_as_before():
    a = _args("--critic", "joint")
    assert all(request(key, a).estimator.critic.block is None for key in ESTIMATORS)
    assert tag_of(a) == "joint_w0.25_s1875-1875_seeds3"  # earlier runs are found again

"""One torch thread for the tests that train in this process.

On a shared CPU (CI, or a developer's box busy with something else) two intra-op threads
stall each other: measured on the 2-core machine with both cores loaded by another
process, the batched-vs-sequential trainer tests took 45-190 s each with two threads. The
numbers a test asserts do not depend on the thread count (a property of the estimator or
of the implementation, over several seeds), so the tests run with one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

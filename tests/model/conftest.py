"""Fixtures for the trunk tests: the toy model and corpora live in tests/conftest.py."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread_and_seed(one_torch_thread):
    # 2 cores shared with other test runs: one thread avoids OpenMP contention
    yield

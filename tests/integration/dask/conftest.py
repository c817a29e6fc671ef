"""A Dask cluster of 2 worker processes, started once for the Dask tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import start_process, stop_process

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 180.0


@contextlib.contextmanager
def _cluster() -> Iterator[str]:
    """Start `tests.integration.dask.cluster` in a process group of its own; its address."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = start_process(
        [sys.executable, "-m", "tests.integration.dask.cluster"],
        outlive_test=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT_S):
                raise RuntimeError(f"the test cluster did not start within {START_TIMEOUT_S} s")
        address = process.stdout.readline().strip()
        if not address.startswith("tcp://"):
            raise RuntimeError(f"the test cluster did not start: {address!r}")
        yield address
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """The scheduler address (`tcp://127.0.0.1:PORT`) of the tests' shared cluster."""
    with _cluster() as address:
        yield address


@pytest.fixture
def killable_dask_address() -> Iterator[str]:
    """A cluster of its own for a test that kills one of its workers.

    The shared cluster never loses a worker: Dask's nanny brings a killed
    one back, but on a loaded machine it was seen to take more than 120 s,
    and the tests after it would run on one worker.
    """
    with _cluster() as address:
        yield address


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

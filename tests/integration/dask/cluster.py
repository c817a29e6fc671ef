"""A Dask `LocalCluster` (2 worker processes) for the tests, in a process of its own.

`python -m tests.integration.dask.cluster` prints the scheduler's address on
its first line and runs until its standard input closes. The tests start it
with `tests/processes.py` (its own process group, stopped however the test
run ends); the workers are its children, in the same group.
"""

from __future__ import annotations

import asyncio
import sys


async def main() -> None:
    import dask
    from distributed import LocalCluster

    # A worker that dies during a try fails that try at once (the engine retries it).
    dask.config.set({"distributed.scheduler.allowed-failures": 0})
    async with LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=":0",  # a free port: no warning when 8787 is taken
        asynchronous=True,
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())

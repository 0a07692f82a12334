"""What Faust's fetcher pays per record to race its delivery against ``suspend_flow``.

``Consumer._drain_messages`` (faust-streaming 0.15.3) delivers every record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's ``Service.wait_first`` wraps
both, plus the service's stopped and crashed events, in tasks and runs ``asyncio.wait`` on them. This times
that against awaiting the same already-complete callback directly, on uvloop as the worker runs.

    .venv/bin/python bench/faust_wait_first.py [--records 20000]
"""

from __future__ import annotations

import argparse
import time

import uvloop
from mode import Service
from mode.utils.locks import Event


async def delivered() -> int:
    return 1


async def measure(records: int) -> tuple[float, float]:
    service, suspend_flow = Service(), Event()
    began = time.perf_counter()
    for _ in range(records):
        await service.wait_first(delivered(), suspend_flow.wait())
    raced = (time.perf_counter() - began) / records
    began = time.perf_counter()
    for _ in range(records):
        await delivered()
    direct = (time.perf_counter() - began) / records
    return raced * 1e6, direct * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    raced, direct = uvloop.run(measure(args.records))
    print(f"wait_first per record  {raced:.1f} µs")
    print(f"direct await           {direct:.2f} µs")


if __name__ == "__main__":
    main()

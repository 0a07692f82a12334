"""Test-only fault injection, for worker processes started with this directory on ``PYTHONPATH``: each
committed-offset lookup of the aiokafka consumer waits ``CONVOWATCH_TEST_COMMITTED_DELAY_SECONDS`` first.

Faust's seek to committed offsets after a rebalance looks up and seeks one partition after the other, with
the agents' partitions already resumed; the delay stretches that seek, and so the window in which records
are fetched for partitions not yet moved (tests/reliability/test_rebalance_window.py). Python imports
``sitecustomize`` at startup.
"""

import asyncio
import os
from typing import Any

from aiokafka import AIOKafkaConsumer

_DELAY = float(os.environ.get("CONVOWATCH_TEST_COMMITTED_DELAY_SECONDS", "0"))
_committed = AIOKafkaConsumer.committed


async def _slow_committed(self: AIOKafkaConsumer, partition: Any) -> Any:
    await asyncio.sleep(_DELAY)
    return await _committed(self, partition)


AIOKafkaConsumer.committed = _slow_committed  # type: ignore[method-assign]

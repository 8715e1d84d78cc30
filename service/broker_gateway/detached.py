"""Token requests run apart from their caller: once sent, their answer is stored even if nobody waits.

A refresh or a code exchange runs as a task with its own budget instead of the caller's deadline
(docs/design/refresh.md): a caller giving up, or its deadline passing, never loses a rotated token or
a granted code. The caller waits for the task only within its own deadline, and gets
REFRESH_IN_PROGRESS with a RetryInfo just before that deadline, never a bare DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import deadlines
from .errors import GatewayError, InternalError, RefreshInProgress

T = TypeVar("T")
log = logging.getLogger(__name__)


class DetachedWork:
    """The detached tasks of one gateway: started with their own budget, waited on within the
    caller's deadline, and let finish (bounded) at shutdown."""

    def __init__(self, budget: float) -> None:
        #: Seconds a detached task may take, independent of any caller's deadline.
        self.budget = budget
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``work`` as a task under the detached budget; its outcome is always retrieved."""

        async def run() -> T:
            with deadlines.deadline_in(self.budget):
                return await work()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve_outcome)
        return task

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Start ``work`` (when the caller has the budget to wait for it) and wait for it."""
        deadlines.require_budget()
        return await self.wait(self.start(work))

    async def wait(self, task: asyncio.Task[T]) -> T:
        """The task's result, or REFRESH_IN_PROGRESS just before the caller's deadline (the task goes
        on and stores its outcome), so the caller gets a reason and a RetryInfo, not a bare
        DEADLINE_EXCEEDED. asyncio.wait never cancels the task, whether time runs out or the caller
        gives up."""
        left = deadlines.remaining()
        timeout = None if left is None else max(left - deadlines.SAFETY_MARGIN, 0.0)
        done, _ = await asyncio.wait((task,), timeout=timeout)
        if not done:
            raise RefreshInProgress("the upstream call is still running; retry shortly", retry_after=0.5)
        error = task.exception()
        if error is None or isinstance(error, GatewayError):
            return task.result()
        # Unexpected: _retrieve_outcome logged it once, with its traceback, for all its waiters.
        raise InternalError("internal error; the gateway's log has the details")

    async def drain(self, timeout: float) -> None:
        """Let the running tasks persist their outcome, for at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def _retrieve_outcome(task: asyncio.Task[Any]) -> None:
    """Retrieve a detached task's outcome, also when its caller gave up, so asyncio never reports
    "Task exception was never retrieved". An expected failure (the one any waiting caller received)
    is logged at INFO by its reason only; an unexpected one at ERROR, once, with its traceback."""
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    if isinstance(error, GatewayError):
        log.info("a detached refresh or code exchange failed: %s (provider %s)", error.reason, error.metadata.get("provider", "?"))
    else:
        log.error("a detached refresh or code exchange failed unexpectedly", exc_info=error)

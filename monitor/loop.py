"""One monitor, one queue: each tick reads the depth, decides, and brings the backend to the target."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from cartero_common.clock import Clock
from cartero_common.wire import Evento, scale_event
from monitor import metrics
from monitor.backend import Backend, BackendError, Replica, Stopped, free_slots
from monitor.decision import Policy, ScalingDecision, State, decide
from monitor.sources import DepthSource, SourceError

log = logging.getLogger(__name__)

RESTART_PAUSE = timedelta(seconds=5)
MAX_RESTART_PAUSE = timedelta(minutes=5)


class EventSink(Protocol):
    def publish(self, events: list[dict[str, Any]]) -> bool: ...


@dataclass
class Tick:
    """What one tick saw and did (also what `--dry-run` prints)."""

    queue: str
    running: int
    decision: ScalingDecision
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    messages: int | None = None
    error: str | None = None
    started: list[str] = field(default_factory=list)
    stopped: list[Stopped] = field(default_factory=list)

    def describe(self, *, dry_run: bool) -> str:
        seen = "depth unknown" if self.messages is None else f"{self.messages} messages"
        if self.messages is not None:
            unacked = "unacked not visible" if self.unacked is None else f"{self.unacked} unacked"
            seen += f" ({self.ready} ready, {unacked})"
        change = self.decision.target - self.running
        if not dry_run:
            action = f"started {len(self.started)}, stopped {len(self.stopped)}"
        elif change > 0:
            action = f"would start {change}"
        elif change < 0:
            action = f"would stop {-change}"
        else:
            action = "no change"
        why = f" — {self.error}" if self.error else ""
        wants = "?" if self.decision.wanted is None else self.decision.wanted
        return (
            f"{self.queue}: {seen}; wants {wants}; running {self.running}; "
            f"target {self.decision.target} ({self.decision.reason}): {action}{why}"
        )


class Monitor:
    def __init__(
        self,
        *,
        queue: str,
        source: DepthSource,
        backend: Backend,
        events: EventSink,
        policy: Policy,
        clock: Clock,
        timezone: str,
        dry_run: bool = False,
    ) -> None:
        self.queue = queue
        self.source = source
        self.backend = backend
        self.events = events
        self.policy = policy
        self.clock = clock
        self.timezone = timezone
        self.dry_run = dry_run
        self.state: State | None = None
        self._stopping = threading.Event()
        # Consumers that crash at once are restarted with growing pauses, not on every tick.
        self._crashes = 0
        self._restart_at: datetime | None = None
        metrics.initialise(queue)

    def tick(self) -> Tick | None:
        """One reading and one decision; None when the backend could not even be counted."""
        try:
            running = self.backend.running()
        except BackendError as exc:
            metrics.BACKEND_ERRORS.labels(self.queue).inc()
            log.error("cannot count consumers; holding", extra={"queue": self.queue, "error": str(exc)})
            return None
        if self.state is None:
            self.state = State.initial(len(running), self.policy)
        now = self.clock()
        try:
            depth = self.source.read()
        except SourceError as exc:
            metrics.SOURCE_ERRORS.labels(self.queue).inc()
            log.warning("depth source failed; holding the count", extra={"queue": self.queue, "error": str(exc)})
            decision = decide(self.state, None, now=now, policy=self.policy)
            tick = Tick(self.queue, len(running), decision, error=str(exc))
        else:
            decision = decide(self.state, depth.messages, now=now, policy=self.policy)
            tick = Tick(self.queue, len(running), decision, depth.ready, depth.unacked, depth.consumers, depth.messages)
            metrics.QUEUE_MESSAGES.labels(self.queue).set(depth.messages)
        self.state = decision.state
        metrics.REPLICAS.labels(self.queue, "desired").set(decision.target)
        if not self.dry_run:
            self._reconcile(running, decision.target, tick, now)
        level = logging.INFO if tick.started or tick.stopped or decision.reason in ("up", "down") else logging.DEBUG
        log.log(level, tick.describe(dry_run=self.dry_run), extra={"queue": self.queue, "target": decision.target})
        return tick

    def _reconcile(self, running: list[Replica], target: int, tick: Tick, now: datetime) -> None:
        """Bring the backend to `target`; also replaces consumers that ended on their own."""
        count = len(running)
        exited = self.backend.take_exited()
        events = [self._event(Evento.SCALED_DOWN, s.name, count + len(exited) - i - 1) for i, s in enumerate(exited)]
        self._note_crashes(exited, healthy=count == target, now=now)
        try:
            if target > count and (self._restart_at is None or now >= self._restart_at):
                slots = free_slots(r.slot for r in running)
                for _ in range(target - count):
                    replica = self.backend.start(next(slots))
                    count += 1
                    tick.started.append(replica.name)
                    events.append(self._event(Evento.SCALED_UP, replica.name, count))
            elif target < count:
                # The newest (highest slot) go first, so the low slots and their ports stay put.
                victims = sorted(running, key=lambda r: r.slot, reverse=True)[: count - target]
                for stopped in self.backend.stop(victims):
                    count -= 1
                    tick.stopped.append(stopped)
                    events.append(self._event(Evento.SCALED_DOWN, stopped.name, count))
        except BackendError as exc:
            metrics.BACKEND_ERRORS.labels(self.queue).inc()
            tick.error = str(exc)
            log.error("backend failed while scaling", extra={"queue": self.queue, "error": str(exc)})
        finally:
            metrics.REPLICAS.labels(self.queue, "running").set(count)
            if events:
                self.events.publish(events)

    def _note_crashes(self, exited: list[Stopped], *, healthy: bool, now: datetime) -> None:
        if any(s.exit_code != 0 for s in exited):
            self._crashes += 1
            pause = min(MAX_RESTART_PAUSE, RESTART_PAUSE * 2 ** (self._crashes - 1))
            self._restart_at = now + pause
            log.warning(
                "consumers failed; pausing restarts",
                extra={"queue": self.queue, "failures": self._crashes, "pause_s": pause.total_seconds()},
            )
        elif healthy:
            self._crashes, self._restart_at = 0, None

    def _event(self, evento: Literal[Evento.SCALED_UP, Evento.SCALED_DOWN], name: str, replicas: int) -> dict[str, Any]:
        metrics.SCALE_EVENTS.labels(self.queue, "up" if evento == Evento.SCALED_UP else "down").inc()
        return scale_event(
            evento, contenedor=name, cola=self.queue, replicas=replicas, now=self.clock(), timezone=self.timezone
        )

    def run(self, interval: float) -> None:
        """Tick every `interval` seconds (start to start) until `stop()`; then release the backend."""
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except Exception:
                    # Keep watching: exiting would take the local consumers down with the monitor.
                    log.exception("tick failed", extra={"queue": self.queue})
                self._stopping.wait(max(0.0, interval - (time.monotonic() - started)))
        finally:
            self.shutdown()

    def stop(self, *_: object) -> None:
        """Safe from a signal handler: the loop ends after the tick in hand."""
        self._stopping.set()

    def shutdown(self) -> None:
        stopped = self.backend.close()
        log.info("monitor stopped", extra={"queue": self.queue, "consumers_stopped": [s.name for s in stopped]})
        if stopped:
            remaining = len(stopped)
            events = []
            for s in stopped:
                remaining -= 1
                events.append(self._event(Evento.SCALED_DOWN, s.name, remaining))
            metrics.REPLICAS.labels(self.queue, "running").set(0)
            self.events.publish(events)
        self.source.close()

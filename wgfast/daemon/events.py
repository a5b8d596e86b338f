"""wgfastd's event bus: what the interface publishes (handshakes, roaming, expired sessions,
peers added and removed, drop summaries) and what subscribers on the UAPI socket read
(`events=1`, see README.md, "Events").

Everything here runs on the daemon's event loop: publishing is a plain call, no lock.

- Sequence numbers are per daemon, monotonic, starting at 1 (0: nothing published yet). A get=1
  reply carries the last one (wgfast_event_sequence), so a client can read a snapshot and then
  subscribe with `since=` that number without missing anything.
- The last RING_CAPACITY events are kept, to replay what followed a snapshot. A `since=` older
  than the ring (or newer than anything published: a snapshot of another daemon instance)
  is answered with missed=1: the client must read a snapshot again.
- Each subscriber has a backlog of at most BACKLOG_CAPACITY events beyond its replay. A
  subscriber whose backlog is full is cut off: its backlog is dropped, it reads what was
  already written to its socket, then a `cut_off` notice, then EOF. A slow subscriber costs
  memory for its backlog and its socket's write buffer, never the time of anyone else.
- Drop summaries are made only while someone is subscribed, at most once every
  DROP_SUMMARY_INTERVAL seconds, and only when a count moved: the counts since the previous
  summary (since the first subscription for the first one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from wgfast.uapi import ERRNO_INVALID, ERRNO_PROTOCOL, UAPIError

log = logging.getLogger(__name__)

RING_CAPACITY = 4096  # events kept for since= replays
BACKLOG_CAPACITY = 1024  # events one subscriber may have waiting before it is cut off
DROP_SUMMARY_INTERVAL = 1.0  # seconds between two drop summaries, at most one per interval
MAX_SEQUENCE = 2**64 - 1

# Event names (the `event=` line).
HANDSHAKE_COMPLETED = "handshake_completed"
ENDPOINT_CHANGED = "endpoint_changed"
SESSION_EXPIRED = "session_expired"
PEER_ADDED = "peer_added"
PEER_REMOVED = "peer_removed"
DROP_SUMMARY = "drop_summary"
# The notices that end a stream (no sequence number of their own).
CUT_OFF = "cut_off"
DAEMON_STOPPING = "daemon_stopping"
CLOSED = "closed"  # the subscriber hung up (or sent more): no notice, the connection closes

# Keys of a drop summary: one per reason that counted, prefixed by who dropped.
DATAPLANE_DROP = "dataplane_drop_"
HANDSHAKE_DROP = "handshake_drop_"

Fields = tuple[tuple[str, str], ...]


class Event:
    """One published event, formatted once for every subscriber."""

    __slots__ = ("block", "fields", "name", "sequence")

    def __init__(self, sequence: int, name: str, fields: Fields) -> None:
        self.sequence = sequence
        self.name = name
        self.fields = fields
        lines = [f"event={name}", f"sequence={sequence}"]
        lines += [f"{key}={value}" for key, value in fields]
        self.block = ("\n".join(lines) + "\n\n").encode()

    def __repr__(self) -> str:
        return f"Event({self.sequence}, {self.name!r}, {self.fields!r})"


def notice_block(name: str, last_sequence: int, reason: str) -> bytes:
    """The final block of a stream: `cut_off` or `daemon_stopping`. last_sequence is that of the
    last event written to this subscriber (0 if none): resume with since= it."""
    return f"event={name}\nreason={reason}\nlast_sequence={last_sequence}\n\n".encode()


def parse_request(lines: Iterable[str]) -> int | None:
    """The body of an events=1 request -> its since= value (None when absent). Raises
    UAPIError like a bad set: EPROTO for a line without '=', EINVAL for an unknown key or a
    value that is not a decimal sequence number."""
    since: int | None = None
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise UAPIError(ERRNO_PROTOCOL, f"failed to parse line {line!r}")
        if key != "since":
            raise UAPIError(ERRNO_INVALID, f"invalid events key: {key!r}")
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            raise UAPIError(ERRNO_INVALID, f"invalid since value: {value!r}")
        since = int(value)
        if since > MAX_SEQUENCE:
            raise UAPIError(ERRNO_INVALID, f"since {since} out of range")
    return since


class Subscription:
    """One subscriber's backlog; read with `next_batch`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pending: deque[Event] = deque()
        self.ended: str | None = None  # CUT_OFF, DAEMON_STOPPING or CLOSED: the stream ends
        self.last_sequence = 0  # of the last event handed out
        self._extra = 0  # replayed events, allowed on top of the capacity until taken
        self._wakeup = asyncio.Event()

    def offer(self, event: Event) -> None:
        if self.ended is not None:
            return
        if len(self.pending) >= self.capacity + self._extra:
            log.error("event subscriber %d events behind: cut off", len(self.pending))
            self.ended = CUT_OFF
            self.pending.clear()  # the memory goes now; the notice says where to resume
        else:
            self.pending.append(event)
        self._wakeup.set()

    def replay(self, events: Iterable[Event]) -> None:
        self.pending.extend(events)
        self._extra = len(self.pending)

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._wakeup.set()

    async def next_batch(self) -> list[Event]:
        """Everything waiting (at least one event), or [] once the stream has ended (what was
        waiting when the daemon began stopping is handed out first)."""
        while not self.pending and self.ended is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = list(self.pending)
        self.pending.clear()
        self._extra = 0
        if batch:
            self.last_sequence = batch[-1].sequence
        return batch


class EventBus:
    """Sequence numbers, the ring of recent events and the subscribers' backlogs."""

    def __init__(self, drop_counts: Callable[[], Mapping[str, int]] | None = None, *,
                 ring_capacity: int = RING_CAPACITY,
                 backlog_capacity: int = BACKLOG_CAPACITY) -> None:
        """drop_counts: the cumulative drop counters, keyed DATAPLANE_DROP + reason and
        HANDSHAKE_DROP + reason (read once per DROP_SUMMARY_INTERVAL while subscribed)."""
        self.last_sequence = 0
        self.ring: deque[Event] = deque(maxlen=ring_capacity)
        self.backlog_capacity = backlog_capacity
        self.subscribers: set[Subscription] = set()
        self.closed = False
        self._drop_counts = drop_counts
        self._drop_baseline: dict[str, int] = {}
        self._summary_task: asyncio.Task | None = None

    def publish(self, name: str, fields: Fields = ()) -> Event:
        self.last_sequence += 1
        event = Event(self.last_sequence, name, fields)
        self.ring.append(event)
        for subscription in self.subscribers:
            subscription.offer(event)
        return event

    def subscribe(self, since: int | None) -> tuple[Subscription, bool]:
        """A new subscription, with the events after `since` waiting in it; and whether some
        of those are no longer known (missed: the client must read a snapshot again)."""
        subscription = Subscription(self.backlog_capacity)
        missed = False
        if since is not None and since != self.last_sequence:
            oldest = self.ring[0].sequence if self.ring else self.last_sequence + 1
            if since > self.last_sequence or since + 1 < oldest:
                missed = True
            else:
                subscription.replay(e for e in self.ring if e.sequence > since)
        if self.closed:
            subscription.end(DAEMON_STOPPING)
            return subscription, missed
        self.subscribers.add(subscription)
        self._start_summaries()
        return subscription, missed

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)
        if not self.subscribers and self._summary_task is not None:
            self._summary_task.cancel()
            self._summary_task = None

    def close(self) -> None:
        """The daemon stops: every subscriber gets what waits for it, then the notice."""
        self.closed = True
        for subscription in self.subscribers:
            subscription.end(DAEMON_STOPPING)
        if self._summary_task is not None:
            self._summary_task.cancel()
            self._summary_task = None

    # --- drop summaries ---------------------------------------------------------------------

    def _start_summaries(self) -> None:
        if self._drop_counts is None or self._summary_task is not None:
            return
        self._drop_baseline = self._read_drops()
        self._summary_task = asyncio.get_running_loop().create_task(self._summaries())

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(DROP_SUMMARY_INTERVAL)
            self.summarize_drops()

    def summarize_drops(self) -> Event | None:
        """Publish the drops since the previous summary, if any counted."""
        counts = self._read_drops()
        delta = sorted((key, n - self._drop_baseline.get(key, 0)) for key, n in counts.items())
        self._drop_baseline = counts
        fields = tuple((key, str(n)) for key, n in delta if n > 0)
        if not fields:
            return None
        return self.publish(DROP_SUMMARY, fields)

    def _read_drops(self) -> dict[str, int]:
        assert self._drop_counts is not None
        with contextlib.suppress(Exception):  # the data plane may be closing under us
            return {key: int(n) for key, n in self._drop_counts().items()}
        return dict(self._drop_baseline)

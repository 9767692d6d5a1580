"""Job events: stored in the queue's database first, then handed to every live WatchJob stream."""

from __future__ import annotations

import logging
import queue
import threading

from protos.headshot.v1 import headshot_pb2 as pb

from .convert import event_kind
from .store import JobStore

log = logging.getLogger(__name__)

# Returned by `Subscription.get` when the hub is closing and the stream should end.
CLOSED = object()


class Subscription:
    """One watcher's queue of live events for one job."""

    def __init__(self, hub: "EventHub", job_id: str):
        self.hub = hub
        self.job_id = job_id
        self._queue: queue.Queue = queue.Queue()

    def put(self, item) -> None:
        self._queue.put(item)

    def get(self, timeout: float):
        """Return the next event, CLOSED, or None when nothing arrived within `timeout` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.hub._unsubscribe(self)


class EventHub:
    """Records events in the store and fans them out to the subscribed watchers."""

    def __init__(self, store: JobStore):
        self.store = store
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, job_id: str) -> Subscription:
        subscription = Subscription(self, job_id)
        with self._lock:
            if self._closed:
                subscription.put(CLOSED)
            self._subscriptions.setdefault(job_id, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            watchers = self._subscriptions.get(subscription.job_id)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._subscriptions[subscription.job_id]

    def watcher_count(self, job_id: str | None = None) -> int:
        with self._lock:
            if job_id is not None:
                return len(self._subscriptions.get(job_id, ()))
            return sum(len(watchers) for watchers in self._subscriptions.values())

    def record(self, message: pb.JobEvent) -> pb.JobEvent:
        """Store the event, give it its sequence number and send it to the job's watchers."""
        message.sequence = self.store.add_event(
            message.job_id, message.attempt, event_kind(message), message.SerializeToString()
        )
        self.publish(message)
        return message

    def publish(self, message: pb.JobEvent) -> None:
        """Send an event that is already stored (its sequence is set) to the job's watchers."""
        with self._lock:
            watchers = list(self._subscriptions.get(message.job_id, ()))
        for subscription in watchers:
            subscription.put(message)

    def close(self) -> None:
        """End every watch stream; used when the daemon stops."""
        with self._lock:
            self._closed = True
            watchers = [item for group in self._subscriptions.values() for item in group]
        for subscription in watchers:
            subscription.put(CLOSED)

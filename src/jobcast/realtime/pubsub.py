"""The Socket.IO client manager: python-socketio's Redis manager, partitioned per user.

python-socketio's ``RedisManager`` sends every message on one channel, so every web process
receives and decodes every event of every user, and adding web processes adds no delivery
capacity. Job events are private to their owner's room, so jobcast publishes them on the
owner's own channel (``realtime.wire.user_channel``) and a web process subscribes to a user's
channel while it holds at least one of that user's connections, and only then. Everything else
(server-side emits, disconnects across hosts) still goes through the shared channel.

A user channel carries ready Socket.IO packets (``jobs.events`` encodes each event once): this
process sends one to every connection of the user it holds, without decoding and encoding it
again as python-socketio's own messages would need.

The subscription is sent before the connect handler returns, so by the time a client sees its
connection accepted, Redis already routes that user's events to this process.

With ``counted`` (the app's metrics are on) each delivery is counted, and its latency taken
from the packet's ``ts`` (the publisher's clock, when it published) without decoding the rest.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from engineio import packet as eio_packet
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from socketio import RedisManager

from jobcast.realtime.wire import ROOM_PREFIX, user_channel
from jobcast.telemetry.metrics import SOCKET_DELIVERED, SOCKET_DELIVERY

log = logging.getLogger(__name__)

#: The payload's ``ts``: its first ``"ts":`` (a string's quotes are escaped, so none of the
#: head's or the message's can match), after status, progress and message (``jobs.events``).
_TS = re.compile(rb'"ts":(-?[0-9.eE+-]+)')


class UserChannelManager(RedisManager):
    """A RedisManager that also listens on the channels of the users connected here."""

    name = "jobcast-redis"
    counted = False

    def __init__(self, url: str, channel: str, **kwargs: Any) -> None:
        super().__init__(url, channel=channel, **kwargs)
        # Followed channel (as Redis sends it back) -> the namespace and user room it feeds, so
        # a message finds its room without decoding the channel name.
        self._followed: dict[bytes, tuple[str, str]] = {}
        self._lock = threading.Lock()

    # --- which channels: follow the user rooms that have a member here ---------------------

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        first = room is not None and not self.rooms.get(namespace, {}).get(room)
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if first and room is not None and room.startswith(ROOM_PREFIX):
            self._follow(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        if (
            room is not None
            and room.startswith(ROOM_PREFIX)
            and not self.rooms.get(namespace, {}).get(room)
        ):
            self._unfollow(room)

    def _channel_for(self, room: str) -> bytes:
        """The channel of a user room, as Redis names it in the messages it sends."""
        return user_channel(self.channel, room[len(ROOM_PREFIX) :]).encode()

    def _follow(self, namespace: str, room: str) -> None:
        channel = self._channel_for(room)
        with self._lock:
            if channel in self._followed:
                return
            self._followed[channel] = (namespace, room)
            if self.write_only or self.pubsub is None or not self.pubsub.subscribed:
                return  # the listener subscribes to every followed channel when it connects
            try:
                self.pubsub.subscribe(channel)
            except Exception:  # the listener reconnects and subscribes again
                log.warning("could not subscribe to %r; the listener will retry", channel)

    def _unfollow(self, room: str) -> None:
        channel = self._channel_for(room)
        with self._lock:
            if self._followed.pop(channel, None) is None:
                return
            if self.write_only or self.pubsub is None or not self.pubsub.subscribed:
                return
            try:
                self.pubsub.unsubscribe(channel)
            except Exception:  # a stale subscription only costs a few ignored messages
                log.warning("could not unsubscribe from %r", channel)

    # --- listening: the shared channel and every followed one -------------------------------

    def _redis_listen_with_retries(self) -> Iterator[list[Any]]:
        """Every published message, as Redis's ``[b"message", channel, data]`` reply."""
        retry_sleep = 1.0
        connected = False
        while True:
            try:
                if not connected:
                    with self._lock:
                        self._redis_connect()
                        self.pubsub.subscribe(self.channel, *self._followed)
                    connected = True
                    retry_sleep = 1.0
                yield from self._messages()
            except Exception as exc:
                self._get_logger().error(
                    "Cannot receive from redis... retrying in %s secs (%s)", retry_sleep, exc
                )
                connected = False
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 60.0)

    def _messages(self) -> Iterator[list[Any]]:
        # pubsub.listen() costs more per message than the rest of a delivery: a retry wrapper
        # with closures, a dict, handler lookups, metrics. Replies are read as parse_response
        # reads them, and only those that are not messages ((un)subscribe confirmations) need
        # handle_message's bookkeeping. No health-check PING: on a blocking read it would only
        # go out just after a message had proven the connection alive.
        pubsub = self.pubsub
        connection = pubsub.connection
        while pubsub.subscribed:
            try:
                reply = connection.read_response(disconnect_on_error=False, push_request=True)
            except (RedisConnectionError, RedisTimeoutError):
                # parse_response retries as the client is configured to: it reconnects and
                # subscribes again in place, or raises for the loop above to start over.
                reply = pubsub.parse_response(block=True)
            if type(reply) is list and reply[0] == b"message":
                yield reply
            elif reply is not None:
                pubsub.handle_message(reply)

    def _listen(self) -> Iterator[bytes]:
        shared = self.channel.encode()
        for _kind, channel, data in self._redis_listen_with_retries():
            if channel == shared:
                yield data  # python-socketio's own messages: its listener decodes
            else:
                self._deliver(channel, data)

    def _deliver(self, channel: bytes, packet: bytes) -> None:
        """Send a user channel's ready packet to that user's connections held here."""
        followed = self._followed.get(channel)
        if followed is None:
            return  # unfollowed a moment ago: Redis has not seen the UNSUBSCRIBE yet
        namespace, room = followed
        try:
            message = eio_packet.Packet(eio_packet.MESSAGE, packet.decode())
            send = self.server.eio.send_packet
            sent = 0
            for _sid, eio_sid in self.get_participants(namespace, room):
                send(eio_sid, message)  # one Packet for all: encoded once, by the first writer
                sent += 1
            if self.counted and sent:
                _count(packet, sent)
        except Exception:  # one bad message must not end the listener
            log.exception("could not deliver a message from %r", channel)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        # An event for a room with no member here (a stale subscription, or the shared
        # channel's traffic) is dropped before anything is decoded or encoded for it.
        room = message.get("room")
        if room is not None and not self.rooms.get(message.get("namespace") or "/", {}).get(room):
            return
        super()._handle_emit(message)


def _count(packet: bytes, sent: int) -> None:
    SOCKET_DELIVERED.inc(sent)
    found = _TS.search(packet)
    if found is not None:
        SOCKET_DELIVERY.observe(max(0.0, time.time() - float(found.group(1))))

"""How a job event travels from the process that publishes it to the web processes' sockets.

The event log (``jobs.events``) encodes an event's payload once and splices its seq and epoch
into a live message framed here, as ``head + seq + ',"epoch":' + epoch + tail``, published on
``channel`` by the same Lua step that records it. Two framings, one per kind of Socket.IO
client manager in the web processes:

- ``UserChannelWire``: jobcast's own manager (``realtime.pubsub``) follows a channel per user
  and passes a ready Socket.IO packet to that user's connections without decoding it.
- ``ManagerWire``: any python-socketio message-queue manager (a host's ``SocketIO(app,
  message_queue=...)``): the ``emit`` message its listener expects, to the owner's room on
  jobcast's namespace (Flask-SocketIO's external-emitter pattern).
"""

from __future__ import annotations

import json
from typing import NamedTuple, Protocol

ROOM_PREFIX = "user:"


def user_room(owner: str) -> str:
    """The private room every connection of ``owner`` joins; events go nowhere else."""
    return f"{ROOM_PREFIX}{owner}"


def user_channel(channel: str, owner: str) -> str:
    """The Redis channel carrying the live events of ``owner``'s room."""
    return f"{channel}:user:{owner}"


class Frame(NamedTuple):
    channel: str
    head: str
    tail: str


class Wire(Protocol):
    def frame(self, event: str, job_id: str, owner: str, body: str) -> Frame:
        """The live message of ``event`` around ``body`` (the payload's JSON object, whose
        first character is ``{``), with the seq and epoch left out."""
        ...


def _namespace_prefix(namespace: str) -> str:
    return "" if namespace == "/" else f"{namespace},"


class UserChannelWire:
    def __init__(self, channel: str, namespace: str = "/") -> None:
        self.channel = channel
        self._namespace = _namespace_prefix(namespace)

    def frame(self, event: str, job_id: str, owner: str, body: str) -> Frame:
        # A Socket.IO EVENT packet: 2[<namespace>,]["<event>",{payload with seq}].
        head = f'2{self._namespace}[{json.dumps(event)},{{"job_id":{json.dumps(job_id)},"seq":'
        return Frame(user_channel(self.channel, owner), head, "," + body[1:] + "]")


class ManagerWire:
    def __init__(self, channel: str, namespace: str) -> None:
        self.channel = channel
        self.namespace = namespace

    def frame(self, event: str, job_id: str, owner: str, body: str) -> Frame:
        envelope = json.dumps(
            {
                "method": "emit",
                "event": event,
                "namespace": self.namespace,
                "room": user_room(owner),
                "skip_sid": None,
                "callback": None,
                "host_id": "jobcast",
            }
        )
        head = f'{envelope[:-1]},"data":{{"job_id":{json.dumps(job_id)},"seq":'
        return Frame(self.channel, head, "," + body[1:] + "}")

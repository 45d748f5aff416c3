"""An asyncio face on paho-mqtt for the hub.

paho's network loop runs on the event loop itself (paho's external-loop interface:
``loop_read`` when the socket is readable, ``loop_write`` while paho has bytes to send,
``loop_misc`` every second for keep-alive). There is no network thread: a message is read,
handled and acknowledged on one thread, so a 256 KiB chunk costs no thread hand-over, no
wake-up of another thread and no GIL contention on its way from the socket to the disk (with a
network thread, those hand-overs cost the hub more CPU than hashing and decrypting the chunk).
Only the blocking part of (re)connecting — TCP connect and TLS handshake — runs in a worker
thread, so an unreachable broker never stalls the loop.

Acknowledgement is manual: a PUBACK goes to the broker only after the message has been
handled (chunk written, row committed), so a hub that dies mid-message gets it again from the
broker's persistent session instead of losing it. The bridge reconnects with a capped,
jittered exponential back-off; subscriptions are renewed on every connect.

A handler that fails (database or store unreachable) leaves its message unacknowledged, and the
bridge then drops the connection after a back-off: on the reconnect the broker delivers every
unacknowledged message of the persistent session again. An acknowledgement is only sent on the
connection the message came in on (after a reconnect the broker redelivers it anyway).

As a member of a shared subscription (``persistent=False``) a worker connects with a clean,
non-persisted session: a broker keeps routing a share of the group's messages to an offline
member with a stored session, so a crashed or retired worker would swallow them. What a dead
worker held unacknowledged is then gone from the broker — and recovered by the protocol: the
recorder keeps every segment until its receipt and announces again, and the hub asks for the
chunks the shared staging folder does not have.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket, MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes | memoryview], Awaitable[None]]  # a large payload: a view
#: What to do once an offered message is done with: None to acknowledge it now, or a
#: coroutine function to run first (as the handler would be run: acknowledged once it returns).
Then = Callable[[], Awaitable[None]] | None
#: ``offer(topic, payload, then) -> taken``: a synchronous first look at each message. A
#: message it takes is neither handed to the handler nor acknowledged until ``then`` is
#: called, exactly once (see :meth:`MqttBridge.serve`).
Offer = Callable[[str, bytes | memoryview, Callable[[Then], None]], bool]


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class _Body(bytearray):
    """The body of a large incoming packet: allocated once at its full length and filled in
    place by :meth:`_Client._sock_recv` (paho would append each piece it reads to a growing
    buffer, copying the body again)."""

    __slots__ = ("filled",)

    def __iadd__(self, data: Any) -> _Body:  # paho: ``packet += data`` after each read
        if not isinstance(data, _Filled):  # a piece paho read itself: put it in place
            n = len(data)
            self[self.filled:self.filled + n] = data
            self.filled += n
        return self


class _Filled:
    """What :meth:`_Client._sock_recv` returns for bytes it already put into the body: paho
    only takes its length (and appends it, which :class:`_Body` ignores)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Client(mqtt.Client):
    """paho's client with a receive path that suits 256 KiB chunk messages.

    paho reads a packet's body with ``recv(remaining)`` in a loop and appends each piece to a
    buffer. Over TLS every ``recv`` returns at most one 16 KiB record. Here the body of a large
    packet is allocated once, at its full length, and ``recv_into`` fills it in place with all
    the socket already holds; the payload handed on is a view of it (no copy at all)."""

    #: Bodies of the last large packets, to be filled again once their messages are gone: at
    #: most this many bytes of them (a bounded cache: the process's memory grows by at most
    #: that much, once), of which the ``REUSE_TRIES`` oldest are tried.
    RECENT_BYTES = 8 * 1024 * 1024
    REUSE_TRIES = 8

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recent_bodies: collections.deque[_Body] = collections.deque()
        self._recent_bytes = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        pkt = self._in_packet
        if (sock is None or not pkt["have_remaining"] or pkt["remaining_length"] < _LARGE
                or not hasattr(sock, "recv_into")):
            return super()._sock_recv(bufsize)
        body = pkt["packet"]
        if not isinstance(body, _Body):
            if body:  # (paho starts every packet empty; never seen)
                return super()._sock_recv(bufsize)
            body = pkt["packet"] = self._body(pkt["remaining_length"])
        view = memoryview(body)
        start = body.filled
        got = 0
        try:
            while got < bufsize:
                try:
                    n = sock.recv_into(view[start + got:start + bufsize])
                except (ssl.SSLWantReadError, BlockingIOError):
                    if got:
                        break
                    raise BlockingIOError() from None
                except ssl.SSLWantWriteError:
                    if got:
                        break
                    self._call_socket_register_write()
                    raise BlockingIOError() from None
                if n == 0:  # closed: hand over what came first; the next call sees the end
                    break
                got += n
        finally:
            view.release()
        if not got:
            return b""  # the connection closed
        body.filled += got
        return _Filled(got)  # type: ignore[return-value]  # paho only takes its length

    def _body(self, n: int) -> _Body:
        """A buffer for a large packet's body: one of the last few, if it has that length and
        nothing holds a view of it any more (its message is handled and gone), else a new one.
        A new bytearray is zero-filled, page by page, by the kernel and by Python: that cost
        about 5 % of the hub's event loop during ``bench_ingest_many``."""
        recent = self._recent_bodies  # oldest first: the likeliest to be free
        for _ in range(min(len(recent), self.REUSE_TRIES)):
            body = recent.popleft()
            if len(body) == n and _unused(body):
                break
            recent.append(body)  # still in use (or another length): look again later
        else:
            body = _Body(n)
            self._recent_bytes += n
        recent.append(body)
        while self._recent_bytes > self.RECENT_BYTES:
            self._recent_bytes -= len(recent.popleft())
        body.filled = 0
        return body

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's PUBLISH handling for large MQTT v5 QoS 0/1 messages, slicing the packet
        through a memoryview. paho's decoder copies the whole body at each of its steps (three
        ``struct.unpack`` calls, the properties parser and a final slice: five copies of a
        256 KiB chunk); here the payload is a ``memoryview`` of the body, not a copy. Anything
        else goes to paho's own code."""
        pkt = self._in_packet
        header = pkt["command"]
        qos = (header & 0x06) >> 1
        body = pkt["packet"]
        if self._protocol != mqtt.MQTTv5 or qos > 1 or len(body) < _LARGE:
            return super()._handle_publish()
        view = memoryview(body)
        try:
            end = 2 + int.from_bytes(view[:2], "big")
            topic = bytes(view[2:end])
            mid = 0
            if qos:
                mid = int.from_bytes(view[end:end + 2], "big")
                end += 2
            if end >= len(view):
                raise MalformedPacket("PUBLISH topic runs past the packet")
            size, used = VariableByteIntegers.decode(bytes(view[end:end + 4]))
            if size:
                props = Properties(PacketTypes.PUBLISH)
                props.unpack(bytes(view[end:end + used + size]))
            else:  # (a recorder's chunk has none; paho's Properties() alone costs ~20 µs)
                props = _NO_PROPERTIES
            end += used + size
            if end > len(view):
                raise MalformedPacket("PUBLISH header runs past the packet")
            payload = view[end:]  # (outlives ``view``: a slice holds the buffer itself)
        except (ValueError, IndexError, MQTTException) as exc:
            if isinstance(exc, MalformedPacket):
                raise
            raise MalformedPacket(str(exc)) from exc
        finally:
            view.release()
        msg = mqtt.MQTTMessage(mid=mid, topic=topic)
        msg.dup, msg.qos, msg.retain = bool(header & 0x08), qos, bool(header & 0x01)
        msg.properties, msg.payload, msg.timestamp = props, payload, time.monotonic()
        self._handle_on_message(msg)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _unused(body: bytearray) -> bool:
    """True if no view of ``body`` exists: a bytearray with views cannot change its length
    (``BufferError``). Tried by taking its last byte off and putting it back, which neither
    moves nor copies it."""
    try:
        last = body.pop()
    except BufferError:
        return False
    body.append(last)
    return True


#: The properties of every large PUBLISH that has none (shared: read, never changed).
_NO_PROPERTIES = Properties(PacketTypes.PUBLISH)
#: Bodies at least this long take :meth:`_Client._handle_publish`'s path.
_LARGE = 16384
#: PUBACK with reason "success" and no properties: type, remaining length 2, packet id.
_PUBACK = struct.Struct("!BBH")


class MqttBridge:
    """``async with MqttBridge(...) as bridge: await bridge.serve(handler)``."""

    #: Packets read per readiness callback before other callbacks get a turn. Small: each
    #: packet read becomes a handler task of about a millisecond, and a database result that
    #: arrives meanwhile waits behind all of them (a segment's commit takes several trips).
    READ_BURST = 2

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        tls: ssl.SSLContext,
        subscriptions: list[str],
        session_expiry: int = 7 * 24 * 3600,
        max_backoff: float = 30.0,
        on_state: Callable[[bool], None] | None = None,
        persistent: bool = True,
    ) -> None:
        self.subscriptions = subscriptions
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handler: Handler | None = None
        self._offer: Offer | None = None
        # messages that arrived before serve() was called: (message, connection number)
        self._backlog: list[tuple[mqtt.MQTTMessage, int]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._acks: list[int] = []  # packet ids to acknowledge at the end of this iteration
        self._connected = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._acked_connect = False
        self._reader_sock: Any = None
        self._writer_sock: Any = None
        self.connects = 0
        self.failures = 0  # handler failures (messages left unacknowledged)
        self.redelivery_drops = 0  # connections dropped to have failed messages redelivered
        self.persistent = persistent
        #: whether the broker still had this client's session at the last connect
        self.session_present = False
        self.subscription_refusals = 0  # connections dropped because a SUBSCRIBE was refused
        self.max_backoff = max_backoff
        self._drop_pending = False
        self._fail_streak = 0
        self.on_state = on_state
        c = _Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        c.tls_set_context(tls)
        c.manual_ack_set(True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._session_expiry = session_expiry
        self.client = c

    # paho callbacks (event loop thread, except socket-open during a connect) ---------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the hub: %s", rc)
            return
        self.connects += 1
        self._acked_connect = True
        self.session_present = bool(getattr(_flags, "session_present", False))
        log.info("connected to broker %s:%d (connect #%d, session present: %s)", self.host,
                 self.port, self.connects, getattr(_flags, "session_present", "?"))
        # Renew the subscriptions on every connect: the broker may have lost the session
        # (restart without persistence, expiry), and resubscribing an existing one is harmless.
        client.subscribe([(t, 1) for t in self.subscriptions])
        if self.on_state is not None:
            self.on_state(True)

    def _on_subscribe(self, _c: Any, _ud: Any, _mid: Any, codes: Any, _p: Any) -> None:
        # Ready only once the broker confirmed the subscriptions: before the SUBACK, messages
        # published to a fresh session would not reach the hub.
        failed = [c for c in codes if getattr(c, "is_failure", False)]
        if failed:
            # Connected but deaf: nothing would ever arrive. Drop the connection and try again
            # after a growing back-off (the broker's ACL may be fixed meanwhile).
            log.error("broker refused hub subscriptions (%s); reconnecting to try again",
                      ", ".join(str(c) for c in failed))
            self.subscription_refusals += 1
            self._acked_connect = False  # the back-off keeps growing
            self._shut()
            return
        self._connected.set()

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        if not self._closing:
            log.warning("disconnected from broker: %s (reconnecting with back-off)", rc)
        if self.on_state is not None:
            self.on_state(False)
        self._connected.clear()

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if self._handler is None:
            self._backlog.append((msg, self.connects))
        else:
            self._take(msg, self.connects)

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the event loop: now if this is the loop's thread (reads, writes,
        acknowledgements), else soon (paho opens the socket in the connecting thread)."""
        if self._loop is None or self._loop.is_closed():
            return  # paho closing its socket at garbage collection, after the loop is gone
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, _c: Any, _ud: Any, sock: Any) -> None:
        self._in_loop(self._watch_reads, sock)

    def _on_socket_close(self, _c: Any, _ud: Any, sock: Any) -> None:
        self._in_loop(self._forget_socket, sock)

    def _on_register_write(self, _c: Any, _ud: Any, sock: Any) -> None:
        self._in_loop(self._watch_writes, sock)

    def _on_unregister_write(self, _c: Any, _ud: Any, sock: Any) -> None:
        self._in_loop(self._unwatch_writes, sock)

    # socket readiness (event loop thread) --------------------------------------------------

    def _watch_reads(self, sock: Any) -> None:
        if sock is not self.client.socket():
            return  # closed again before the loop got to it
        assert self._loop is not None
        self._loop.add_reader(sock, self._readable)
        self._reader_sock = sock

    def _watch_writes(self, sock: Any) -> None:
        if sock is not self.client.socket() or self._writer_sock is sock:
            return
        assert self._loop is not None
        self._loop.add_writer(sock, self._writable)
        self._writer_sock = sock

    def _unwatch_writes(self, sock: Any) -> None:
        if self._writer_sock is sock:
            assert self._loop is not None
            self._loop.remove_writer(sock)
            self._writer_sock = None

    def _forget_socket(self, sock: Any) -> None:
        assert self._loop is not None
        if self._reader_sock is sock:
            self._loop.remove_reader(sock)
            self._reader_sock = None
        self._unwatch_writes(sock)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _readable(self) -> None:
        c = self.client
        for _ in range(self.READ_BURST):
            if c.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return  # connection lost: paho closed the socket (see _forget_socket)
            sock = c.socket()
            # TLS may hold decrypted bytes the kernel no longer signals: read them now
            if sock is None or not getattr(sock, "pending", lambda: 0)():
                return
        assert self._loop is not None
        self._loop.call_soon(self._readable)  # more is buffered; let other callbacks run first

    def _writable(self) -> None:
        self.client.loop_write()  # paho unregisters the writer once its queue is empty

    # asyncio side --------------------------------------------------------------------------

    async def __aenter__(self) -> MqttBridge:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry if self.persistent else 0
        self.client.connect_async(self.host, self.port, clean_start=not self.persistent,
                                  properties=props)
        self._tasks = [asyncio.create_task(self._keep_connected(), name="mqtt-connection"),
                       asyncio.create_task(self._housekeeping(), name="mqtt-keepalive")]
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=30)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        self._closing = True
        if self._loop is None or self._loop.is_closed():
            # finalised after its loop was closed (garbage collection): nothing left to await
            self.client._sock_close()
            return
        if self.client.socket() is not None:
            self.client.disconnect()
            self.client.loop_write()  # send DISCONNECT now; paho then closes the socket
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sock = self.client.socket()
        if sock is not None:
            self._forget_socket(sock)
            self.client._sock_close()  # the DISCONNECT could not be written at once

    async def _keep_connected(self) -> None:
        """Connect, wait until the connection is lost, reconnect after a jittered back-off
        (reset once a connection was accepted by the broker)."""
        assert self._loop is not None
        delay = 0.5
        while not self._closing:
            self._lost = self._loop.create_future()
            self._acked_connect = False
            try:
                await asyncio.to_thread(self.client.reconnect)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("broker %s:%d unreachable (%s); retrying", self.host, self.port, exc)
            else:
                await self._lost
            if self._closing:
                return
            if self._acked_connect:
                delay = 0.5
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_backoff)

    async def _housekeeping(self) -> None:
        """paho's periodic duties: keep-alive pings, and noticing a silent broker."""
        while True:
            await asyncio.sleep(1.0)
            if self.client.socket() is not None:
                self.client.loop_misc()

    def _schedule_drop(self) -> None:
        """Reconnect (after a growing back-off) so the broker redelivers what failed."""
        if self._drop_pending:
            return
        self._drop_pending = True
        delay = min(0.25 * 2 ** min(self._fail_streak, 10), self.max_backoff)
        assert self._loop is not None
        self._loop.call_later(delay * (0.5 + random.random()), self._drop)

    def _drop(self) -> None:
        self._drop_pending = False
        if self.client.socket() is None:
            return
        log.warning("dropping the broker connection so unacknowledged messages are redelivered")
        self.redelivery_drops += 1
        self._shut()

    def _shut(self) -> None:
        """End the connection: the next read sees the end; then _keep_connected reconnects."""
        sock = self.client.socket()
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    def _take(self, msg: mqtt.MQTTMessage, connection: int) -> None:
        offer = self._offer
        if offer is not None and offer(msg.topic, msg.payload,
                                       functools.partial(self._offered, msg, connection)):
            return
        self._start(msg, connection)

    def _offered(self, msg: mqtt.MQTTMessage, connection: int, then: Then) -> None:
        if then is None:
            self._fail_streak = 0
            self._ack(msg, connection)
        else:
            self._start(msg, connection, then)

    def _start(self, msg: mqtt.MQTTMessage, connection: int, work: Then = None) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # shutting down: left unacknowledged, the broker redelivers it
            return
        task = asyncio.create_task(self._one(msg, connection, work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _one(self, msg: mqtt.MQTTMessage, connection: int, work: Then = None) -> None:
        assert self._handler is not None or work is not None
        try:
            if work is not None:
                await work()
            else:
                assert self._handler is not None
                await self._handler(msg.topic, msg.payload)
        except Exception:
            log.exception("handler failed on %s; message left unacknowledged, to be "
                          "redelivered", msg.topic)
            self.failures += 1
            self._fail_streak += 1
            self._schedule_drop()
            return
        self._fail_streak = 0
        self._ack(msg, connection)

    def _ack(self, msg: mqtt.MQTTMessage, connection: int) -> None:
        """Acknowledge a handled message (with the others of this loop iteration)."""
        if connection == self.connects and msg.qos == 1:
            self._acks.append(msg.mid)
            if len(self._acks) == 1:
                assert self._loop is not None
                self._loop.call_soon(self._flush_acks, connection)

    def _flush_acks(self, connection: int) -> None:
        """Send the acknowledgements of this loop iteration as one write: PUBACK is four bytes
        (MQTT v5 allows the short form for success), and one TLS record and one system call
        for all of them cost less than paho's per-packet path."""
        mids, self._acks = self._acks, []
        c = self.client
        sock = c.socket()
        if connection != self.connects or sock is None:
            return  # the broker redelivers them on the new connection
        blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
        if not c._out_packet:
            # Nothing of paho's is waiting to be written: write now, rather than queue it and
            # wait a loop iteration for the socket to be writable (two epoll changes and
            # paho's write path each time). What the socket does not take goes to paho's queue:
            # after a TLS "want write", paho's next write is then the same bytes, as TLS needs.
            try:
                sent = sock.send(blob)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError,
                    InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the connection is failing: paho's own read or write reports it
            if sent:
                c._last_msg_out = time.monotonic()  # (paho's clock for keep-alive pings)
                blob = blob[sent:]
            if not blob:
                return
        c._packet_queue(0x40, blob, 0, 0)  # paho writes it as one packet

    async def serve(self, handler: Handler, offer: Offer | None = None) -> None:
        """Handle messages until cancelled. Each message is acknowledged after its handler;
        messages are started in the order they arrived.

        ``offer``, if given, sees each message first, synchronously, as it is read. If it
        takes the message (returns True), it calls ``then`` later, exactly once: with None,
        and the message is acknowledged; or with a coroutine function, which is then run the
        way the handler is (acknowledged when it returns; left unacknowledged, to be
        redelivered, when it raises). The ingest's chunk fast lane works this way: no task
        per message, and a recorder's chunks can be in flight together."""
        self._handler, self._offer = handler, offer
        backlog, self._backlog = self._backlog, []
        for msg, connection in backlog:
            self._take(msg, connection)
        try:
            await asyncio.Future()  # messages are started from the read callback
        finally:
            self._handler = self._offer = None

"""yardwire -- a tiny raw Yard protocol helper for the integration tests.

Written from proto/yard_proto.h and proto/PROTOCOL.md only (no C
code): a Yard message is one ZeroMQ multipart message whose frame 0 is a
4-byte header ('Y', sender role, version 1, command) and whose frames 1..n
are msgpack maps. Everything here is deliberately raw so the tests can also
send what a correct client never would.

Every receive is bounded by a poll timeout: nothing here can block forever.
"""

import os
import time

import msgpack
import zmq

# ---- constants (mirror proto/yard_proto.h) --------------------------------

MAGIC = 0x59  # 'Y'
VERSION = 1

ROLE_CLIENT = ord("C")
ROLE_WORKER = ord("W")
ROLE_BROKER = ord("B")

SUBMIT = 0x01
RESULT = 0x02
CANCEL = 0x03
READY = 0x04
TASK = 0x05
HEARTBEAT = 0x06
DISCONNECT = 0x07
ERROR = 0x08
PUBLISH = 0x10  # event bus (PROTOCOL.md 5.11)

CMD_NAMES = {
    SUBMIT: "SUBMIT", RESULT: "RESULT", CANCEL: "CANCEL", READY: "READY",
    TASK: "TASK", HEARTBEAT: "HEARTBEAT", DISCONNECT: "DISCONNECT",
    ERROR: "ERROR",
}

MAX_PAYLOAD = 4 * 1024 * 1024
MAX_BODY = MAX_PAYLOAD + 64 * 1024
MAX_MSGSIZE = 16 * 1024 * 1024
MAX_BATCH = 256

ADMIN_SERVICE = "yard.admin"

STATUSES = ("ok", "error", "timeout", "rejected", "circuit_open",
            "cancelled", "shutdown", "invalid")


def header(role, cmd, version=VERSION, magic=MAGIC):
    """The 4-byte header frame."""
    if isinstance(role, str):
        role = ord(role)
    return bytes([magic, role, version, cmd])


def pack(body):
    """Encodes one body. A dict is packed (str -> str, bytes -> bin);
    bytes are taken as an already-encoded (possibly broken) body."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return msgpack.packb(body, use_bin_type=True)


def unpack(frame):
    """Decodes one body; raises on anything that is not valid msgpack."""
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def as_bytes(value):
    """Payloads are bin on the wire; tolerate str when comparing."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


class Msg:
    """One received Yard message."""

    def __init__(self, frames):
        self.frames = frames
        h = frames[0] if frames else b""
        self.raw_header = h
        self.valid_header = len(h) == 4 and h[0] == MAGIC and h[2] == VERSION
        self.role = h[1] if len(h) >= 2 else None
        self.cmd = h[3] if len(h) >= 4 else None
        self.bodies = []
        self.decode_error = None
        for f in frames[1:]:
            try:
                self.bodies.append(unpack(f))
            except Exception as exc:  # keep going: report, do not crash
                self.decode_error = repr(exc)
                self.bodies.append(None)

    @property
    def name(self):
        return CMD_NAMES.get(self.cmd, "0x%02x" % (self.cmd or 0))

    def __repr__(self):
        bodies = []
        for b in self.bodies:
            if isinstance(b, dict):
                b = {k: (v[:40] if isinstance(v, (bytes, str)) else v)
                     for k, v in b.items()}
            bodies.append(b)
        return "<Msg %r %s %r>" % (self.raw_header, self.name, bodies)


def new_routing_id():
    """16 random bytes, first byte non-zero (ROUTER reserves a leading 0)."""
    rid = bytearray(os.urandom(16))
    rid[0] = (rid[0] % 255) + 1
    return bytes(rid)


class Peer:
    """A DEALER connected to the broker's ROUTER, with an explicit routing
    id. Base of Client and RawWorker."""

    role = ROLE_CLIENT

    def __init__(self, ctx, endpoint, routing_id=None):
        self.ctx = ctx
        self.endpoint = endpoint
        self.routing_id = routing_id or new_routing_id()
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 10000)  # never block forever
        self.sock.connect(endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    # -- sending --
    def send_frames(self, frames):
        self.sock.send_multipart([bytes(f) for f in frames], copy=True)

    def send(self, cmd, bodies=(), role=None):
        role = self.role if role is None else role
        self.send_frames([header(role, cmd)] + [pack(b) for b in bodies])

    # -- receiving --
    def recv(self, timeout):
        """One whole message, or None after timeout seconds."""
        ms = max(0, int(timeout * 1000))
        if not self.poller.poll(ms):
            return None
        return Msg(self.sock.recv_multipart())

    def recv_until(self, timeout, pred):
        """Receives until pred(msg) is true; returns (msg or None, others)."""
        deadline = time.monotonic() + timeout
        others = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, others
            m = self.recv(left)
            if m is None:
                return None, others
            if pred(m):
                return m, others
            others.append(m)


class Client(Peer):
    """A raw client. Keeps every RESULT body it receives, by id, so a test
    can wait for one task while others are answered, and can tell a
    duplicate answer from a missing one."""

    role = ROLE_CLIENT

    def __init__(self, ctx, endpoint, routing_id=None):
        super().__init__(ctx, endpoint, routing_id)
        self.results = {}  # id -> [result body, ...] in arrival order
        self.order = []  # ids in arrival order (one entry per answer)
        self.errors = []  # ERROR bodies
        self.others = []  # any other message (HEARTBEAT excluded)
        self._seq = 0

    def next_id(self, prefix="t"):
        self._seq += 1
        return "%s-%d-%s" % (prefix, self._seq, os.urandom(3).hex())

    @staticmethod
    def task(id, service, payload=b"", **fields):
        body = {"id": id, "service": service, "payload": as_bytes(payload)}
        body.update(fields)
        return body

    def submit(self, bodies):
        """Sends task bodies (dicts or raw bytes), at most 256 per message."""
        bodies = list(bodies)
        for i in range(0, len(bodies), MAX_BATCH):
            self.send(SUBMIT, bodies[i:i + MAX_BATCH])

    def submit1(self, service, payload=b"", id=None, **fields):
        id = id or self.next_id()
        self.submit([self.task(id, service, payload, **fields)])
        return id

    def cancel(self, ids):
        self.send(CANCEL, [{"id": i} for i in ids])

    def _absorb(self, m):
        """Files a received message; returns the RESULT bodies it held."""
        if m.cmd == RESULT and m.valid_header:
            got = []
            for b in m.bodies:
                if isinstance(b, dict) and "id" in b:
                    self.results.setdefault(b["id"], []).append(b)
                    self.order.append(b["id"])
                    got.append(b)
                else:
                    self.others.append(m)
            return got
        if m.cmd == ERROR and m.valid_header:
            self.errors.extend(m.bodies)
        elif m.cmd != HEARTBEAT:
            self.others.append(m)
        return []

    def pump(self, timeout):
        """Receives for up to timeout seconds (stops at the first message
        after which the socket is empty). Returns the RESULT bodies got."""
        got = []
        m = self.recv(timeout)
        while m is not None:
            got.extend(self._absorb(m))
            m = self.recv(0)
        return got

    def wait_results(self, ids, timeout):
        """Waits until every id in ids has at least one result. Returns
        {id: first result}; missing ids are simply absent."""
        ids = list(ids)
        deadline = time.monotonic() + timeout
        while True:
            if all(i in self.results for i in ids):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.pump(left)
        return {i: self.results[i][0] for i in ids if i in self.results}

    def wait_result(self, id, timeout):
        r = self.wait_results([id], timeout)
        return r.get(id)

    def call(self, service, payload=b"", timeout=10.0, **fields):
        """Submits one task and waits for its result (None on timeout)."""
        id = self.submit1(service, payload, **fields)
        return self.wait_result(id, timeout)

    def wait_error(self, timeout):
        """Waits for the next ERROR body; returns it or None."""
        deadline = time.monotonic() + timeout
        start = len(self.errors)
        while len(self.errors) == start:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(left)
        return self.errors[start]

    def heartbeat(self):
        self.send(HEARTBEAT, [])


class RawWorker(Peer):
    """A raw worker: READY, then TASK in, RESULT out. While it waits it
    sends a HEARTBEAT every 0.5 s, so the broker does not declare it lost
    unless the test wants it to (heartbeat=False)."""

    role = ROLE_WORKER

    def __init__(self, ctx, endpoint, service, capacity=1, ready=True,
                 heartbeat=True, routing_id=None):
        super().__init__(ctx, endpoint, routing_id)
        self.service = service
        self.capacity = capacity
        self.heartbeat_enabled = heartbeat
        self._last_send = time.monotonic()
        self.tasks = []  # every task body received
        self.cancels = []  # every job named by a CANCEL
        self.disconnected = False
        if ready:
            self.ready(capacity)

    def send(self, cmd, bodies=(), role=None):
        super().send(cmd, bodies, role)
        self._last_send = time.monotonic()

    def ready(self, capacity=None):
        if capacity is not None:
            self.capacity = capacity
        self.send(READY, [{"service": self.service,
                           "capacity": self.capacity,
                           "name": "pytest-raw-worker", "pid": os.getpid(),
                           "version": "0.1.0"}])

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            step = max(0.0, min(left, 0.25))
            m = super().recv(step)
            if m is not None:
                if m.cmd == TASK:
                    self.tasks.extend(b for b in m.bodies if isinstance(b, dict))
                elif m.cmd == CANCEL:
                    self.cancels.extend(b.get("job") for b in m.bodies
                                        if isinstance(b, dict))
                elif m.cmd == DISCONNECT:
                    self.disconnected = True
                return m
            if (self.heartbeat_enabled
                    and time.monotonic() - self._last_send >= 0.5):
                self.send(HEARTBEAT, [])
            if left <= 0:
                return None

    def idle(self, seconds):
        """Stays alive (heartbeating) for a while, collecting messages."""
        deadline = time.monotonic() + seconds
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            m = self.recv(left)
            if m is not None:
                got.append(m)

    def next_tasks(self, timeout):
        """The bodies of the next TASK message, or [] on timeout."""
        m, _ = self.recv_until(timeout, lambda m: m.cmd == TASK)
        return m.bodies if m is not None else []

    def result(self, job, status="ok", payload=b"", error=None, run_us=1):
        body = {"job": job, "status": status, "payload": as_bytes(payload),
                "run_us": run_us}
        if error is not None:
            body["error"] = error
        self.send(RESULT, [body])

    def disconnect(self):
        self.send(DISCONNECT, [])

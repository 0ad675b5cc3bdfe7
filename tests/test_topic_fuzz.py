"""Every message a subscriber receives is untrusted: `edgedepth topic echo` survives a stream of
malformed messages — random bytes, truncated headers and CDR payloads, numbers no integer
holds, deep nesting, wrong sizes — each one a single warning of bounded length, and then
prints the valid message that follows them. The test plays the hostile publisher, on
127.0.0.1."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from edgedepth.api.frame import DepthKind
from edgedepth.topic import encode_camera_info, encode_header, encode_image
from tests.test_topic import free_port

zmq = pytest.importorskip("zmq")

#: Longest warning line accepted (the error text is cut at 240 characters).
MAX_WARNING = 260


class Echo:
    """`edgedepth topic echo` in a subprocess, its stderr lines counted as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgedepth", "topic", "echo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip("\n"))

    def warnings(self) -> list[str]:
        return [line for line in self.errors if line.startswith("warning: ")]

    def wait_for_warnings(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.warnings()) < count and time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            time.sleep(0.005)

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        out, _ = self.process.communicate(timeout=timeout)
        self._reader.join(5)
        return self.process.returncode, out


def send_paced(echo: Echo, messages: Iterator[object], send: Callable[[object], None]) -> int:
    """Send each malformed message and wait for its warning (a subscriber's queue is bounded:
    a burst would be dropped, not received); the number sent."""
    sent = 0
    for message in messages:
        send(message)
        sent += 1
        if sent % 25 == 0:
            echo.wait_for_warnings(sent)
    echo.wait_for_warnings(sent)
    return sent


def assert_survived(echo: Echo, sent: int, valid_line: str) -> None:
    code, out = echo.finish()
    warnings = echo.warnings()
    assert code == 0, echo.errors[-5:]
    assert out.splitlines() == [valid_line]  # then the valid message, and nothing else
    assert len(warnings) == sent, (len(warnings), sent)
    assert max(len(line) for line in warnings) <= MAX_WARNING
    assert all(line.isprintable() for line in warnings)
    assert not any("Traceback" in line for line in echo.errors)


# --- ZeroMQ: this package's three-part messages -----------------------------------------------


def valid_zmq_message(seq: int = 7) -> tuple[list[bytes], str]:
    depth = np.linspace(0.5, 3.0, 6 * 8, dtype=np.float32).reshape(6, 8)
    header, data = encode_image(depth, DepthKind.METRIC_METERS, 1.5, seq)
    line = f"depth/image seq={seq} stamp=1.500 8x6 32FC1 192 B metric-meters range=0.500..3.000"
    return [b"depth/image", encode_header(header), data], line


#: Values that no field of a header accepts where it is put.
HOSTILE_VALUES = [
    "1e999", "-1e999", "1" + "0" * 400, "1.5", '"7"', "null", "[]", "{}", "NaN",
    "Infinity", "true", "[" * 20000 + "]" * 20000, '"' + "\\u001b[2J" * 50 + '"',
]  # fmt: skip
#: (path in the header, values it must refuse) — every field a subscriber reads.
FIELDS = {
    ("header", "seq"): [*HOSTILE_VALUES, "-1"],
    ("header", "stamp", "sec"): HOSTILE_VALUES,
    ("header", "stamp", "nanosec"): [*HOSTILE_VALUES, "-1", "1000000000"],
    ("height",): [*HOSTILE_VALUES, "-1", "0", "1099511627776"],
    ("width",): [*HOSTILE_VALUES, "-1", "0", "1099511627776"],
    ("step",): [*HOSTILE_VALUES, "-1", "1", "0"],
    ("encoding",): ['"rgb8"', "5", "null", "[]"],
    ("depth_kind",): ['"metres"', "null", "3"],
    ("is_bigendian",): ["2", "-1", "1e999", '"0"'],
}


def with_field(header: dict, path: tuple[str, ...], value_json: str) -> bytes:
    """The header as JSON with ``path`` set to the raw JSON text ``value_json``."""
    marker = "__EDGEDEPTH_FUZZ__"
    copy = json.loads(json.dumps(header))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return json.dumps(copy).replace(f'"{marker}"', value_json).encode()


def malformed_zmq_messages(rng: random.Random) -> Iterator[list[bytes]]:
    """More than a thousand messages, none of which is a valid depth topic message."""
    (topic, header_json, data), _ = valid_zmq_message()
    header = json.loads(header_json)
    for path, values in FIELDS.items():  # every field, every hostile value: ~130
        for value in values:
            yield [topic, with_field(header, path, value), data]
    info = encode_camera_info((50.0, 51.0, 4.0, 3.0), 6, 8, 1.5, 7)
    for k in ("[1, 2, 3]", '["a"] ', "1e999", "null", "[" * 5000 + "]" * 5000):
        yield [b"depth/image/camera_info", with_field(info, ("k",), k), b""]
    for _ in range(400):  # truncated headers
        yield [topic, header_json[: rng.randrange(len(header_json))], data]
    for _ in range(200):  # truncated or padded pixels
        cut = rng.randrange(len(data))
        yield [topic, header_json, data[:cut] if rng.random() < 0.5 else data + data[: cut + 1]]
    for _ in range(400):  # random bytes, random part counts
        parts = [rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.choice([1, 2, 3, 3, 4]))]
        if len(parts) == 3 and parts[1][:1] == b"{":
            parts[1] = b"}" + parts[1]
        yield parts
    yield [topic, b"[" * 100_000 + b"]" * 100_000, data]  # deep nesting
    yield [topic, b'{"header": ' * 50_000, data]
    yield [topic, b" " * 70_000 + header_json, data]  # an oversized header
    yield [b"\x1b[31m\xff\xfe" * 100, header_json[:-1], data]  # a topic of control bytes
    yield [topic, json.dumps({"type": "Image"}).encode(), data]  # fields missing


def test_echo_survives_a_thousand_malformed_zmq_messages():
    rng = random.Random(24)
    port = free_port()
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.setsockopt(zmq.SNDHWM, 0)  # queue here: the subscriber reads at its own pace
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind(f"tcp://127.0.0.1:{port}")
    try:
        echo = Echo(f"tcp://127.0.0.1:{port}", "--count", "1", "--timeout", "60")
        assert publisher.poll(30_000), echo.errors  # the subscription arrived
        publisher.recv()
        sent = send_paced(echo, malformed_zmq_messages(rng), publisher.send_multipart)
        assert sent >= 1000
        parts, line = valid_zmq_message()
        publisher.send_multipart(parts)
        assert_survived(echo, sent, line)
    finally:
        publisher.close()


# --- zenoh: rmw_zenoh's CDR payloads ----------------------------------------------------------


def test_echo_survives_malformed_zenoh_samples():
    pytest.importorskip("zenoh", reason="eclipse-zenoh is not installed")
    from edgedepth.topic.rmw_zenoh import Attachment, topic_key_expr
    from edgedepth.topic.ros2 import CAMERA_INFO, IMAGE, encode_cdr, header, image_message
    from edgedepth.topic.zenoh_session import open_zenoh

    rng = random.Random(24)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session = open_zenoh(listen=[endpoint])
    image_key = topic_key_expr(0, "depth/image", IMAGE)
    depth = np.linspace(0.5, 3.0, 6 * 8, dtype=np.float32).reshape(6, 8)
    payload = encode_cdr(IMAGE, image_message(depth, "32FC1", header(1_500_000_000, "camera")))
    gid = bytes(range(16))

    def attachment(seq: int) -> bytes:
        return Attachment(seq, time.time_ns(), gid).encode()

    def samples() -> Iterator[tuple[str, bytes, bytes | None]]:
        for _ in range(150):  # truncated CDR
            yield image_key, payload[: rng.randrange(len(payload))], attachment(1)
        for _ in range(60):  # random payloads, also on the camera info topic
            key = rng.choice([image_key, topic_key_expr(0, "depth/camera_info", CAMERA_INFO)])
            yield key, rng.randbytes(rng.randrange(300)), attachment(1)
        for _ in range(40):  # attachments that are not rmw_zenoh's
            yield image_key, payload, rng.choice([None, b"", rng.randbytes(rng.randrange(64))])
        for height in (0, 7, 1 << 30):  # sizes that do not match the pixels
            wrong = image_message(depth, "32FC1", header(0, "camera"))
            yield image_key, encode_cdr(IMAGE, {**wrong, "height": height}), attachment(1)
        for key in ("0/depth/image", "0/depth/image/not::a::type/x", "0/x/" + "a" * 5000):
            yield key, payload, attachment(1)

    try:
        echo = Echo(endpoint, "--transport", "zenoh", "--count", "1", "--timeout", "60")
        deadline = time.monotonic() + 30
        probe = session.declare_publisher(image_key)
        while not probe.matching_status.matching and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.matching_status.matching, echo.errors

        def put(sample: tuple[str, bytes, bytes | None]) -> None:
            key, body, attached = sample
            session.put(key, body, attachment=attached)

        sent = send_paced(echo, samples(), put)
        assert sent >= 250
        session.put(image_key, payload, attachment=attachment(9))
        line = "depth/image seq=9 stamp=1.500 8x6 32FC1 192 B metric-meters range=0.500..3.000"
        assert_survived(echo, sent, line)
    finally:
        session.close()

"""Depth topics: ROS-like depth messages, publishers and subscribers over ZeroMQ and zenoh.

- :mod:`edgedepth.topic.messages`: the message types and the ZeroMQ wire format below;
- :mod:`edgedepth.topic.transport`: publishers (whole frames in, messages out) and
  :class:`TopicSubscriber`, for both transports;
- :mod:`edgedepth.topic.rmw_zenoh`: what makes the zenoh transport speak rmw_zenoh (ROS 2).

Messages are shaped like ``sensor_msgs/Image``, ``sensor_msgs/CameraInfo`` and (``points:
true``) ``sensor_msgs/PointCloud2``. Depth follows REP-117/118: metric depth as ``32FC1`` metres
(NaN = no measurement) or ``16UC1`` millimetres (rounded; 0 = no measurement, and 0 beyond
65.535 m, never clamped). Relative depth has no unit: it is float32 under an encoding that names
its kind, ``relative_disparity_32FC1`` (larger is nearer) or ``relative_depth_32FC1`` (larger is
farther), on every transport and whatever its topic is called, so no subscriber takes it for
metres (ZeroMQ headers also carry ``depth_kind``).

Wire format (language-neutral)
------------------------------

ZeroMQ (the default): the publisher binds a PUB-compatible socket (XPUB); subscribers connect a
SUB socket and subscribe to a topic *prefix* (ZeroMQ filters on the first frame's bytes, so
``depth/image`` also receives ``depth/image/camera_info``). Each message has three frames:

1. the topic, UTF-8 (``depth/image``, ``depth/relative``, ``depth/image/camera_info``,
   ``depth/points``);
2. the header, UTF-8 JSON: every field of the message except the pixels (or points);
3. the pixels: ``height`` rows of ``step`` bytes, row-major, little endian
   (``is_bigendian`` = 0), float32 for ``32FC1`` and the relative encodings, uint16 for
   ``16UC1``; the points of a PointCloud2 (``height`` rows of ``row_step`` bytes); empty for
   CameraInfo.

Zenoh (``transport: zenoh``): rmw_zenoh's wire format, so ROS 2 nodes receive the messages:
CDR ``sensor_msgs/msg/Image``, ``CameraInfo`` and ``PointCloud2`` on rmw_zenoh key expressions,
with its attachment and liveliness tokens (see :mod:`edgedepth.topic.rmw_zenoh`; ``seq`` is
then the publisher's sequence number, from 1).

Header JSON of an image::

    {"type": "Image",
     "header": {"stamp": {"sec": 12, "nanosec": 500000000}, "frame_id": "camera", "seq": 375},
     "height": 480, "width": 640, "encoding": "32FC1", "is_bigendian": 0, "step": 2560,
     "depth_kind": "metric-meters"}

``stamp`` is the wall-clock time of capture (``stamp: media``: the frame's media time, seconds
from the start of the stream); ``seq`` is the frame index, so a gap in ``seq`` is a frame this
subscriber did not get.

Header JSON of camera info (the image's intrinsics, pinhole, no distortion)::

    {"type": "CameraInfo", "header": {...same...}, "height": 480, "width": 640,
     "distortion_model": "plumb_bob", "d": [0, 0, 0, 0, 0],
     "k": [fx, 0, cx, 0, fy, cy, 0, 0, 1], "r": [...3x3 identity...],
     "p": [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0]}

Header JSON of a point cloud (depth_image_proc's layout: x y z float32 at 0, 4, 8, point_step
16; with ``rgb`` at 16, point_step 32; NaN where the depth is invalid)::

    {"type": "PointCloud2", "header": {...same...}, "height": 480, "width": 640,
     "fields": [{"name": "x", "offset": 0, "datatype": 7, "count": 1}, ...],
     "is_bigendian": false, "point_step": 16, "row_step": 10240, "is_dense": false}

A subscriber in C++ with cppzmq, for example: ``recv_multipart``, parse frame 2 with any JSON
library, then view frame 3 as ``float`` (or ``uint16_t``) rows of ``step`` bytes.
"""

from edgedepth.topic.messages import (
    CAMERA_INFO_SUFFIX,
    DEFAULT_ENDPOINT,
    DEFAULT_RELATIVE_TOPIC,
    DEFAULT_TOPIC,
    CameraInfo,
    DepthImage,
    Encoding,
    Message,
    MessageError,
    PointCloud,
    Stamped,
    Transport,
    as_topic_message,
    decode,
    encode_camera_info,
    encode_header,
    encode_image,
    encode_points,
)
from edgedepth.topic.ros2 import to_millimetres
from edgedepth.topic.transport import (
    Publisher,
    PublishSettings,
    TopicSubscriber,
    ZenohPublisher,
    ZmqPublisher,
    wait_until,
)
from edgedepth.topic.zenoh_session import (
    import_zenoh,
    open_zenoh,
    zenoh_config,
    zenoh_error,
    zenoh_locator,
)

__all__ = [
    "CAMERA_INFO_SUFFIX",
    "DEFAULT_ENDPOINT",
    "DEFAULT_RELATIVE_TOPIC",
    "DEFAULT_TOPIC",
    "CameraInfo",
    "DepthImage",
    "Encoding",
    "Message",
    "MessageError",
    "PointCloud",
    "PublishSettings",
    "Publisher",
    "Stamped",
    "TopicSubscriber",
    "Transport",
    "ZenohPublisher",
    "ZmqPublisher",
    "as_topic_message",
    "decode",
    "encode_camera_info",
    "encode_header",
    "encode_image",
    "encode_points",
    "import_zenoh",
    "open_zenoh",
    "to_millimetres",
    "wait_until",
    "zenoh_config",
    "zenoh_error",
    "zenoh_locator",
]

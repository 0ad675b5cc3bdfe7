"""``python tests/tools/pretend_npu.py run --config X``: the edgedepth command line as on a
machine whose QNN execution provider reports an NPU. This machine has only Qualcomm's HTP
emulator; the pretence is that one fact (the device type), everything else (registration, the
emulator compiling or failing) is real."""

from __future__ import annotations

import dataclasses

from edgedepth.cli import main
from edgedepth.runtime import qnn

qnn._qnn_target = dataclasses.replace(
    qnn.qnn_target(), npu=True, description="Snapdragon(R) X Elite (pretend NPU)"
)
main()

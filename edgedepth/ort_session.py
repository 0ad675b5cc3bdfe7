"""ONNX Runtime sessions on the CPU and on Qualcomm's QNN execution provider (HTP).

The QNN EP ships as a plugin library (``onnxruntime-qnn``): it is registered with
``onnxruntime.register_execution_provider_library`` and selected per device with
``SessionOptions.add_provider_for_devices`` (``providers=["QNNExecutionProvider"]`` silently gives
a CPU session with these wheels). The EP ignores option names it does not know, so we check them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort
from pydantic import Field, field_validator

from edgedepth.config import StrictModel
from edgedepth.errors import EdgedepthError

log = logging.getLogger("edgedepth")
# ONNX Runtime's own warnings (e.g. the emulator's "file mapped weights" notice) are not actionable
# for users; errors still surface as exceptions.
ort.set_default_logger_severity(3)

#: Named Snapdragon targets → (soc_model, htp_arch).
QNN_PRESETS: dict[str, tuple[int, int]] = {
    "snapdragon-x-elite": (60, 73),
    "snapdragon-x2-elite": (88, 81),
    "snapdragon-8-gen-3": (57, 75),
    "snapdragon-8-elite": (69, 79),
}

PerformanceMode = Literal[
    "burst",
    "sustained_high_performance",
    "high_performance",
    "balanced",
    "low_balanced",
    "default",
    "power_saver",
    "low_power_saver",
    "high_power_saver",
    "extreme_power_saver",
]

#: Provider options the QNN EP understands (onnxruntime docs, QNN EP). Anything else is a typo.
KNOWN_QNN_OPTIONS = frozenset(
    {
        "backend_type",
        "backend_path",
        "profiling_level",
        "profiling_file_path",
        "rpc_control_latency",
        "vtcm_mb",
        "htp_performance_mode",
        "qnn_saver_path",
        "qnn_context_priority",
        "htp_graph_finalization_optimization_mode",
        "soc_model",
        "htp_arch",
        "device_id",
        "enable_htp_fp16_precision",
        "offload_graph_io_quantization",
        "enable_htp_spill_fill_buffer",
        "enable_htp_shared_memory_allocator",
        "dump_json_qnn_graph",
        "json_qnn_graph_dir",
    }
)
#: Set from the typed options above; not accepted a second time through ``provider_options``.
_TYPED_QNN_OPTIONS = {"soc_model", "htp_arch", "htp_performance_mode", "enable_htp_fp16_precision"}


class QnnOptions(StrictModel):
    """``backend.qnn`` in the config."""

    #: A named target (sets soc_model/htp_arch); see :data:`QNN_PRESETS`.
    device: str = "snapdragon-x-elite"
    soc_model: int | None = Field(None, ge=0)
    htp_arch: int | None = Field(None, ge=0)
    #: fp16: a float model run in fp16 on the HTP; quantized: a QDQ model (deploy quantize).
    precision: Literal["fp16", "quantized"] = "fp16"
    performance_mode: PerformanceMode = "burst"
    #: Let ONNX Runtime run nodes the HTP rejects on the CPU (slow, hides problems): off.
    cpu_fallback: bool = False
    #: Write an EPContext model + context binary on first use and load it afterwards.
    context_cache: bool = True
    #: Further QNN EP provider options, passed through after checking their names.
    provider_options: dict[str, str | int | float] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device not in QNN_PRESETS:
            raise ValueError(
                f"unknown device {device!r} (known: {', '.join(QNN_PRESETS)}); "
                "or set soc_model and htp_arch"
            )
        return device

    @field_validator("provider_options")
    @classmethod
    def _known_options(cls, provider_options: dict[str, Any]) -> dict[str, Any]:
        for name in provider_options:
            if name in _TYPED_QNN_OPTIONS:
                raise ValueError(f"{name}: set it with the typed option instead")
            if name not in KNOWN_QNN_OPTIONS:
                raise ValueError(
                    f"{name}: not a QNN EP option (the EP would silently ignore it); known: "
                    f"{', '.join(sorted(KNOWN_QNN_OPTIONS - _TYPED_QNN_OPTIONS))}"
                )
        return provider_options

    @property
    def target(self) -> tuple[int, int]:
        soc, arch = QNN_PRESETS[self.device]
        return (self.soc_model or soc, self.htp_arch or arch)

    def provider_option_strings(self) -> dict[str, str]:
        soc, arch = self.target
        options = {
            "backend_type": "htp",
            "soc_model": str(soc),
            "htp_arch": str(arch),
            "htp_performance_mode": self.performance_mode,
        }
        if self.precision == "fp16":
            options["enable_htp_fp16_precision"] = "1"
        options.update({k: str(v) for k, v in self.provider_options.items()})
        return options

    @property
    def context_tag(self) -> str:
        """What a compiled context binary depends on (part of its file name)."""
        soc, arch = self.target
        return f"qnn-soc{soc}-v{arch}-{self.precision}"


# --- QNN EP registration -------------------------------------------------------------------------

_registration_lock = threading.Lock()
_qnn_device: Any = None


def qnn_ep_device() -> Any:
    """The QNN EP's ``OrtEpDevice`` (registering the plugin library once per process)."""
    global _qnn_device
    with _registration_lock:
        if _qnn_device is not None:
            return _qnn_device
        try:
            import onnxruntime_qnn
        except ImportError:
            raise EdgedepthError(
                "runtime qnn needs the QNN execution provider: pip install 'edgedepth[qnn]' "
                "(onnxruntime-qnn)"
            ) from None
        name = onnxruntime_qnn.get_ep_name()
        if not any(device.ep_name == name for device in ort.get_ep_devices()):
            try:
                ort.register_execution_provider_library(name, onnxruntime_qnn.get_library_path())
            except Exception as exc:
                raise EdgedepthError(f"cannot load the QNN execution provider: {exc}") from None
        devices = [device for device in ort.get_ep_devices() if device.ep_name == name]
        if not devices:
            raise EdgedepthError("the QNN execution provider found no device on this machine")
        # Prefer a real NPU; the Linux x86-64 wheel only offers its HTP emulator (a CPU device).
        devices.sort(key=lambda d: d.device.type != ort.OrtHardwareDeviceType.NPU)
        _qnn_device = devices[0]
        return _qnn_device


def qnn_has_npu() -> bool:
    """True when the QNN EP is installed and reports an NPU (a Snapdragon device)."""
    try:
        device = qnn_ep_device()
    except EdgedepthError:
        return False
    return device.device.type == ort.OrtHardwareDeviceType.NPU


# --- sessions ------------------------------------------------------------------------------------


def cpu_session(model_path: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Default: one thread per core. The other stages mostly wait in C code (decode, encode),
    # and the backend is the slowest stage, so it gets the whole machine.
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    # Idle ONNX Runtime threads would spin-wait for work, taking the CPU from the other stages
    # (decode, colourise, encode) that run at the same time in the pipeline.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise EdgedepthError(f"{model_path}: ONNX Runtime cannot load the model: {exc}") from None


def is_context_model(model_path: Path) -> bool:
    """True for an EPContext model (its nodes point to a precompiled QNN context binary)."""
    with open(model_path, "rb") as handle:
        head = handle.read(1 << 20)
    return b"EPContext" in head


def qnn_session(
    model_path: Path, options: QnnOptions, context_path: Path | None = None
) -> ort.InferenceSession:
    """A session on the HTP. With ``context_path`` (and ``context_cache``): load the EPContext
    model there if it exists, else compile ``model_path`` and write it there."""
    device = qnn_ep_device()
    if context_path is not None and options.context_cache and context_path.exists():
        source, compile_to = context_path, None
    elif context_path is not None and options.context_cache:
        source, compile_to = model_path, context_path
    else:
        source, compile_to = model_path, None
    session_options = ort.SessionOptions()
    if not options.cpu_fallback:
        session_options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if compile_to is not None:
        compile_to.parent.mkdir(parents=True, exist_ok=True)
        session_options.add_session_config_entry("ep.context_enable", "1")
        session_options.add_session_config_entry("ep.context_file_path", str(compile_to))
        session_options.add_session_config_entry("ep.context_embed_mode", "0")
    session_options.add_provider_for_devices([device], options.provider_option_strings())
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(str(source), sess_options=session_options)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgedepthError(
            f"{source}: QNN ({options.context_tag}) cannot compile or load the model: {message}"
        ) from None
    seconds = time.perf_counter() - started
    if source == context_path or (compile_to is None and is_context_model(source)):
        log.info("qnn: loaded context binary %s in %.1f s", source, seconds)
    elif compile_to is not None:
        log.info("qnn: compiled in %.1f s, context binary written to %s", seconds, compile_to)
    else:
        log.info("qnn: compiled in %.1f s (context cache off)", seconds)
    return session

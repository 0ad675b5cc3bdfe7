"""The keys every ONNX backend takes in its YAML section (:class:`OnnxOptions`: where the graph
runs, its precision, the sessions kept, the ready model) and the QNN execution provider's own
(:class:`QnnOptions`, ``backend.qnn``). Plain pydantic: reading a config imports no runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from edgedepth.api.options import ConfigPath, StrictModel

if TYPE_CHECKING:
    from edgedepth.runtime.qnn import QnnTarget

#: Named Snapdragon targets → (soc_model, htp_arch). For the HTP emulator and offline compiles
#: only: on a real NPU the driver knows its chip, and forcing another one prepares the graph for
#: the wrong HTP.
QNN_PRESETS: dict[str, tuple[int, int]] = {
    "snapdragon-x-elite": (60, 73),
    "snapdragon-x2-elite": (88, 81),
    "snapdragon-8-gen-3": (57, 75),
    "snapdragon-8-elite": (69, 79),
}
#: The emulator's (and ``deploy compile --local``'s) target when none is named.
DEFAULT_PRESET = "snapdragon-x-elite"

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

    device: str | None = None
    """A named Snapdragon (snapdragon-x-elite, snapdragon-x2-elite, snapdragon-8-gen-3,
    snapdragon-8-elite) that sets soc_model/htp_arch for the HTP emulator and offline compiles;
    not applied on a real NPU (the driver knows its chip). Default: snapdragon-x-elite."""
    soc_model: int | None = Field(None, ge=0)
    """QNN SoC model number (overrides the device's), for the emulator and offline compiles."""
    htp_arch: int | None = Field(None, ge=0)
    """HTP architecture version, e.g. 73 (overrides the device's)."""
    precision: Literal["fp16", "quantized"] = "fp16"
    """fp16: a float model run in fp16 on the HTP; quantized: a QDQ model (deploy quantize)."""
    performance_mode: PerformanceMode = "burst"
    """HTP performance mode: burst, sustained_high_performance, balanced, power_saver, …"""
    cpu_fallback: bool = False
    """Let ONNX Runtime run nodes the HTP rejects on the CPU (slow, hides problems): off."""
    context_cache: bool = True
    """Write an EPContext model + context binary on first use and load it afterwards."""
    provider_options: dict[str, str | int | float] = Field(default_factory=dict)
    """Further QNN EP provider options, passed through after checking their names."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str | None) -> str | None:
        if device is not None and device not in QNN_PRESETS:
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
            if name == "backend_type":
                raise ValueError(
                    "backend_type: edgedepth passes backend_path (onnxruntime-qnn's own HTP "
                    "library) and the QNN EP refuses both together; to use another QNN build, "
                    "set backend_path to its QnnHtp library"
                )
            if name not in KNOWN_QNN_OPTIONS:
                raise ValueError(
                    f"{name}: not a QNN EP option (the EP would silently ignore it); known: "
                    f"{', '.join(sorted(KNOWN_QNN_OPTIONS - _TYPED_QNN_OPTIONS))}"
                )
        return provider_options

    @property
    def target(self) -> tuple[int, int]:
        """(soc_model, htp_arch) for the emulator and offline compiles."""
        soc, arch = QNN_PRESETS[self.device or DEFAULT_PRESET]
        return (self.soc_model or soc, self.htp_arch or arch)

    @property
    def names_a_chip(self) -> bool:
        """True when the config names a chip (preset or numbers) rather than taking the default."""
        return self.device is not None or self.soc_model is not None or self.htp_arch is not None

    def provider_option_strings(
        self, on_npu: bool = False, offline: bool = False
    ) -> dict[str, str]:
        """The QNN EP options. ``on_npu`` (a real NPU, not the emulator) leaves the chip to the
        driver unless ``offline`` (compiling a context binary for another device)."""
        from edgedepth.runtime.qnn import htp_backend_path

        options = {
            # An absolute path: older onnxruntime-qnn builds cannot find QnnHtp.dll by the
            # relative name backend_type=htp uses on Windows.
            "backend_path": htp_backend_path(),
            "htp_performance_mode": self.performance_mode,
        }
        if offline or not on_npu:
            soc, arch = self.target
            options.update({"soc_model": str(soc), "htp_arch": str(arch)})
        if self.precision == "fp16":
            options["enable_htp_fp16_precision"] = "1"
        options.update({k: str(v) for k, v in self.provider_options.items()})
        return options

    def context_tag(self, target: QnnTarget | None = None) -> str:
        """What a compiled context binary depends on (part of its file name): the emulated chip,
        or on a real NPU the chip recognised from its description."""
        if target is not None and target.npu:
            return f"qnn-npu-{target.preset or 'auto'}-{self.precision}"
        soc, arch = self.target
        return f"qnn-soc{soc}-v{arch}-{self.precision}"


OnnxRuntimeName = Literal["auto", "onnx-cpu", "qnn"]


class OnnxOptions(StrictModel):
    """What every ONNX backend takes: subclass it for a backend's options (add the model's own
    keys), and :class:`edgedepth.runtime.onnx_backend.OnnxBackend` does the rest."""

    model: ConfigPath | None = None
    """A ready model: an ONNX or EPContext file, or a folder from `edgedepth deploy` (its
    manifest names the model to run and the float model beside it)."""
    runtime: OnnxRuntimeName = "auto"
    """auto (the NPU when there is one, else the CPU) | onnx-cpu | qnn."""
    precision: Literal["float32", "int8"] = "float32"
    """onnx-cpu: ``int8`` runs a dynamically quantised copy of the graph (int8 MatMuls, made
    once and cached beside it). The HTP's own precision is ``qnn.precision``."""
    threads: int | None = Field(None, ge=1)
    """ONNX Runtime CPU threads (default: one per core)."""
    max_shapes: int = Field(4, ge=1)
    """Sessions kept open for different input sizes (keep-aspect gives photos of different sizes
    their own); beyond this the least recently used is closed (its graph stays cached on disk)."""
    qnn: QnnOptions = Field(default_factory=QnnOptions)
    """The QNN execution provider (runtime qnn)."""

    @model_validator(mode="after")
    def _check_precision(self) -> OnnxOptions:
        if self.precision == "int8" and self.runtime not in ("auto", "onnx-cpu"):
            raise ValueError(
                f"precision int8 is for runtime onnx-cpu, not {self.runtime} (on the HTP: "
                "qnn.precision: quantized with a model from `edgedepth deploy quantize`)"
            )
        return self

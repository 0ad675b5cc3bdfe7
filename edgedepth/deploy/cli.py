"""``edgedepth deploy``: export, quantize, compile (locally with onnxruntime-qnn or on Qualcomm AI
Hub) and status. A built-in plugin: it adds its commands through ``register_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.cli import config_option, debug_option, load_with_plugins, set_option, user_errors
from edgedepth.engine.config import PluginSection
from edgedepth.runtime.accuracy import format_comparison
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.options import QNN_PRESETS, QnnOptions
from edgedepth.runtime.sessions import cpu_session

if TYPE_CHECKING:
    from edgedepth.deploy.artifact import DeployTarget, Feeds

out_option = click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True
)
size_option = click.option(
    "--input-size",
    default=None,
    metavar="HxW",
    help="Graph input size (default: what the config's resize policy makes of its source).",
)
samples_option = click.option(
    "--samples", default=3, show_default=True, help="Frames from the config's source to verify on."
)


def _target(
    config: Path,
    overrides: tuple[str, ...],
    input_size: str | None,
    source: PluginSection | None = None,
) -> DeployTarget:
    from edgedepth.deploy.artifact import deploy_target, parse_size, with_source

    loaded, registry = load_with_plugins(config, overrides)
    size = parse_size(input_size) if input_size else None
    target = deploy_target(loaded, registry, size)
    if source is None:
        return target
    # Same config, another source (calibration frames): keep the graph's input size.
    calibration = deploy_target(with_source(loaded, source), registry, target.input_size)
    calibration.model = target.model  # bound to the exported graph already
    return calibration


def _calibration_source(calibration: str, frame_size: tuple[int, int]) -> PluginSection:
    """--calibration VIDEO | DIR | synthetic[:N] → the source section that reads it."""
    if calibration.startswith("synthetic"):
        count_text = calibration.partition(":")[2] or "16"
        if not count_text.isdigit() or int(count_text) < 1:
            raise EdgedepthError(
                f"--calibration {calibration}: synthetic:N takes a number of frames (≥ 1), "
                f"not {count_text!r}"
            )
        height, width = frame_size
        return PluginSection(type="synthetic", frames=int(count_text), width=width, height=height)
    path = Path(calibration).resolve()
    if not path.exists():
        raise EdgedepthError(f"--calibration: not found: {calibration}")
    return PluginSection(type="images" if path.is_dir() else "video", path=str(path))


@click.group()
def deploy() -> None:
    """Build what runs on a Snapdragon: ONNX with pre/post processing inside, QDQ models, QNN
    context binaries (locally or on Qualcomm AI Hub)."""


@deploy.command()
@config_option
@out_option
@set_option
@size_option
@debug_option
def export(
    config: Path, out_dir: Path, overrides: tuple[str, ...], input_size: str | None, debug: bool
) -> None:
    """ONNX of the config's model with its pre/post processing in the graph, plus manifest.json."""
    from edgedepth.deploy.artifact import export_float_graph, prepare_out_dir

    with user_errors(debug):
        prepare_out_dir(out_dir)
        target = _target(config, overrides, input_size)
        manifest = export_float_graph(target, out_dir)
        inputs = ", ".join(f"{t.name} {t.shape}" for t in manifest.inputs)
        outputs = ", ".join(f"{t.name} {t.shape}" for t in manifest.outputs)
        kind = manifest.depth_kind.value if manifest.depth_kind else "depth"
        click.echo(f"{out_dir / 'model.onnx'}: {inputs} → {outputs} ({kind})")


@deploy.command()
@config_option
@click.option(
    "--calibration",
    required=True,
    help="A video file, an image folder, or synthetic[:N] (frames from the synthetic source).",
)
@out_option
@click.option("--scheme", type=click.Choice(["w8a16", "int8"]), default="w8a16", show_default=True)
@click.option("--frames", "count", default=16, show_default=True, help="Calibration frames.")
@set_option
@size_option
@debug_option
def quantize(
    config: Path,
    calibration: str,
    out_dir: Path,
    scheme: str,
    count: int,
    overrides: tuple[str, ...],
    input_size: str | None,
    debug: bool,
) -> None:
    """QDQ quantisation for the QNN HTP, calibrated on real frames; reports the loss vs float."""
    from edgedepth.deploy.artifact import export_float_graph, prepare_out_dir, sample_frames
    from edgedepth.deploy.quantize import quantize_model

    with user_errors(debug):
        prepare_out_dir(out_dir)
        target = _target(config, overrides, input_size)
        calibration_source = _calibration_source(calibration, target.frame_size)  # before work
        float_dir = out_dir / "float"
        manifest = export_float_graph(target, float_dir, htp=True)
        calibration_target = _target(config, overrides, input_size, calibration_source)
        frames = sample_frames(calibration_target, count)
        feeds = [target.model.inputs(frame) for frame in frames]
        manifest = quantize_model(
            float_dir,
            manifest,
            out_dir,
            target.model,
            feeds,
            scheme,
            calibration,  # type: ignore[arg-type]
        )
        assert manifest.quantization is not None
        accuracy = manifest.quantization["cpu_accuracy_vs_float"]
        click.echo(f"{out_dir / 'model.onnx'}: {scheme} QDQ, {len(frames)} calibration frames")
        click.echo(format_comparison("CPU, quantised vs float", accuracy))


@deploy.command(name="compile")
@config_option
@out_option
@click.option("--local", "where", flag_value="local", help="onnxruntime-qnn on this machine.")
@click.option("--aihub", "where", flag_value="aihub", help="Qualcomm AI Hub (needs a token).")
@click.option(
    "--soc",
    type=click.Choice(sorted(QNN_PRESETS)),
    default="snapdragon-x-elite",
    show_default=True,
    help="--local: the Snapdragon to compile for.",
)
@click.option("--precision", type=click.Choice(["fp16", "quantized"]), default="fp16")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Compile this folder (e.g. from `deploy quantize`) instead of exporting the config.",
)
@click.option("--device", default="Snapdragon X Elite CRD", show_default=True, help="--aihub.")
@click.option(
    "--target-runtime",
    type=click.Choice(["precompiled_qnn_onnx", "qnn_context_binary", "onnx", "tflite"]),
    default="precompiled_qnn_onnx",
    show_default=True,
    help="--aihub: what AI Hub compiles to.",
)
@click.option("--compile-options", default="", help="--aihub: extra compile job options.")
@click.option(
    "--profile-options", default="--max_profiler_iterations 20", show_default=True, help="--aihub."
)
@samples_option
@set_option
@size_option
@debug_option
def compile_command(
    config: Path,
    out_dir: Path,
    where: str | None,
    soc: str,
    precision: str,
    model_dir: Path | None,
    device: str,
    target_runtime: str,
    compile_options: str,
    profile_options: str,
    samples: int,
    overrides: tuple[str, ...],
    input_size: str | None,
    debug: bool,
) -> None:
    """Compile to a QNN context binary and verify it against the float model on sample frames."""
    from edgedepth.deploy.artifact import (
        bind_model,
        export_float_graph,
        prepare_out_dir,
        require_model_dir,
        sample_frames,
    )

    with user_errors(debug):
        if where is None:
            raise EdgedepthError("compile: say where: --local or --aihub")
        if where == "aihub":
            from edgedepth.deploy import aihub

            aihub.check_credentials()  # before any export or upload
        prepare_out_dir(out_dir)
        target = _target(config, overrides, input_size)
        if model_dir is not None:
            manifest = require_model_dir(model_dir, "--model")
            bind_model(target.model, model_dir / "model.onnx", manifest)
            source_dir = model_dir
        else:
            source_dir = out_dir / "float"
            manifest = export_float_graph(target, source_dir, htp=True)
        feeds = [target.model.inputs(frame) for frame in sample_frames(target, samples)]
        if where == "local":
            _compile_local(target, source_dir, manifest, out_dir, soc, precision, feeds)
        else:
            _compile_aihub(
                target,
                source_dir,
                manifest,
                out_dir,
                feeds,
                device=device,
                target_runtime=target_runtime,
                compile_options=compile_options,
                profile_options=profile_options,
            )


def _compile_local(
    target: DeployTarget,
    source_dir: Path,
    manifest: Manifest,
    out_dir: Path,
    soc: str,
    precision: str,
    feeds: list[Feeds],
) -> None:
    from edgedepth.deploy.compile_local import compile_local, verify_local

    qnn = QnnOptions(device=soc, precision=precision)  # type: ignore[arg-type]
    manifest = compile_local(source_dir, manifest, out_dir, qnn)
    info = manifest.qnn or {}
    click.echo(
        f"{out_dir}: {info['context_binary']} ({info['context_binary_bytes'] / 1e6:.1f} MB) for "
        f"{soc} (soc_model {info['soc_model']}, htp_arch {info['htp_arch']}), {precision}, "
        f"compiled in {info['compile_seconds']} s"
    )
    numbers = verify_local(out_dir, manifest, target.model, feeds, qnn)
    click.echo(format_comparison("verify, HTP vs CPU float", numbers))
    click.echo(f"run it: backend: {{type: {target.backend_type}, model: {out_dir}}}")


def _compile_aihub(
    target: DeployTarget,
    source_dir: Path,
    manifest: Manifest,
    out_dir: Path,
    feeds: list[Feeds],
    **aihub_options: str,
) -> None:
    from edgedepth.deploy import aihub
    from edgedepth.deploy.artifact import depth_maps

    session = cpu_session(source_dir / (manifest.reference_model or "model.onnx"))
    reference = depth_maps(target.model, session, feeds)
    # Writes out_dir/manifest.json itself (job ids, latency, accuracy), so results survive.
    aihub.compile_on_aihub(
        source_dir,
        out_dir,
        model=target.model,
        feeds=feeds,
        reference_depth=reference,
        **aihub_options,  # type: ignore[arg-type]
    )


@deploy.command()
@click.argument("job_id")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Download a finished compile job's artifact here.",
)
@debug_option
def status(job_id: str, out_dir: Path | None, debug: bool) -> None:
    """State of an AI Hub job; resume an interrupted compile (downloads the artifact)."""
    from edgedepth.deploy import aihub

    with user_errors(debug):
        aihub.job_status(job_id, out_dir)


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(deploy)

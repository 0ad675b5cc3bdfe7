"""``edgedepth bench``: run configs on their file source for N frames, each in its own process
(so peak memory and QNN sessions are its own), and compare per-stage latency, FPS, end-to-end
latency, drops and peak memory side by side. ``--plot`` draws per-stage latency histograms."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.options import output_fields
from edgedepth.cli import (
    claim_option_output,
    debug_option,
    existing_option,
    load_with_plugins,
    set_option,
    user_errors,
)
from edgedepth.engine.registry import resolve_config


def sink_overrides(
    config: Path, overrides: tuple[str, ...], sinks: str, scratch: Path
) -> list[str]:
    """``--set`` overrides that keep a benchmark away from the user's recordings: no sinks
    (``off``), or every file and folder a sink writes redirected into ``scratch`` (``temp``)."""
    if sinks == "off":
        return ["sinks=[]"]
    loaded, registry = load_with_plugins(config, overrides)
    redirected = []
    for index, spec in enumerate(resolve_config(loaded, registry).sinks):
        for name in output_fields(type(spec.options)):
            original = getattr(spec.options, name)
            if original is not None:
                target = scratch / f"sink{index}-{name}{Path(original).suffix}"
                redirected.append(f"sinks[{index}].{name}={json.dumps(str(target))}")
    return redirected


def bench_config(
    config: Path, frames: int, overrides: tuple[str, ...], debug: bool, sinks: str = "off"
) -> dict[str, Any]:
    """One config, in a subprocess of ``edgedepth run`` in file mode for ``frames`` frames,
    with its sinks off or writing into a temporary folder (see :func:`sink_overrides`)."""
    with tempfile.TemporaryDirectory() as scratch:
        stats_file = Path(scratch) / "stats.json"
        all_overrides = [*overrides, *sink_overrides(config, overrides, sinks, Path(scratch))]
        command = [
            sys.executable, "-m", "edgedepth", "run", "--config", str(config),
            "--set", "runtime.mode=file", "--set", f"runtime.max_frames={frames}",
            "--set", "runtime.progress=false", "--set", "runtime.summary=false",
            "--stats-json", str(stats_file),
            *(item for override in all_overrides for item in ("--set", override)),
            *(["--debug"] if debug else []),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not stats_file.exists():
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            reason = errors[-1] if errors else done.stderr.strip()[-500:]
            raise EdgedepthError(f"bench {config}: the run failed: {reason}")
        return json.loads(stats_file.read_text())


def format_comparison(results: dict[str, dict[str, Any]]) -> str:
    """Rows: stages and totals; columns: configs."""
    names = list(results)
    stages: list[str] = []
    for stats in results.values():
        stages += [stage for stage in stats["stages"] if stage not in stages]

    def cell(stats: dict[str, Any], stage: str) -> str:
        s = stats["stages"].get(stage)
        if not s or not s["count"]:
            return "-"
        return f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['max_ms']:.1f}"

    rows = [["p50 / p95 / max ms", *names]]
    rows += [[stage, *(cell(results[n], stage) for n in names)] for stage in stages]
    rows.append(
        [
            "end-to-end latency",
            *(
                f"{results[n]['latency']['p50_ms']:.1f} / {results[n]['latency']['p95_ms']:.1f} / "
                f"{results[n]['latency']['max_ms']:.1f}"
                for n in names
            ),
        ]
    )
    rows.append(
        [
            "FPS (steady)",
            *(f"{results[n]['fps']:.2f} ({results[n]['steady_fps']:.2f})" for n in names),
        ]
    )
    rows.append(
        [
            "frames in / out / dropped",
            *(f"{r['frames_in']} / {r['frames_out']} / {r['dropped']}" for r in results.values()),
        ]
    )
    rows.append(["peak RSS MB", *(str(results[n].get("peak_rss_mb")) for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_histograms(results: dict[str, dict[str, Any]], path: Path) -> None:
    """One row per stage, one column per config: a latency histogram (ms) with p50 marked.
    Drawn with Pillow (no matplotlib on Windows on Arm needed)."""
    from PIL import Image, ImageDraw

    names = list(results)
    stages: list[str] = []
    for stats in results.values():
        stages += [stage for stage in stats.get("samples_ms", {}) if stage not in stages]
    panel_w, panel_h, label_w, bins = 360, 90, 150, 30
    image = Image.new("RGB", (label_w + panel_w * len(names), 24 + panel_h * len(stages)), "white")
    draw = ImageDraw.Draw(image)
    for column, name in enumerate(names):
        draw.text((label_w + column * panel_w + 4, 4), name, fill="black")
    for row, stage in enumerate(stages):
        top = 24 + row * panel_h
        draw.text((4, top + panel_h // 2 - 6), stage, fill="black")
        for column, name in enumerate(names):
            samples = np.asarray(results[name].get("samples_ms", {}).get(stage, []), float)
            left = label_w + column * panel_w
            draw.rectangle(
                [left + 2, top + 2, left + panel_w - 4, top + panel_h - 4], outline="gray"
            )
            if samples.size == 0:
                continue
            counts, edges = np.histogram(samples, bins=bins)
            scale = (panel_h - 26) / max(int(counts.max()), 1)
            bar_w = (panel_w - 12) / bins
            for index, count in enumerate(counts):
                x0 = left + 6 + index * bar_w
                draw.rectangle(
                    [x0, top + panel_h - 18 - count * scale, x0 + bar_w - 1, top + panel_h - 18],
                    fill=(70, 110, 200),
                )
            p50 = float(np.median(samples))
            x = left + 6 + (p50 - edges[0]) / max(edges[-1] - edges[0], 1e-9) * (panel_w - 12)
            draw.line([x, top + 4, x, top + panel_h - 18], fill=(220, 60, 40), width=2)
            draw.text(
                (left + 6, top + panel_h - 16),
                f"{edges[0]:.1f} to {edges[-1]:.1f} ms, p50 {p50:.1f}",
                fill="black",
            )
    image.save(path)


@click.command()
@click.option(
    "--config", "-c", "configs", multiple=True, required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A pipeline config (repeat to compare several side by side).",
)  # fmt: skip
@click.option("--frames", default=100, show_default=True, help="Frames per config.")
@click.option(
    "--sinks",
    type=click.Choice(["off", "temp"]),
    default="off",
    show_default=True,
    help="The configs' sinks: off, or run with their files redirected to a temporary folder "
    "(the configs' own recordings are never touched).",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Draw per-stage latency histograms into this PNG.",
)
@existing_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@set_option
@debug_option
def bench(
    configs: tuple[Path, ...],
    frames: int,
    sinks: str,
    plot: Path | None,
    existing: str,
    as_json: bool,
    overrides: tuple[str, ...],
    debug: bool,
) -> None:
    """Per-stage latency (p50/p95/max), FPS, end-to-end latency, drops and peak memory of configs
    on their file source."""
    with user_errors(debug):
        if plot is not None:
            plot = claim_option_output(plot, existing, "--plot")  # before the work, not after
        results: dict[str, dict[str, Any]] = {}
        for config in configs:
            label = config.stem if config.stem not in results else str(config)
            click.echo(f"bench: {config} ({frames} frames, sinks {sinks})…", err=True)
            results[label] = bench_config(config, frames, overrides, debug, sinks)
        if plot is not None:
            plot_histograms(results, plot)
        if as_json:
            for stats in results.values():
                stats.pop("samples_ms", None)
            click.echo(json.dumps(results, indent=2))
        else:
            click.echo(format_comparison(results))


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(bench)

"""Reporting of a demo: the printed table, the JSON file and the PNG plot."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from demo.language_model.train import EpochRecord, RunResult

LABELS = {"sampled": "sampled softmax", "full": "full softmax", "adaptive": "adaptive softmax"}
#: The run the others are compared with.
BASELINE = "full"


def speedup(run: RunResult, full: RunResult) -> float:
    """How many times faster ``run`` trains per epoch than ``full`` (mean epoch times).

    Args:
        run: A sampled- or adaptive-softmax run.
        full: The full-softmax run.

    Returns:
        ``full.mean_epoch_seconds / run.mean_epoch_seconds``.
    """
    return full.mean_epoch_seconds / run.mean_epoch_seconds


def perplexity_ratio(run: RunResult, full: RunResult) -> float:
    """``run``'s test perplexity over the full-softmax one (1.0 = equal)."""
    return run.test_perplexity / full.test_perplexity


def _baseline(runs: list[RunResult]) -> RunResult | None:
    return next((run for run in runs if run.head == BASELINE), None)


def format_table(runs: list[RunResult]) -> str:
    """The comparison table printed at the end of the demo.

    Args:
        runs: The runs, one per head, in the order to print.

    Returns:
        A multi-line plain-text table; the last two columns (speedup per epoch
        and test perplexity over the full softmax's) need a full-softmax run.
    """
    header = (
        f"{'':<22}{'tokens/s':>10}{'s/epoch':>10}{'valid ppl':>11}{'test ppl':>10}"
        f"{'speedup':>9}{'test/full':>11}"
    )
    full = _baseline(runs)
    lines = [header, "-" * len(header)]
    for run in runs:
        compared = ""
        if full is not None:
            compared = f"{speedup(run, full):>8.2f}x{perplexity_ratio(run, full):>11.3f}"
        lines.append(
            f"{LABELS[run.head]:<22}{run.tokens_per_second:>10,.0f}{run.mean_epoch_seconds:>10.1f}"
            f"{run.valid_perplexity:>11.1f}{run.test_perplexity:>10.1f}{compared}"
        )
    lines.append("-" * len(header))
    if full is not None:
        lines.append("(speedup per epoch and test perplexity relative to the full softmax)")
    lines.append("(perplexities: exact, over the whole vocabulary, every model)")
    return "\n".join(lines)


def summary(runs: list[RunResult], settings: dict) -> dict:
    """The JSON document of a demo run.

    Args:
        runs: The runs, one per head.
        settings: The demo's settings (corpus, sizes, epochs, ...).

    Returns:
        A JSON-serialisable dictionary with ``settings``, ``runs`` (per head),
        ``complete`` (True) and, when a full-softmax run is among them,
        ``comparison``: per other head, its ``speedup_per_epoch`` and its
        test and valid perplexity ratios to the full softmax.
    """
    document = {"settings": settings, "runs": {r.head: r.to_dict() for r in runs}, "complete": True}
    full = _baseline(runs)
    if full is not None:
        document["comparison"] = {
            run.head: {
                "speedup_per_epoch": speedup(run, full),
                "test_perplexity_ratio": perplexity_ratio(run, full),
                "valid_perplexity_ratio": run.valid_perplexity / full.valid_perplexity,
            }
            for run in runs
            if run is not full
        }
    return document


def write_json(path: str | os.PathLike, document: dict) -> pathlib.Path:
    """Writes ``document`` as indented JSON and returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def plot(path: str | os.PathLike, runs: list[RunResult], title: str) -> pathlib.Path:
    """Plots exact validation perplexity against training wall time, one line per run.

    Args:
        path: Where to write the PNG.
        runs: The runs to draw.
        title: Plot title.

    Returns:
        The path written.
    """
    import matplotlib  # noqa: PLC0415 - optional dependency of the demo

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for run in runs:
        times = [0.0] + [e.cumulative_train_seconds for e in run.epochs]
        ppls = [run.initial_valid_perplexity] + [e.valid_perplexity for e in run.epochs]
        ax.plot(
            times, ppls, marker="o", label=f"{LABELS[run.head]} (test {run.test_perplexity:.1f})"
        )
    ax.set_xlabel("training wall-clock time (s)")
    ax.set_ylabel("exact validation perplexity (whole vocabulary)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def run_from_dict(run: dict) -> RunResult:
    """Rebuilds a :class:`RunResult` from its ``results.json`` entry (``RunResult.to_dict``).

    Args:
        run: One entry of a results document's ``runs``.

    Returns:
        The run, with its epoch records.
    """
    fields = {f.name for f in dataclasses.fields(RunResult)}
    epoch_fields = {f.name for f in dataclasses.fields(EpochRecord)}
    values = {k: v for k, v in run.items() if k in fields}
    values["epochs"] = [
        EpochRecord(**{k: v for k, v in e.items() if k in epoch_fields}) for e in run["epochs"]
    ]
    return RunResult(**values)


def truncate(run: RunResult, epochs: int) -> RunResult:
    """The run as it stood after ``epochs`` epochs (needs per-epoch test perplexities).

    Args:
        run: A run whose epochs carry ``test_perplexity`` (``--test-every-epoch``).
        epochs: Number of leading epochs to keep, at most ``len(run.epochs)``.

    Returns:
        A copy whose final valid/test perplexities are those of epoch ``epochs``.
    """
    kept = run.epochs[:epochs]
    return dataclasses.replace(
        run,
        epochs=kept,
        valid_perplexity=kept[-1].valid_perplexity,
        test_perplexity=kept[-1].test_perplexity,
    )


def format_epochs(runs: list[RunResult]) -> str:
    """Per-epoch exact perplexities and epoch times of the runs, side by side.

    Args:
        runs: The runs, one per head.

    Returns:
        A plain-text table with one line per epoch that any run completed.
    """
    widths = [max(12, len(run.head) + 7) for run in runs]
    header = f"{'epoch':>5}{'lr':>8}" + "".join(
        f"{run.head + ' valid':>{w}}{'test':>8}{'s':>7}"
        for run, w in zip(runs, widths, strict=True)
    )
    lines = [header, "-" * len(header)]
    for i in range(max(len(run.epochs) for run in runs)):
        rate = next(run.epochs[i] for run in runs if i < len(run.epochs)).learning_rate
        cells = []
        for run, width in zip(runs, widths, strict=True):
            if i >= len(run.epochs):
                cells.append(" " * (width + 15))
                continue
            e = run.epochs[i]
            cells.append(
                f"{e.valid_perplexity:>{width}.1f}{e.test_perplexity:>8.1f}{e.train_seconds:>7.0f}"
            )
        lines.append(f"{i + 1:>5}{rate:>8.3g}" + "".join(cells))
    return "\n".join(lines)

"""Reporting of a demo: the printed table, the JSON file and the PNG plot."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from demo.language_model.train import EpochRecord, RunResult

LABELS = {"sampled": "sampled softmax", "full": "full softmax"}


def speedup(sampled: RunResult, full: RunResult) -> float:
    """How many times faster the sampled run trains per epoch (mean epoch times).

    Args:
        sampled: The sampled-softmax run.
        full: The full-softmax run.

    Returns:
        ``full.mean_epoch_seconds / sampled.mean_epoch_seconds``.
    """
    return full.mean_epoch_seconds / sampled.mean_epoch_seconds


def perplexity_ratio(sampled: RunResult, full: RunResult) -> float:
    """Sampled test perplexity over full-softmax test perplexity (1.0 = equal)."""
    return sampled.test_perplexity / full.test_perplexity


def format_table(sampled: RunResult | None, full: RunResult | None) -> str:
    """The comparison table printed at the end of the demo.

    Args:
        sampled: The sampled-softmax run, or None if it was not run.
        full: The full-softmax run, or None if it was not run.

    Returns:
        A multi-line plain-text table (the comparison line needs both runs).
    """
    header = f"{'':<22}{'tokens/s':>10}{'s/epoch':>10}{'valid ppl':>11}{'test ppl':>10}"
    lines = [header, "-" * len(header)]
    for run in (r for r in (sampled, full) if r is not None):
        lines.append(
            f"{LABELS[run.head]:<22}{run.tokens_per_second:>10,.0f}{run.mean_epoch_seconds:>10.1f}"
            f"{run.valid_perplexity:>11.1f}{run.test_perplexity:>10.1f}"
        )
    lines.append("-" * len(header))
    if sampled is not None and full is not None:
        lines.append(
            f"speedup per epoch: {speedup(sampled, full):.2f}x   "
            f"test perplexity sampled/full: {perplexity_ratio(sampled, full):.3f}"
        )
    lines.append("(perplexities: exact full softmax over the whole vocabulary, both models)")
    return "\n".join(lines)


def summary(sampled: RunResult | None, full: RunResult | None, settings: dict) -> dict:
    """The JSON document of a demo run.

    Args:
        sampled: The sampled-softmax run, or None if it was not run.
        full: The full-softmax run, or None if it was not run.
        settings: The demo's settings (corpus, sizes, epochs, ...).

    Returns:
        A JSON-serialisable dictionary with ``settings``, ``runs`` (per head),
        ``complete`` (True) and, when both runs are given, ``comparison``
        (speedup and perplexity ratios).
    """
    runs = {r.head: r.to_dict() for r in (sampled, full) if r is not None}
    document = {"settings": settings, "runs": runs, "complete": True}
    if sampled is not None and full is not None:
        document["comparison"] = {
            "speedup_per_epoch": speedup(sampled, full),
            "test_perplexity_ratio": perplexity_ratio(sampled, full),
            "valid_perplexity_ratio": sampled.valid_perplexity / full.valid_perplexity,
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
    ax.set_ylabel("validation perplexity (exact softmax)")
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


def format_epochs(sampled: RunResult, full: RunResult) -> str:
    """Per-epoch exact perplexities and epoch times of both runs, side by side.

    Args:
        sampled: The sampled-softmax run.
        full: The full-softmax run.

    Returns:
        A plain-text table with one line per epoch that either run completed.
    """
    header = (
        f"{'epoch':>5}{'lr':>8}{'sampled valid':>15}{'test':>8}{'s':>7}"
        f"{'full valid':>12}{'test':>8}{'s':>7}"
    )
    lines = [header, "-" * len(header)]

    def cells(run: RunResult, i: int) -> str:
        if i >= len(run.epochs):
            return f"{'':>{15 if run is sampled else 12}}{'':>8}{'':>7}"
        e = run.epochs[i]
        width = 15 if run is sampled else 12
        return f"{e.valid_perplexity:>{width}.1f}{e.test_perplexity:>8.1f}{e.train_seconds:>7.0f}"

    for i in range(max(len(sampled.epochs), len(full.epochs))):
        rate = (sampled.epochs[i] if i < len(sampled.epochs) else full.epochs[i]).learning_rate
        lines.append(f"{i + 1:>5}{rate:>8.3g}{cells(sampled, i)}{cells(full, i)}")
    return "\n".join(lines)

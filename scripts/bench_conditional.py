"""Benchmarks of issue 7: conditional control, GRU vs Transformer, likelihood scoring as an anomaly detector.

Reproduce (one thread, on a CPU; each step appends its results to the JSON):

    python scripts/bench_conditional.py train-cond --cpu-minutes 3
    python scripts/bench_conditional.py train-arch --cpu-minutes 3
    python scripts/bench_conditional.py eval-cond
    python scripts/bench_conditional.py eval-arch
    python scripts/bench_conditional.py score

Training budgets are CPU seconds of the (single-threaded) training process,
not wall-clock: the benchmark machine is shared, and wall-clock there says
more about the neighbours than about the model. The script swaps the
Trainer's clock for ``time.process_time`` to do that; nothing else changes.

* ``train-cond``: a conditional GRU on logP, QED and SA, warm-started from
  the shipped default model (its condition weights start at zero) and
  fine-tuned on 20,000 embedded MOSES training molecules.
* ``train-arch``: a GRU (the default model's sizes) and a Transformer
  (``TRANSFORMER_DEFAULTS``) trained from scratch on the same 50,000 embedded
  molecules with the same optimiser, KL schedule and CPU budget.
* ``eval-cond``: for a grid of requests, MAE and within-tolerance fraction of
  the conditional model vs the unconditional default model with rejection
  sampling at the same number of decodes.
* ``eval-arch``: reconstruction, validity, uniqueness, novelty, FCD and
  speeds of the two architectures.
* ``score``: AUROC of the default model's likelihood between held-out MOSES
  test molecules and out-of-distribution sets drawn from ZINC-250k.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import time
import types
from pathlib import Path

import numpy as np
import torch

from molgen.generate import Steering
from molgen.generate.prior import uses_fitted_prior

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "issue7"
OUT_JSON = ROOT / "docs" / "conditional_benchmarks.json"
TOLERANCE = {"logp": 0.5, "qed": 0.05, "sa": 0.5}
COND = ["logp", "qed", "sa"]


def _record(key: str, value) -> None:
    data = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    data[key] = value
    data["machine"] = f"{platform.processor() or platform.machine()}, 2 shared cores, torch threads 1, load {_load()}"
    OUT_JSON.write_text(json.dumps(data, indent=2) + "\n")


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _cpu_clock() -> None:
    import molgen.train.trainer as trainer

    trainer.time = types.SimpleNamespace(monotonic=time.process_time, process_time=time.process_time)  # type: ignore[attr-defined]


def _train(name: str, smiles: list[str], minutes: float, **kw) -> dict:
    from molgen.vae.training import VAETrainingConfig, train_vae

    _cpu_clock()
    config = VAETrainingConfig(
        train=dict(epochs=1000, batch_size=128, lr=1e-3, seed=0, max_minutes=minutes, patience=0, checkpoint_every=200),
        word_dropout=0.1,
        val_fraction=0.05,
        max_length=100,
        **kw,
    )
    start = time.process_time()
    vae, result = train_vae(smiles, RUNS / name, config, device="cpu", show_progress=False)
    history = [json.loads(line) for line in (RUNS / name / "metrics.jsonl").read_text().splitlines()]
    return {
        "parameters": vae.model.num_parameters(),
        "steps": result.steps,
        "epochs": result.epochs_run,
        "cpu_seconds_training": round(result.seconds, 1),
        "cpu_seconds_total": round(time.process_time() - start, 1),
        "steps_per_cpu_second": round(result.steps / max(result.seconds, 1e-9), 3),
        "last_epoch": history[-1],
        "best_val_loss": result.best_val_loss,
    }


def train_cond(args) -> None:
    from molgen.datasets import default_training_smiles
    from molgen.vae import DEFAULT_MODEL

    smiles = default_training_smiles()[-args.molecules :]
    from molgen.vae.training import VAETrainingConfig, train_vae

    _cpu_clock()
    config = VAETrainingConfig(
        representation="selfies",
        model=dict(embed_dim=64, encoder_hidden=128, decoder_hidden=256, decoder_layers=2, latent_dim=128),
        kl=dict(kind="constant", beta=args.beta),
        conditions=COND,
        condition_dropout=args.condition_dropout,
        latent_dropout=args.latent_dropout,
        train=dict(epochs=1000, batch_size=128, lr=args.lr, seed=0, max_minutes=args.cpu_minutes, patience=0, checkpoint_every=200),
        word_dropout=0.1,
        val_fraction=0.05,
        max_length=100,
    )
    start = time.process_time()
    _, result = train_vae(smiles, RUNS / args.name, config, device="cpu", show_progress=False, init_from=DEFAULT_MODEL)
    history = [json.loads(line) for line in (RUNS / args.name / "metrics.jsonl").read_text().splitlines()]
    _record(
        f"train_{args.name}",
        {
            "beta": args.beta,
            "lr": args.lr,
            "condition_dropout": args.condition_dropout,
            "latent_dropout": args.latent_dropout,
            "data": f"last {len(smiles):,} of the embedded 50k MOSES training molecules",
            "init_from": "data/default_model.safetensors",
            "cpu_minutes_budget": args.cpu_minutes,
            "steps": result.steps,
            "cpu_seconds_training": round(result.seconds, 1),
            "cpu_seconds_total": round(time.process_time() - start, 1),
            "last_epoch": history[-1],
        },
    )


def export_last(args) -> None:
    """Write the weights of a run's last resumable checkpoint as a model (``RUNS/<name>_last``).

    ``train_vae`` exports the epoch with the best validation ELBO; at beta 1
    that is the first epoch (the ELBO rises while the KL shrinks), whose
    decoder leans least on the conditions, so the conditional rows use the
    latest weights instead.
    """
    import shutil

    from molgen.utils.checkpoint import load_checkpoint, save_checkpoint

    run = RUNS / args.name
    tensors, state = load_checkpoint(run / "last.safetensors")
    _, meta = load_checkpoint(run / "model.safetensors")
    meta = {k: v for k, v in meta.items() if k not in ("history", "best_epoch", "path")}
    meta["exported_from"] = f"{args.name}/last.safetensors at step {state['global_step']} (epoch {state['epoch']}), not the best-validation epoch"
    out = RUNS / f"{args.name}_last"
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.safetensors", {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, meta)
    shutil.copy(run / "train.smi", out / "train.smi")
    print(meta["exported_from"])


def fit_steer(args) -> None:
    """Prefix property predictors for steering the default model's tokens (molgen.generate.steering).

    Without ``--on-policy`` or ``--data``: fitted on the 50k embedded
    training molecules. With ``--on-policy N``: ``--init`` continued on N
    samples of the default model plus the first N training molecules, so it
    also judges the chemistry the decoder actually writes. With ``--data``
    (an ``onpolicy-data`` file): trained on its labelled samples, all but
    the last ``--holdout`` of each kind, plus ``--train-mix`` training
    molecules, continuing ``--init`` or from scratch (``--init none``, sized
    by ``--hidden``/``--layers``); quality is also reported on the held-out
    samples of each kind.
    """
    from molgen.datasets import default_test_smiles, default_training_smiles
    from molgen.generate.steering import load_prefix_predictor
    from molgen.generate.steering_fit import fit_prefix_predictor

    vae = _load_model(args.name)
    init = None if args.init == "none" else load_prefix_predictor(args.init)
    start = time.process_time()
    held: dict[str, tuple[list[str], np.ndarray]] = {}
    if args.data:
        files = [np.load(path) for path in args.data.split(",")]
        smiles = [str(s) for f in files for s in f["smiles"]]
        props = np.concatenate([f["props"] for f in files])
        kinds = np.concatenate([[f"{k}{i or ''}" for k in f["kind"]] for i, f in enumerate(files)])  # each file's kinds held out apart
        train_idx = []
        for kind in np.unique(kinds):
            idx = np.flatnonzero(kinds == kind)
            cut = len(idx) - args.holdout
            train_idx += idx[:cut].tolist()
            held[str(kind)] = ([smiles[i] for i in idx[cut:]], props[idx[cut:]])
        mix = default_training_smiles()[: args.train_mix]
        fit_smiles = [smiles[i] for i in train_idx] + mix
        fit_props = np.concatenate([props[train_idx], _props(mix)]) if mix else props[train_idx]
        names = init.config.names if init is not None else COND
        cols = [COND.index(n) for n in names]
        start = time.process_time()
        predictor = fit_prefix_predictor(
            vae, fit_smiles, names, epochs=args.epochs, seed=1, init=init, hidden=args.hidden, layers=args.layers, properties=fit_props[:, cols]
        )
    elif args.on_policy:
        samples = [s for s in vae.sample(args.on_policy, seed=11, n_jobs=1) if s]
        smiles = samples + default_training_smiles()[: args.on_policy]
        predictor = fit_prefix_predictor(vae, smiles, epochs=args.epochs, seed=1, init=init)
    else:
        predictor = fit_prefix_predictor(vae, default_training_smiles(), epochs=args.epochs, hidden=args.hidden, layers=args.layers)
    seconds = time.process_time() - start
    predictor.save(args.out)
    test = default_test_smiles()[:2000]
    quality = {"test": _final_prefix_quality(vae, predictor, test, _props(test))}
    for kind, (mols, raw) in held.items():
        quality[f"held_out_{kind}"] = _final_prefix_quality(vae, predictor, mols, raw)
    _record(
        f"fit_steer_{Path(args.out).stem}",
        {"model": args.name, "data": args.data, "train_mix": args.train_mix, "on_policy": args.on_policy, "init": args.init,
         "config": predictor.config.to_dict(), "epochs": args.epochs, "cpu_seconds": round(seconds, 1), "final_prefix_quality": quality},
    )  # fmt: skip
    print(json.dumps(quality))


def steer_quality(args) -> None:
    """How well predictors read whole molecules: MAE and R² on the held-out samples of an onpolicy-data file."""
    from molgen.generate.steering import load_prefix_predictor

    vae = _load_model(args.name)
    data = np.load(args.data)
    smiles, props, kinds = [str(s) for s in data["smiles"]], data["props"], data["kind"]
    out = {}
    for path in args.steer.split(","):
        predictor = load_prefix_predictor(path)
        quality = {}
        for kind in np.unique(kinds):
            idx = np.flatnonzero(kinds == kind)[-args.holdout :]
            quality[f"held_out_{kind}"] = _final_prefix_quality(vae, predictor, [smiles[i] for i in idx], props[idx])
        out[Path(path).stem] = quality
        print(Path(path).stem, json.dumps(quality), flush=True)
    _record(f"steer_quality_{Path(args.data).stem}", {"holdout": args.holdout, "predictors": out})


def _final_prefix_quality(vae, predictor, smiles: list[str], raw: np.ndarray) -> dict:
    """MAE and R² of the predictor's reading of whole molecules (its last prefix), per property."""
    raw = raw[:, [COND.index(n) for n in predictor.config.names]]
    ids, lengths, kept = vae.tokenize(smiles)
    with torch.no_grad():
        mean, _ = predictor(ids)
    pred = mean[torch.arange(len(kept)), lengths - 1].numpy() * np.array(predictor.spec.std) + np.array(predictor.spec.mean)
    out = {"n": int(len(kept))}
    for j, name in enumerate(predictor.config.names):
        ok = np.isfinite(raw[kept, j])
        err = pred[ok, j] - raw[kept, j][ok]
        out[name] = {"mae": round(float(np.abs(err).mean()), 4), "r2": round(float(1 - err.var() / raw[kept, j][ok].var()), 4)}
    return out


def _load_model(name: str):
    from molgen.vae import MoleculeVAE

    return MoleculeVAE.load(device="cpu") if name == "default" else MoleculeVAE.load(RUNS / name, device="cpu")


def onpolicy_data(args) -> None:
    """Label samples of a model with RDKit, for fitting steering predictors on the chemistry it writes.

    ``--plain N`` samples decoded without steering (conditional models:
    conditions drawn from the training mix) and ``--steered M`` samples
    steered by ``--init`` at ``--steer-strength`` towards random requests:
    a training molecule's properties, with one property in half of the rows
    replaced by a uniform draw between the 2nd and 98th training percentile
    (so the tails the request grid reaches are covered), each property
    requested with probability 2/3 (``molgen.generate.steering.steered_samples``).
    This is the on-policy round of DAgger (Ross et al. 2011): the predictor
    learns on the states steering visits. Nothing here sees the evaluation
    requests.
    """
    from molgen.generate.steering import load_prefix_predictor, steered_samples

    vae = _load_model(args.name)
    predictor = load_prefix_predictor(args.init)
    start = time.process_time()
    smiles = [s or "" for s in vae.sample(args.plain, seed=args.seed, n_jobs=1)] if args.plain else []
    steered = steered_samples(vae, predictor, args.steered, args.steer_strength, seed=args.seed, temperature=args.temperature) if args.steered else []
    kind = ["plain"] * len(smiles) + ["steered"] * len(steered)
    smiles += [s or "" for s in steered]
    decode_seconds = time.process_time() - start
    props = _props(smiles)
    out = Path(args.out).resolve() if args.out else RUNS / f"onpolicy_{args.name}.npz"
    np.savez_compressed(out, smiles=np.array(smiles), props=props, kind=np.array(kind))
    _record(
        out.stem,
        {"plain": args.plain, "steered": args.steered, "init": Path(args.init).name, "steer_strength": args.steer_strength, "temperature": args.temperature,
         "valid": float(np.isfinite(props).all(1).mean()), "cpu_seconds": round(time.process_time() - start, 1),
         "decode_cpu_seconds": round(decode_seconds, 1), "file": str(out.relative_to(ROOT))},
    )  # fmt: skip
    print(out, len(smiles), round(time.process_time() - start, 1))


def latent_probe(args) -> None:
    """Can a latent property predictor pick prior latents for a request? R² of an MLP ensemble on z.

    Decodes the same ``--n`` prior latents of the default model greedily and
    at several temperatures, labels the molecules with RDKit and fits a
    :class:`~molgen.models.predictor.LatentPredictor` (held-out 10%) from z
    to their properties: the on-policy predictor latent selection would
    rank candidates with. Also the spread of the properties per temperature.
    """
    from molgen.generate.decoding import DecodeOptions
    from molgen.optimize.predictor import PredictorTrainingConfig, fit_predictor

    vae = _load_model(args.name)
    z = torch.randn(args.n, vae.config.latent_dim, generator=torch.Generator().manual_seed(5)).numpy()
    results = {}
    for t in args.temperatures.split(","):
        opts = DecodeOptions(strategy="greedy") if t == "greedy" else DecodeOptions(temperature=float(t))
        t0 = time.process_time()
        smiles = vae.decode(z, opts, seed=3, n_jobs=1)
        raw = _props(smiles)
        ok = np.isfinite(raw).all(1)
        fitted = fit_predictor(z[ok], raw[ok], COND, PredictorTrainingConfig(epochs=60, patience=8))
        results[t] = {
            "valid": float(ok.mean()),
            "unique": len({s for s in smiles if s}) / max(1, int(ok.sum())),
            "mean": raw[ok].mean(0).round(3).tolist(),
            "std": raw[ok].std(0).round(3).tolist(),
            "qed_quantiles_5_25_50_75_95": np.quantile(raw[ok, 1], [0.05, 0.25, 0.5, 0.75, 0.95]).round(3).tolist(),
            "held_out_r2": {k: round(v, 3) for k, v in fitted.report.r2.items()},
            "cpu_seconds": round(time.process_time() - t0, 1),
        }
        print(t, results[t], flush=True)
    _record(f"latent_probe_{args.name}", {"n": args.n, "predictor": "LatentPredictor defaults (5 x MLP 256 x 2), 60 epochs, patience 8", "by_temperature": results})


def train_arch(args) -> None:
    from molgen.datasets import default_training_smiles
    from molgen.vae.training import model_options

    smiles = default_training_smiles()
    common = dict(representation="selfies", kl=dict(kind="linear", beta=0.5, warmup_steps=300))
    results = {}
    for name, model in (
        ("gru", model_options("gru", embed_dim=64, encoder_hidden=128, decoder_hidden=256, decoder_layers=2, latent_dim=128)),
        ("transformer", model_options("transformer", latent_dim=128)),
    ):
        if args.only and name != args.only:
            continue
        results[name] = dict(_train(name, smiles, args.cpu_minutes, model=model, **common), model=model)
        print(name, results[name], flush=True)
    data = json.loads(OUT_JSON.read_text()).get("train_arch", {}) if OUT_JSON.exists() else {}
    data.update(results)
    data["budget"] = f"{args.cpu_minutes} CPU-minutes each, embedded 50k MOSES training molecules, batch 128, AdamW 1e-3, beta 0.5 after a 300-step ramp"
    _record("train_arch", data)


def _props(smiles: list[str | None]) -> np.ndarray:
    from molgen.vae.conditioning import property_matrix

    return property_matrix([s or "" for s in smiles], COND, n_jobs=1)


def _settings(args) -> list[tuple[float, float, float]]:
    """(guidance, temperature, steering strength) triples to evaluate: every combination of the comma lists."""
    lists = [str(v).split(",") for v in (args.guidance, args.temperature, args.steer_strength)]
    return [(float(w), float(t), float(s)) for w in lists[0] for t in lists[1] for s in lists[2]]


def _eval_key(name: str, guidance: float, temperature: float, strength: float, steer: str | None) -> str:
    # The plain setting keeps the historical key, so earlier runs stay comparable.
    suffix = "" if (guidance, temperature) == (1.0, 1.0) else f"_w{guidance:g}_t{temperature:g}"
    prefix = f"eval_{name}" if name.startswith("cond") else f"eval_cond_{name}"
    # steer_e8 keeps its short key; other predictors are named in theirs.
    label = "" if steer is None or Path(steer).stem == "steer_e8" else f"_{Path(steer).stem}"
    return prefix + suffix + (f"_s{strength:g}{label}" if steer else "")


def eval_cond(args) -> None:
    from molgen.datasets import default_test_smiles
    from molgen.utils.shards import file_digest
    from molgen.vae import DEFAULT_MODEL, MoleculeVAE

    base = MoleculeVAE.load(device="cpu")
    # "default": the shipped unconditional model, whose requests only a steering predictor reads.
    cond = base if args.name == "default" else MoleculeVAE.load(RUNS / args.name, device="cpu")
    steer = None
    if args.steer:
        from molgen.generate.steering import load_prefix_predictor

        steer = load_prefix_predictor(args.steer)
    spec = steer.spec if steer is not None else cond.conditions
    requests = [f"logp={v}" for v in (1.0, 2.0, 3.0, 4.0)]
    requests += [f"qed={v}" for v in (0.6, 0.7, 0.8, 0.9)]
    requests += [f"sa={v}" for v in (2.0, 2.5, 3.0, 3.5)]
    test = default_test_smiles()
    rng = np.random.default_rng(0)
    picks = [test[i] for i in rng.permutation(len(test))[: args.joint]]
    for row in _props(picks):
        requests.append(f"logp={row[0]:.2f},qed={row[1]:.2f},sa={row[2]:.2f}")
    n = args.n
    t0 = time.process_time()
    pool = base.sample(n * len(requests), seed=1, n_jobs=1)
    base_seconds = time.process_time() - t0
    pool_props = _props(pool)
    for guidance, temperature, strength in _settings(args):
        rows, cond_seconds = [], 0.0
        for r, text in enumerate(requests):
            want = spec.parse(text)
            t0 = time.process_time()
            got = cond.sample(
                n, temperature=temperature, seed=args.seed + r, n_jobs=1, condition=text, guidance=guidance,
                steering=Steering(steer, strength, args.candidates) if steer is not None else Steering(),
            )
            cond_seconds += time.process_time() - t0
            props = _props(got)
            uncond = pool_props[r * n : (r + 1) * n]
            row = {"request": text, "n": n}
            for label, values, mols in (("cond", props, got), ("uncond", uncond, pool[r * n : (r + 1) * n])):
                valid = np.isfinite(values).all(1)
                hit = valid.copy()
                for name, value in want.items():
                    j = COND.index(name)
                    err = np.abs(values[valid, j] - value)
                    row[f"{label}_mae_{name}"] = float(err.mean()) if valid.any() else None
                    hit[valid] &= err <= TOLERANCE[name]
                row[f"{label}_valid"] = float(valid.mean())
                row[f"{label}_unique"] = len({m for m in mols if m}) / max(1, int(valid.sum()))
                row[f"{label}_within_tol"] = float(hit.mean())
            rows.append(row)
            print(guidance, temperature, strength, row, flush=True)
        summary = {}
        for name in COND:
            for kind in ("single", "joint"):
                sel = [r for r in rows if name in spec.parse(r["request"]) and ((kind == "joint") == ("," in r["request"]))]
                if sel:
                    summary[f"{kind}_{name}"] = {
                        "requests": len(sel),
                        **{f"{label}_{m}": float(np.mean([r[f"{label}_{m}_{name}" if m == "mae" else f"{label}_{m}"] for r in sel]))
                           for label in ("cond", "uncond") for m in ("mae", "within_tol", "valid", "unique")},
                    }  # fmt: skip
        _record(
            _eval_key(args.name, guidance, temperature, strength, args.steer)
            + (f"_k{args.candidates}" if args.candidates > 1 else "")
            + (f"_seed{args.seed}" if args.seed != 100 else ""),
            {
                "model": args.name,
                "guidance": guidance,
                "temperature": temperature,
                "steer": args.steer,
                "steer_strength": strength if steer is not None else None,
                "steer_candidates": args.candidates,
                "seed": args.seed,
                "tolerance": TOLERANCE,
                "samples_per_request": n,
                "decode_cpu_seconds": {"cond": round(cond_seconds, 1), "uncond": round(base_seconds, 1)},
                "baseline_model_sha256": file_digest(DEFAULT_MODEL)[:16],
                "baseline_sampling": {"temperature": base.default_temperature, "prior": "fitted" if uses_fitted_prior(base) else "standard"},
                "rows": rows,
                "summary": summary,
            },
        )


def eval_arch(args) -> None:
    from molgen.datasets import default_test_smiles, default_training_smiles
    from molgen.metrics import compute_metrics
    from molgen.vae import MoleculeVAE

    train = default_training_smiles()
    test = default_test_smiles()[: args.recon]
    results = json.loads(OUT_JSON.read_text()).get("eval_arch", {}) if OUT_JSON.exists() else {}
    for name in ("gru", "transformer"):
        if args.only and name != args.only:
            continue
        vae = MoleculeVAE.load(RUNS / name, device="cpu")
        t0 = time.process_time()
        recon = vae.reconstruct(test)
        t1 = time.process_time()
        samples = vae.sample(args.n, seed=0, n_jobs=1)
        t2 = time.process_time()
        metrics = compute_metrics([s or "" for s in samples], "moses-test", train=train, n_jobs=1)
        results[name] = {
            "reconstruction": recon.accuracy,
            "n_reconstructed": len(recon.inputs),
            "recon_cpu_seconds": round(t1 - t0, 1),
            "samples": args.n,
            "sample_cpu_seconds": round(t2 - t1, 1),
            "samples_per_cpu_second": round(args.n / (t2 - t1), 1),
            "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        }
        print(name, results[name], flush=True)
    _record("eval_arch", results)


def _zinc_sets(per_set: int, seed: int) -> dict[str, list[str]]:
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    with gzip.open(ROOT / "data" / "zinc250k.smi.gz", "rt") as fh:
        lines = [line.split()[0] for line in fh if line.strip()]
    order = np.random.default_rng(seed).permutation(len(lines))
    allowed = {"C", "N", "O", "S", "F", "Cl", "Br", "H"}
    sets: dict[str, list[str]] = {"charged": [], "large_mw_gt_450": [], "small_mw_lt_200": [], "zinc_moses_like": []}
    for i in order:
        mol = Chem.MolFromSmiles(lines[i])
        if mol is None:
            continue
        charged = any(a.GetFormalCharge() for a in mol.GetAtoms())
        mw = Descriptors.MolWt(mol)
        # MOSES has no stereochemistry, so stereo tokens alone would make a molecule unspellable.
        smi = Chem.MolToSmiles(mol, isomericSmiles=False)
        if charged:
            key = "charged"
        elif mw > 450:
            key = "large_mw_gt_450"
        elif mw < 200:
            key = "small_mw_lt_200"
        elif 250 <= mw <= 350 and {a.GetSymbol() for a in mol.GetAtoms()} <= allowed:
            key = "zinc_moses_like"
        else:
            continue
        if len(sets[key]) < per_set:
            sets[key].append(smi)
        if all(len(v) >= per_set for v in sets.values()):
            break
    return sets


def score(args) -> None:
    from molgen.datasets import moses_split
    from molgen.vae import MoleculeVAE
    from molgen.vae.likelihood import auroc, score_molecules

    vae = MoleculeVAE.load(device="cpu")
    with gzip.open(moses_split("test"), "rt") as fh:
        test = [line.strip().split(",")[0] for line in fh][1:]
    inliers = [test[i] for i in np.random.default_rng(0).permutation(len(test))[: args.n_in]]
    t0 = time.process_time()
    scored_in = score_molecules(vae, inliers, samples=args.samples, seed=0)
    per_mol = (time.process_time() - t0) / len(inliers)
    sets = _zinc_sets(args.n_out, seed=0)
    result = {
        "samples": args.samples,
        "inliers": f"{len(inliers)} random MOSES test molecules (held out from the default model's training)",
        "cpu_seconds_per_molecule": round(per_mol, 4),
        "inlier_unscorable": float((scored_in["status"] != "ok").mean()),
        "sets": {},
    }
    for name, mols in sets.items():
        out = score_molecules(vae, mols, samples=args.samples, seed=1)
        ok = out["status"] == "ok"
        entry = {"n": len(mols), "unscorable": float((~ok).mean()), "statuses": out["status"].value_counts().to_dict()}
        for col in ("iw_ll", "iw_ll_per_token", "elbo"):
            entry[f"auroc_{col}"] = auroc(scored_in[col], out[col])
            entry[f"auroc_{col}_scorable_only"] = auroc(scored_in[col].dropna(), out[col][ok]) if ok.any() else None
            thr = np.nanquantile(scored_in[col], 0.05)
            entry[f"tpr_at_5pct_fpr_{col}"] = float((~(out[col] >= thr)).mean())
        result["sets"][name] = entry
        print(name, entry, flush=True)
    _record("score", result)


def _f(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _aggregate(rows: list[dict], label: str) -> dict:
    """MAE per property over single and joint requests, within-tolerance, validity and uniqueness of one setting."""
    single = [r for r in rows if "," not in r["request"]]
    joint = [r for r in rows if "," in r["request"]]
    out = {}
    for name in COND:
        for kind, sel in (("single", [r for r in single if r.get(f"{label}_mae_{name}") is not None]), ("joint", joint)):
            out[f"{kind}_{name}"] = float(np.mean([r[f"{label}_mae_{name}"] for r in sel])) if sel else None
    for kind, sel in (("single", single), ("joint", joint)):
        out[f"tol_{kind}"] = float(np.mean([r[f"{label}_within_tol"] for r in sel])) if sel else None
    out["valid"] = float(np.mean([r[f"{label}_valid"] for r in rows]))
    out["unique"] = float(np.mean([r[f"{label}_unique"] for r in rows])) if all(f"{label}_unique" in r for r in rows) else None
    return out


def _settings_table(data: dict, keys: list[str]) -> list[str]:
    ev0 = data[keys[0]]
    lines = [
        f"### Conditional control by setting ({ev0['samples_per_request']} samples per request: 12 single-property "
        "requests, 6 joint ones; tolerance " + ", ".join(f"{k} ±{v}" for k, v in ev0["tolerance"].items()) + ")",
        "",
        "| model | guidance w | steering | temperature | valid | unique | logP MAE single / joint | QED MAE single / joint "
        "| SA MAE single / joint | within tol. single | within tol. joint | decode CPU-s (1,800 mol) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name, w, steer, t, agg, seconds):
        maes = " | ".join(f"{_f(agg['single_' + p])} / {_f(agg['joint_' + p])}" for p in COND)
        return (
            f"| {name} | {w} | {steer} | {t} | {_f(agg['valid'])} | {_f(agg['unique'])} | {maes} | {_f(agg['tol_single'])} "
            f"| {_f(agg['tol_joint'])} | {seconds} |"
        )

    # One rejection row per baseline model: the default model changed between rounds of this benchmark.
    baselines: dict[str, str] = {}
    for key in keys:
        if "guidance" in data[key]:
            baselines.setdefault(data[key].get("baseline_model_sha256", ""), key)
    for sha, key in baselines.items():
        ev = data[key]
        label = f"default model `{sha[:8]}` + rejection (acceptance)" if sha else "default model (FCD/Test 5.74) + rejection (acceptance)"
        sampling = ev.get("baseline_sampling", {"temperature": 1.0, "prior": "standard"})
        if sampling["prior"] != "standard":
            label = label.replace(" + rejection", f", {sampling['prior']} prior, + rejection")
        lines.append(row(label, "-", "-", f"{sampling['temperature']:g}", _aggregate(ev["rows"], "uncond"), ev["decode_cpu_seconds"]["uncond"]))
    for key in keys:
        ev = data[key]
        name = ev.get("model", key[len("eval_"):])
        steer = "-" if ev.get("steer_strength") is None else f"{ev['steer_strength']:g} (`{Path(ev['steer']).stem}`)"
        if ev.get("steer_candidates", 1) > 1:
            steer += f", best of {ev['steer_candidates']}"
        if ev.get("seed", 100) != 100:
            steer += f" (seed {ev['seed']})"
        lines.append(
            row(f"`{name}`", f"{ev.get('guidance', 1.0):g}", steer, f"{ev.get('temperature', 1.0):g}", _aggregate(ev["rows"], "cond"), ev["decode_cpu_seconds"]["cond"])
        )
    return [*lines, ""]


def report(args) -> None:
    """Print the Markdown tables of docs/conditional_benchmarks.md from the JSON (the prose there is written by hand)."""
    data = json.loads(OUT_JSON.read_text())
    lines = ["<!-- tables generated by: python scripts/bench_conditional.py report -->", ""]
    evals = sorted(k for k in data if k.startswith("eval_cond"))
    if evals:
        lines += _settings_table(data, evals)
    for key in args.detail.split(",") if args.detail else []:
        ev, name = data[key], key[len("eval_"):]
        lines += [
            f"### Conditional control, `{name}` ({ev['samples_per_request']} samples per request; tolerance "
            + ", ".join(f"{k} ±{v}" for k, v in ev["tolerance"].items()) + ")",
            "",
            "| request | valid (cond) | MAE cond | MAE uncond | within tol. cond | within tol. uncond (= rejection acceptance) |",
            "|---|---|---|---|---|---|",
        ]
        for r in ev["rows"]:
            names = [k[len("cond_mae_"):] for k in r if k.startswith("cond_mae_")]
            mae_c = ", ".join(f"{n} {_f(r['cond_mae_' + n])}" for n in names)
            mae_u = ", ".join(f"{n} {_f(r['uncond_mae_' + n])}" for n in names)
            lines.append(f"| `{r['request']}` | {_f(r['cond_valid'])} | {mae_c} | {mae_u} | {_f(r['cond_within_tol'])} | {_f(r['uncond_within_tol'])} |")
        lines.append("")
    if "score" in data:
        sc = data["score"]
        lines += [
            f"### Likelihood as an anomaly score (default model, K={sc['samples']}; inliers: {sc['inliers']})",
            "",
            "| outlier set | n | not representable | AUROC iw_ll | AUROC iw_ll/token | AUROC ELBO | AUROC iw_ll, representable only | AUROC iw_ll/token, representable only | flagged at 5% FPR (iw_ll/token) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, e in sc["sets"].items():
            lines.append(
                f"| {name} | {e['n']} | {_f(e['unscorable'])} | {_f(e['auroc_iw_ll'])} | {_f(e['auroc_iw_ll_per_token'])} | {_f(e['auroc_elbo'])} "
                f"| {_f(e['auroc_iw_ll_scorable_only'])} | {_f(e['auroc_iw_ll_per_token_scorable_only'])} | {_f(e['tpr_at_5pct_fpr_iw_ll_per_token'])} |"
            )
        lines.append("")
    if "eval_arch" in data:
        tr, ev = data.get("train_arch", {}), data["eval_arch"]
        lines += [
            f"### GRU vs Transformer ({tr.get('budget', '')})",
            "",
            "| arch | parameters | steps (CPU budget) | train steps / CPU-s | val loss | reconstruction | validity | uniqueness | novelty | FCD/Test | SNN/Test | samples / CPU-s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, e in ev.items():
            t = tr.get(name, {})
            m = e["metrics"]
            lines.append(
                f"| {name} | {t.get('parameters', 0):,} | {t.get('steps')} | {_f(t.get('steps_per_cpu_second'), 2)} | {_f(t.get('best_val_loss'), 2)} "
                f"| {_f(e['reconstruction'])} | {_f(m.get('valid'))} | {_f(m.get('unique@1000', m.get('unique')))} | {_f(m.get('Novelty'))} "
                f"| {_f(m.get('FCD/Test'), 2)} | {_f(m.get('SNN/Test'))} | {_f(e['samples_per_cpu_second'], 1)} |"
            )
        lines.append("")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train-cond")
    p.add_argument("--cpu-minutes", type=float, default=3.0)
    p.add_argument("--name", default="cond_gru")
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--condition-dropout", type=float, default=0.0, help="for classifier-free guidance (0: none)")
    p.add_argument("--latent-dropout", type=float, default=0.0, help="fraction of molecules decoded from a prior draw (0: none)")
    p.add_argument("--molecules", type=int, default=20000, help="last N of the embedded 50k training molecules")
    p = sub.add_parser("export-last")
    p.add_argument("--name", default="cond_cfg")
    p = sub.add_parser("fit-steer")
    p.add_argument("--out", default=str(RUNS / "steer_e8.safetensors"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--on-policy", type=int, default=0, help="continue --init on this many model samples (+ as many training molecules)")
    p.add_argument("--init", default=str(RUNS / "steer_e8.safetensors"), help="predictor to continue ('none': from scratch)")
    p.add_argument("--name", default="default", help="model whose tokens the predictor reads: a run under runs/issue7, or default")
    p.add_argument("--data", default=None, help="labelled samples from onpolicy-data (.npz; comma-separated for several)")
    p.add_argument("--holdout", type=int, default=1000, help="with --data: samples of each kind kept out for evaluation")
    p.add_argument("--train-mix", type=int, default=0, help="with --data: also train on this many embedded training molecules")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p = sub.add_parser("onpolicy-data")
    p.add_argument("--name", default="cond_cfg_last", help="model: a run under runs/issue7, or default")
    p.add_argument("--plain", type=int, default=20000)
    p.add_argument("--steered", type=int, default=20000)
    p.add_argument("--init", default=str(RUNS / "steer_onpolicy.safetensors"), help="predictor that steers the steered samples")
    p.add_argument("--steer-strength", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--out", default=None, help="default: runs/issue7/onpolicy_<name>.npz")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the steered samples")
    p = sub.add_parser("steer-quality")
    p.add_argument("--name", default="cond_cfg_last")
    p.add_argument("--steer", required=True, help="predictor files, comma-separated")
    p.add_argument("--data", required=True, help="an onpolicy-data file (.npz); its last --holdout samples of each kind are read")
    p.add_argument("--holdout", type=int, default=1000)
    p = sub.add_parser("latent-probe")
    p.add_argument("--name", default="default")
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--temperatures", default="greedy,0.5,0.7,1")
    p = sub.add_parser("train-arch")
    p.add_argument("--cpu-minutes", type=float, default=3.0)
    p.add_argument("--only", choices=["gru", "transformer"])
    p = sub.add_parser("eval-cond")
    p.add_argument("--n", type=int, default=100, help="samples per request (and unconditional decodes per request)")
    p.add_argument("--joint", type=int, default=6, help="joint requests taken from held-out test molecules")
    p.add_argument("--name", default="cond_gru")
    p.add_argument("--guidance", default="1", help="classifier-free guidance weight(s), comma-separated, e.g. 1,2,3")
    p.add_argument("--temperature", default="1", help="sampling temperature(s), comma-separated")
    p.add_argument("--steer", default=None, help="prefix predictor file (molgen fit-steering) to steer with")
    p.add_argument("--steer-strength", default="1", help="steering strength(s), comma-separated (with --steer)")
    p.add_argument("--candidates", type=int, default=1, help="steered decodes per sample, the predictor keeps one (with --steer)")
    p.add_argument("--seed", type=int, default=100, help="request r samples with seed SEED + r (a second seed checks the noise)")
    p = sub.add_parser("eval-arch")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--recon", type=int, default=300)
    p.add_argument("--only", choices=["gru", "transformer"])
    p = sub.add_parser("score")
    p.add_argument("--n-in", type=int, default=1000)
    p.add_argument("--n-out", type=int, default=250)
    p.add_argument("--samples", type=int, default=8)
    p = sub.add_parser("report")
    p.add_argument("--detail", default="", help="JSON keys (e.g. eval_cond_cfg_w3_t1) whose per-request table to print")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"report": report, "train-cond": train_cond, "export-last": export_last, "fit-steer": fit_steer, "onpolicy-data": onpolicy_data, "latent-probe": latent_probe, "steer-quality": steer_quality, "train-arch": train_arch, "eval-cond": eval_cond, "eval-arch": eval_arch, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()

"""Sharded jobs: shard arithmetic and seeds, sample/score parts and their merge, and a benchmark merge
that gives the single-run metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgen.cli import main
from molgen.errors import ConfigError, DataError
from molgen.metrics import partial as partial_module
from molgen.metrics import read_smiles_file
from molgen.metrics import reference as reference_module
from molgen.metrics.compute import evaluate_many
from molgen.metrics.partial import PartialStatistics, compute_partial, merge_partials
from molgen.utils.shards import (
    ShardSpec,
    merge_text_parts,
    parse_shard,
    sidecar_path,
    write_sidecar,
)
from molgen.vae import MoleculeVAE

DATA = Path(__file__).parent / "data"


# BLAS is limited to one thread for the whole suite (tests/conftest.py).


def _cli(*args) -> int:
    return main([str(a) for a in args])


# --- shard arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize("n, count", [(0, 3), (2, 5), (10, 4), (1_000_003, 10), (7, 7), (99, 1)])
def test_blocks_tile_the_job_and_differ_by_at_most_one(n, count):
    specs = [ShardSpec(i, count) for i in range(count)]
    bounds = [s.bounds(n) for s in specs]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gap, no overlap
    sizes = [s.size(n) for s in specs]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first n % count shards get the extra one
    assert [x for s in specs for x in s.select(range(n))] == list(range(n))


def test_shard_seeds_are_deterministic_distinct_and_independent_of_the_shard_count():
    seeds = [ShardSpec(i, 64).seed(7) for i in range(64)]
    assert len(set(seeds)) == 64
    assert seeds[3] == ShardSpec(3, 4).seed(7) == parse_shard("3/10").seed(7)
    assert ShardSpec(3, 4).seed(8) != seeds[3]
    assert all(0 <= s < 2**62 for s in seeds)  # leaves room for the seed + 1, + 2 that sampling uses


@pytest.mark.parametrize("text", ["5/4", "4/4", "x/3", "0/0", "-1/3", "3", "1/2/3", ""])
def test_bad_shard_specs_are_one_line_config_errors(text):
    with pytest.raises(ConfigError) as info:
        parse_shard(text)
    assert "\n" not in str(info.value)


def test_shard_spec_accepts_spaces_and_names_itself():
    spec = parse_shard(" 2 / 10 ")
    assert (spec.index, spec.count, str(spec), spec.file_tag()) == (2, 10, "2/10", "shard-0002-of-0010")


# --- sample and score parts -------------------------------------------------------------------


def _sample_parts(tiny_run, folder: Path, count: int, order=None, seed: int = 5, n: int = 40) -> list[Path]:
    paths = []
    for i in order or range(count):
        path = folder / f"part-{i}.smi"
        assert _cli("sample", "--model", tiny_run, "-n", n, "--seed", seed, "--shard", f"{i}/{count}", "-o", path, "--threads", 1, "--device", "cpu") == 0
        paths.append(path)
    return paths


def test_sample_shards_draw_their_share_with_the_derived_seed(tiny_run, tmp_path):
    paths = _sample_parts(tiny_run, tmp_path, 3)
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    for i, path in enumerate(paths):
        spec = ShardSpec(i, 3)
        record = json.loads(sidecar_path(path).read_text())
        assert (record["shard"], record["of"], record["sampled"]) == (i, 3, spec.size(40))
        expected = [s for s in vae.sample(spec.size(40), seed=spec.seed(5)) if s is not None]
        assert path.read_text().splitlines() == expected
        assert record["rows"] == len(expected)


def test_merged_samples_do_not_depend_on_the_order_shards_ran_in(tiny_run, tmp_path):
    first = _sample_parts(tiny_run, tmp_path / "a", 3)
    again = _sample_parts(tiny_run, tmp_path / "b", 3, order=[2, 0, 1])
    assert _cli("merge", tmp_path / "a", "-o", tmp_path / "a.smi") == 0
    assert _cli("merge", *reversed(again), "-o", tmp_path / "b.smi") == 0
    merged = (tmp_path / "a.smi").read_text()
    assert merged == (tmp_path / "b.smi").read_text()
    assert merged == "".join(p.read_text() for p in first)  # shard order, nothing dropped or repeated


def test_merge_refuses_missing_repeated_changed_and_foreign_parts(tiny_run, tmp_path):
    parts = _sample_parts(tiny_run, tmp_path / "a", 3)
    out = tmp_path / "merged.smi"
    with pytest.raises(DataError, match=r"1 of 3 shards missing \(index 1\).*--shard 1/3"):
        merge_text_parts([parts[0], parts[2]], out)
    with pytest.raises(DataError, match="given twice"):
        merge_text_parts([*parts, _copy_part(parts[1], tmp_path / "copy")], out)
    foreign = _sample_parts(tiny_run, tmp_path / "b", 3, seed=6)
    with pytest.raises(DataError, match="another job.*seed"):
        merge_text_parts([parts[0], foreign[1], parts[2]], out)
    (tmp_path / "a" / "lonely.smi").write_text("CCO\n")
    with pytest.raises(DataError, match="no shard record"):
        merge_text_parts([*parts, tmp_path / "a" / "lonely.smi"], out)
    parts[1].write_text(parts[1].read_text() + "CCO\n")
    with pytest.raises(DataError, match="changed after shard 1/3"):
        merge_text_parts(parts, out)
    assert not out.exists()  # nothing half-merged is left behind
    assert _cli("merge", parts[0], parts[2], "-o", out) == 2


def _copy_part(part: Path, folder: Path) -> Path:
    folder.mkdir()
    copy = folder / part.name
    copy.write_bytes(part.read_bytes())
    sidecar_path(copy).write_bytes(sidecar_path(part).read_bytes())
    return copy


def test_merge_unique_keeps_the_first_occurrence(tmp_path):
    spec_job = {"command": "sample"}
    for i, lines in enumerate((["CCO", "c1ccccc1"], ["CCO", "CCN"])):
        path = tmp_path / f"p{i}.smi"
        path.write_text("".join(s + "\n" for s in lines))
        write_sidecar(path, ShardSpec(i, 2), spec_job, rows=2, header=False)
    merged = merge_text_parts([tmp_path], tmp_path / "out" / "all.smi", unique=True)
    assert (merged.rows, merged.duplicates_dropped) == (3, 1)
    assert (tmp_path / "out" / "all.smi").read_text() == "CCO\nc1ccccc1\nCCN\n"
    with pytest.raises(DataError, match="same suffix"):
        merge_text_parts([tmp_path], tmp_path / "all.csv")


def test_score_shards_cover_the_input_in_order(tiny_run, tiny_smiles, tmp_path):
    molecules = tmp_path / "in.smi"
    molecules.write_text("\n".join(tiny_smiles[:13]) + "\n")
    common = ["--model", tiny_run, "-i", molecules, "--samples", 2, "--reference", "none", "--threads", 1]
    for i in range(3):
        assert _cli("score", *common, "--shard", f"{i}/3", "-o", tmp_path / "parts" / f"s{i}.csv") == 0
    assert _cli("merge", tmp_path / "parts", "-o", tmp_path / "scores.csv") == 0
    merged = pd.read_csv(tmp_path / "scores.csv")
    assert merged["smiles"].tolist() == tiny_smiles[:13]
    assert merged["iw_ll"].notna().all()
    sizes = [len(pd.read_csv(tmp_path / "parts" / f"s{i}.csv")) for i in range(3)]
    assert sizes == [5, 4, 4]
    # Parts scored with other settings belong to another job.
    assert _cli("score", *common[:-4], "--samples", 3, "--reference", "none", "--shard", "1/3", "-o", tmp_path / "other" / "s1.csv") == 0
    with pytest.raises(DataError, match="another job.*samples"):
        merge_text_parts([tmp_path / "parts" / "s0.csv", tmp_path / "other" / "s1.csv", tmp_path / "parts" / "s2.csv"], tmp_path / "x.csv")


# --- benchmark parts --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def benchmark_case(tmp_path_factory):
    """A generated set with duplicates and garbage, a reference, a training set, and the single-run metrics."""
    cache = tmp_path_factory.mktemp("metrics_cache")
    generated = read_smiles_file(DATA / "metrics_generated_150.smi")[:60]
    generated = generated + generated[5:15] + ["not a smiles", ""]
    reference = [str(DATA / "metrics_reference_300.smi")]
    train = read_smiles_file(DATA / "metrics_train_3k.smi")
    return generated, reference, train, cache


def _assert_same_metrics(merged: dict, single: dict) -> None:
    assert list(merged) == list(single)
    for key, value in single.items():
        if key.startswith("FCD"):
            # The pooled covariance differs from np.cov's in rounding only (~1e-16); with fewer
            # molecules than ChemNet's 512 dimensions it is singular, and the square roots of its
            # ~1e-16 eigenvalues turn that into ~1e-8 in FCD.
            assert merged[key] == pytest.approx(value, rel=1e-8, abs=1e-7), key
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(merged[key]), key
        else:
            assert merged[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


@pytest.mark.filterwarnings("ignore:unique@")
def test_merged_benchmark_parts_give_the_single_run_metrics(benchmark_case, tmp_path, monkeypatch):
    generated, reference, train, cache = benchmark_case
    # A KL sample of 20 molecules lets a small test reach both merge paths: a first shard that holds
    # the whole KL sample (its similarities are reused) and one that does not (they are recomputed).
    monkeypatch.setattr(reference_module, "KL_SAMPLE_SIZE", 20)
    monkeypatch.setattr(partial_module, "KL_SAMPLE_SIZE", 20)
    # Uneven shards, among them one with no valid molecule, one with a single molecule and an empty one.
    blocks = [generated[:25], ["garbage"], generated[25:26], generated[26:], []]
    single = evaluate_many(sum(blocks, []), reference, train, n_jobs=1, cache_dir=cache)[0].metrics
    parts = []
    for i, block in enumerate(blocks):
        part = compute_partial(block, reference, (i, len(blocks)), train, {"generated": "x"}, n_jobs=1, cache_dir=cache)
        parts.append(part.save(tmp_path / f"part-{i}.npz"))
    merged = merge_partials(list(reversed(parts)), n_jobs=1, cache_dir=cache)[0].metrics
    _assert_same_metrics(merged, single)
    # Regrouped so that the first shard holds less than the KL sample.
    regrouped = [PartialStatistics.load(p) for p in parts]
    everything = sum(blocks, [])
    small_first = compute_partial(everything[:3], reference, (0, 2), train, {"g": 1}, n_jobs=1, cache_dir=cache)
    rest = compute_partial(everything[3:], reference, (1, 2), train, {"g": 1}, n_jobs=1, cache_dir=cache)
    _assert_same_metrics(merge_partials([rest, small_first], n_jobs=1, cache_dir=cache)[0].metrics, single)
    assert len(regrouped[0].kl_flat) == 20 and len(small_first.kl_flat) == 3
    # Above the exact limit both estimate IntDiv from the same rows of the same molecules.
    estimated = evaluate_many(everything, reference, train, n_jobs=1, cache_dir=cache, intdiv_exact_max=5)[0].metrics
    assert estimated["intdiv_rows"] > 0 and estimated["IntDiv"] != single["IntDiv"]
    _assert_same_metrics(merge_partials(parts, n_jobs=1, cache_dir=cache, intdiv_exact_max=5)[0].metrics, estimated)


def test_benchmark_parts_are_plain_npz_and_checked_when_merged(benchmark_case, tmp_path):
    generated, reference, train, cache = benchmark_case
    parts = [
        compute_partial(ShardSpec(i, 2).select(generated), reference, (i, 2), train, {"g": 1}, n_jobs=1, cache_dir=cache).save(tmp_path / f"p{i}.npz")
        for i in range(2)
    ]
    with np.load(parts[0], allow_pickle=False) as data:  # loads without pickle
        assert json.loads(str(data["meta"]))["shard"] == 0
    with pytest.raises(DataError, match=r"1 of 2 shards missing \(index 1\)"):
        merge_partials([parts[0]], n_jobs=1, cache_dir=cache)
    no_train = compute_partial(ShardSpec(1, 2).select(generated), reference, (1, 2), None, {"g": 1}, n_jobs=1, cache_dir=cache)
    with pytest.raises(DataError, match="another job.*train"):
        merge_partials([parts[0], no_train], n_jobs=1, cache_dir=cache)
    moved = tmp_path / "moved.smi"
    moved.write_text("CCO\nCCN\n")
    with pytest.raises(DataError, match="not the set the shards scored against"):
        merge_partials(parts, references=[moved], n_jobs=1, cache_dir=cache)
    broken = tmp_path / "broken.npz"
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    for damaged in (b"not an npz", parts[1].read_bytes()[:2000], single.read_bytes()):  # garbage, a cut-off part, one array
        broken.write_bytes(damaged)
        with pytest.raises(DataError, match="not a molgen benchmark part") as caught:
            PartialStatistics.load(broken)
        assert "pickle" not in str(caught.value) and "\n" not in str(caught.value)


def _cli_benchmark_setup(benchmark_case, tmp_path, monkeypatch) -> tuple[list[str], list, dict]:
    generated, reference, _, cache = benchmark_case
    monkeypatch.setenv("MOLGEN_CACHE", str(cache))
    samples = tmp_path / "generated.smi"
    samples.write_text("\n".join(generated[:30]) + "\n")
    small_reference = tmp_path / "reference.smi"
    small_reference.write_text("\n".join(read_smiles_file(reference[0])[:60]) + "\n")
    common = ["--generated", samples, "--reference", small_reference, "--train", DATA / "metrics_train_3k.smi", "--n-jobs", 1, "--threads", 1, "--device", "cpu"]
    assert _cli("benchmark", *common, "-o", tmp_path / "single") == 0
    return common, generated[:30], json.loads((tmp_path / "single" / "metrics.json").read_text())


@pytest.mark.filterwarnings("ignore:unique@")
def test_benchmark_cli_shards_and_merge_write_the_single_run_report(benchmark_case, tmp_path, monkeypatch):
    common, _, single = _cli_benchmark_setup(benchmark_case, tmp_path, monkeypatch)
    for i in (1, 0):
        assert _cli("benchmark", *common, "--shard", f"{i}/2", "-o", tmp_path / "parts") == 0
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["shard-0000-of-0002.npz", "shard-0001-of-0002.npz"]
    assert _cli("merge", tmp_path / "parts", "-o", tmp_path / "report", "--n-jobs", 1) == 0
    merged = json.loads((tmp_path / "report" / "metrics.json").read_text())
    _assert_same_metrics(merged["metrics"], single["metrics"])
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {"metrics.json", "metrics.md", "properties.png", "molecules.png"}
    assert "**generated**" in (tmp_path / "report" / "metrics.md").read_text()
    assert _cli("benchmark", *common, "--shard", "2/2", "-o", tmp_path / "parts") == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:unique@")
def test_benchmark_cli_scores_parts_of_a_sharded_sample_job_whole(benchmark_case, tmp_path, monkeypatch):
    common, generated, single = _cli_benchmark_setup(benchmark_case, tmp_path, monkeypatch)
    for i, block in enumerate((generated[:12], generated[12:])):
        part = tmp_path / "samples" / f"s{i}.smi"
        part.parent.mkdir(exist_ok=True)
        part.write_text("\n".join(block) + "\n")
        write_sidecar(part, ShardSpec(i, 2), {"command": "sample", "seed": 1}, rows=len(block), header=False)
        part_args = ["--generated", part, *common[2:], "--shard", f"{i}/2", "-o", tmp_path / "bench" / f"b{i}.npz"]
        assert _cli("benchmark", *part_args) == 0
    assert _cli("benchmark", *part_args[:-4], "--shard", "0/2", "-o", tmp_path / "x.npz") == 2  # part 1 is not shard 0
    assert _cli("merge", tmp_path / "bench", "-o", tmp_path / "report", "--n-jobs", 1) == 0
    merged = json.loads((tmp_path / "report" / "metrics.json").read_text())
    _assert_same_metrics(merged["metrics"], single["metrics"])
    assert "**s** |" in (tmp_path / "report" / "metrics.md").read_text()  # s0.smi, s1.smi -> one row "s"

"""The MOSES test sets' statistics from shipped files (molgen.metrics.moses_stats)."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from molgen.errors import DataError
from molgen.metrics import (
    compute_metrics,
    moses_stats,
    read_smiles_file,
    reference_statistics,
)
from molgen.metrics import reference as reference_module

DATA = Path(__file__).parent / "data"


def _write_moses_stats(path: Path, stats) -> None:
    """A statistics file laid out as the molsets wheel's (one pickled dict in ``stats.npy``)."""
    fps = np.unpackbits(stats.fingerprints, axis=1)
    frag = Counter(dict(zip(stats.fragment_keys.tolist(), stats.fragment_counts.tolist(), strict=True)))
    scaf = Counter(dict(zip(stats.scaffold_keys.tolist(), stats.scaffold_counts.tolist(), strict=True)))
    content = {
        "FCD": {"mu": stats.fcd_mu.astype(np.float32), "sigma": stats.fcd_sigma},
        "SNN": {"fps": fps},
        "Frag": {"frag": frag},
        "Scaf": {"scaf": scaf},
        **{name: {"values": stats.properties[:, i].tolist()} for i, name in enumerate(("logP", "SA", "QED", "weight"))},
    }
    np.savez_compressed(path, stats=np.array(content, dtype=object))


def _fake_moses(tmp_path: Path, n: int = 60):
    """A cache whose 'test' split is n reference molecules, with the wheel's and molgen's statistics files."""
    moses_dir = tmp_path / "cache" / "moses"
    moses_dir.mkdir(parents=True)
    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:n]
    with gzip.open(moses_dir / "test.csv.gz", "wt") as handle:
        handle.write("SMILES\n" + "\n".join(smiles) + "\n")
    computed = reference_statistics(moses_dir / "test.csv.gz", n_jobs=1, cache_dir=tmp_path / "other")
    _write_moses_stats(moses_dir / "test_stats.npz", computed)
    digest = hashlib.sha256((moses_dir / "test.csv.gz").read_bytes()).hexdigest()
    stats_digest = hashlib.sha256((moses_dir / "test_stats.npz").read_bytes()).hexdigest()
    parts = tmp_path / "data" / "moses_test_parts.npz"
    parts.parent.mkdir()
    moses_stats.write_reference_parts(computed, digest, stats_digest, parts, with_fcd=False)
    return tmp_path / "cache", parts, computed, smiles


def test_read_moses_stats_gives_the_arrays_and_counters(tmp_path):
    _, _, computed, _ = _fake_moses(tmp_path)
    read = moses_stats.read_moses_stats(tmp_path / "cache" / "moses" / "test_stats.npz")
    np.testing.assert_array_equal(read.fingerprints, computed.fingerprints)
    np.testing.assert_array_equal(read.properties, computed.properties)
    np.testing.assert_allclose(read.fcd_mu, computed.fcd_mu, rtol=1e-6)
    assert read.scaffolds == Counter(dict(zip(computed.scaffold_keys.tolist(), computed.scaffold_counts.tolist(), strict=True)))


class _Boom:
    def __reduce__(self):
        return (print, ("executed",))


def test_a_statistics_file_naming_other_code_is_refused_unrun(tmp_path, capsys):
    path = tmp_path / "test_stats.npz"
    np.savez(path, stats=np.array({"FCD": _Boom()}, dtype=object))
    with pytest.raises(DataError, match="not a readable MOSES statistics file.*not allowed"):
        moses_stats.read_moses_stats(path)
    assert "executed" not in capsys.readouterr().out
    (tmp_path / "plain.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="molgen data moses"):
        moses_stats.read_moses_stats(tmp_path / "plain.npz")
    assert pickle.loads(pickle.dumps(1)) == 1  # the restricted unpickler left pickle itself alone


@pytest.mark.filterwarnings("ignore:unique@")
def test_named_reference_is_assembled_from_shipped_files_without_a_pass(tmp_path, monkeypatch):
    cache, parts, computed, smiles = _fake_moses(tmp_path)
    monkeypatch.setattr(moses_stats, "reference_parts_path", lambda split: parts)
    expected = compute_metrics(smiles[5:40], reference=cache / "moses" / "test.csv.gz", n_jobs=1, cache_dir=tmp_path / "x")

    def fail(*args, **kwargs):
        raise AssertionError("a pass over the reference molecules")

    monkeypatch.setattr(reference_module, "_compute_reference", fail)
    got = compute_metrics(smiles[5:40], reference="moses-test", n_jobs=1, cache_dir=cache)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        tol = 1e-5 if key.startswith("FCD") else 1e-12  # the wheel stores the ChemNet mean as float32
        assert got[key] == pytest.approx(value, rel=tol, abs=tol, nan_ok=True), key
    assert len(list((cache / "metrics").glob("*.npz"))) == 1  # and cached for the next run
    stats = reference_statistics("moses-test", cache_dir=cache)
    np.testing.assert_array_equal(stats.passes_filters, computed.passes_filters)
    assert stats.fragment_keys.tolist() == computed.fragment_keys.tolist()


def test_shipped_parts_for_another_file_are_not_used(tmp_path, monkeypatch):
    cache, parts, _, smiles = _fake_moses(tmp_path)
    monkeypatch.setattr(moses_stats, "reference_parts_path", lambda split: parts)
    with gzip.open(cache / "moses" / "test.csv.gz", "wt") as handle:  # a different test set under the same name
        handle.write("SMILES\n" + "\n".join(smiles[:50]) + "\n")
    assert moses_stats.shipped_reference_statistics("test", "0" * 64, cache / "moses" / "test.csv.gz") is None
    stats = reference_statistics("moses-test", n_jobs=1, cache_dir=cache)
    assert stats.n_molecules == 50  # computed from the file, not taken from the parts


def test_pmap_progress_counts_every_item():
    from molgen.chem._pool import pmap

    class Count:
        done = 0

        def advance(self, n=1):
            self.done += n

    for n_jobs, threshold in ((1, None), (2, 1)):
        counter = Count()
        assert pmap(abs, range(-50, 50), n_jobs=n_jobs, threshold=threshold, progress=counter) == [abs(i) for i in range(-50, 50)]
        assert counter.done == 100


def test_progress_line_counts_a_first_chunk_but_not_a_resume(monkeypatch, capsys):
    from molgen.utils import progress

    clock = iter([100.0, 102.0, 200.0, 200.1, 210.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    chunk = progress._LineHandle(10, "work", "mol", log_every=0.0)  # starts at 100
    chunk.advance(10)  # a finished chunk at 102: 10 in 2 s
    resumed = progress._LineHandle(10, "train", "step", log_every=0.0)  # starts at 200
    resumed.advance(4)  # at 200.1: 4 steps done by an earlier run
    resumed.advance(6, loss=1.0)  # at 210: 6 in 10 s
    lines = capsys.readouterr().err.splitlines()
    assert "work: 10/10 5.0 mol/s" in lines[0]
    assert "train: 10/10 0.6 step/s" in lines[-1]

"""Molecule reading/writing, embedded and MOSES data, splits and torch batching."""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molgen.datasets import (
    ReadResult,
    default_test_smiles,
    default_training_smiles,
    materialize_moses,
    moses_split,
    read_molecules,
    readers,
    train_val_split,
    write_smiles,
)
from molgen.datasets import moses as moses_module
from molgen.errors import ConfigError, DataError

DATA = Path(__file__).parent / "data"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _consistent(result: ReadResult) -> None:
    assert result.n_read == len(result.smiles) + sum(result.skipped.values())
    assert len(result.rejects) == sum(result.skipped.values())


# -- read_molecules: formats -----------------------------------------------------------


def test_smi_with_names_blank_lines_and_bad_molecules() -> None:
    result = read_molecules(DATA / "mixed.smi")
    assert result.smiles == ["CCO", "c1ccccc1", "c1cc[nH]c1", "CC(=O)O"]
    assert result.n_read == 7
    assert result.skipped == {"parse": 1, "sanitize": 2}
    assert result.rejects == [(4, "C1CC", "parse"), (5, "C(C)(C)(C)(C)C", "sanitize"), (9, "c1cccc1", "sanitize")]
    assert result.column is None
    assert result.summary() == "mixed.smi: read 7 records, kept 4, skipped 3 (parse: 1, sanitize: 2)"


def test_csv_header_quoted_fields_and_named_column() -> None:
    result = read_molecules(DATA / "molecules.csv")
    assert result.column == "SMILES"
    assert result.smiles == ["CCO", "c1ccccc1", "Clc1ccccc1", "C[C@@H](N)C(=O)O"]
    assert result.n_read == 6
    assert result.skipped == {"parse": 1, "empty": 1}
    assert [(line, reason) for line, _, reason in result.rejects] == [(4, "parse"), (7, "empty")]
    _consistent(result)


def test_explicit_column_and_unknown_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "two.csv", b"smiles,parent_smiles\nCCO,CCCO\nCCN,CCCN\n")
    assert read_molecules(path).smiles == ["CCO", "CCN"]
    assert read_molecules(path, smiles_column="parent_smiles").smiles == ["CCCO", "CCCN"]
    assert read_molecules(path, smiles_column="PARENT_SMILES").column == "parent_smiles"
    with pytest.raises(DataError, match="no column 'structure'.*smiles, parent_smiles"):
        read_molecules(path, smiles_column="structure")


def test_column_guessed_from_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "guess.csv", b"id,compound,score\n1,CCO,0.1\n2,c1ccccc1,0.2\n3,xx,0.3\n")
    result = read_molecules(path)
    assert result.column == "compound"
    assert result.smiles == ["CCO", "c1ccccc1"]
    assert result.skipped == {"parse": 1}


def test_headerless_csv_and_tsv(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "plain.csv", b"CCO,1\nOCC,2\nC1CC,3\n")
    result = read_molecules(csv_path)
    assert result.smiles == ["CCO", "CCO"]
    assert result.n_read == 3 and result.skipped == {"parse": 1}
    tsv_path = _write(tmp_path / "t.tsv", b"name\tsmiles\nwater\tO\nmethane\tC\n")
    assert read_molecules(tsv_path).smiles == ["O", "C"]


def test_smi_header_and_comma_separated_txt(tmp_path: Path) -> None:
    smi = _write(tmp_path / "h.smi", b"SMILES name\nCCO eth\n")
    assert read_molecules(smi).smiles == ["CCO"]
    assert read_molecules(smi).n_read == 1
    txt = _write(tmp_path / "c.txt", b"smiles,name\nCCO,ethanol\nC#N,\"hydrogen cyanide\"\n")
    assert read_molecules(txt).smiles == ["CCO", "C#N"]


def test_crlf_bom_and_gzip(tmp_path: Path) -> None:
    data = "\ufeffsmiles,name\r\nOCC,ethanol\r\n\r\nc1ccccc1,benzene\r\n".encode()
    plain = read_molecules(_write(tmp_path / "w.csv", data))
    assert plain.column == "smiles"
    assert plain.smiles == ["CCO", "c1ccccc1"]
    assert plain.n_read == 2 and plain.skipped == {}
    gz = read_molecules(_write(tmp_path / "w.csv.gz", _gzip_bytes(data)))
    assert gz.smiles == plain.smiles
    # gzip is recognised by content, not by name.
    assert read_molecules(_write(tmp_path / "hidden.csv", _gzip_bytes(data))).smiles == plain.smiles


def test_non_utf8_lines_are_encoding_rejects(tmp_path: Path) -> None:
    data = b"CCO\nC\xff\xfeC\nCCN\n\xe9thanol,x\n"
    result = read_molecules(_write(tmp_path / "latin.smi", data))
    assert result.smiles == ["CCO", "CCN"]
    assert result.skipped == {"encoding": 2}
    assert [r[0] for r in result.rejects] == [2, 4]
    assert "\ufffd" in result.rejects[0][1]
    # Damage outside the SMILES column does not cost the molecule.
    csv_result = read_molecules(_write(tmp_path / "latin.csv", b"smiles,name\nCCO,a\nCCN,\xe9\nC\xe9C,b\n"))
    assert csv_result.smiles == ["CCO", "CCN"] and csv_result.skipped == {"encoding": 1}
    assert [r[0] for r in csv_result.rejects] == [4]


def test_max_length_and_no_canonicalization(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.smi", b"OCC\nCCCCCCCCCC\nc1ccccc1\n")
    result = read_molecules(path, max_length=8)
    assert result.smiles == ["CCO", "c1ccccc1"]
    assert result.skipped == {"too_long": 1}
    assert result.rejects == [(2, "CCCCCCCCCC", "too_long")]
    assert read_molecules(path, canonicalize=False).smiles == ["OCC", "CCCCCCCCCC", "c1ccccc1"]


def test_strict_names_line_and_reason() -> None:
    with pytest.raises(DataError, match=r"line 4: parse \('C1CC'\)") as info:
        read_molecules(DATA / "mixed.smi", strict=True)
    assert "\n" not in str(info.value)


def test_truncated_gzip_reads_what_is_there(tmp_path: Path) -> None:
    smiles = default_training_smiles(limit=3000)
    blob = _gzip_bytes(("\n".join(smiles) + "\n").encode())
    path = _write(tmp_path / "cut.smi.gz", blob[: len(blob) // 2])
    result = read_molecules(path, canonicalize=False)
    assert result.truncated
    assert 0 < result.n_read < len(smiles)
    assert result.smiles == smiles[: result.n_read]
    assert "truncated gzip" in result.summary()
    with pytest.raises(DataError, match="truncated gzip"):
        read_molecules(path, strict=True)


# -- read_molecules: unusable inputs -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.smi", b"", "is empty"),
        ("blank.smi", b"\n  \n\r\n", "is empty"),
        ("empty.csv.gz", _gzip_bytes(b""), "is empty"),
        ("header.csv", b"smiles,name\n", "header but no records"),
        ("numbers.csv", b"a,b\n1,2\n3,4\n", "no SMILES column found"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        read_molecules(_write(tmp_path / name, content))
    assert "\n" not in str(info.value) and ";" in str(info.value)  # one line: problem; fix


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_molecules(tmp_path / "nope.smi")
    with pytest.raises(DataError, match="is a directory"):
        read_molecules(tmp_path)


def test_chunked_parallel_read_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks and pool threshold, so that a 400-line file crosses chunk
    # boundaries and goes through the process pool.
    monkeypatch.setattr(readers, "_CHUNK", 128)
    monkeypatch.setattr(readers, "_PARALLEL_MIN", 50)
    smiles = default_training_smiles(limit=400)
    lines = smiles[:127] + ["C1CC", "N(C)(C)(C)C"] + smiles[127:]
    path = tmp_path / "big.smi"
    path.write_text("\n".join(lines) + "\n")
    parallel = read_molecules(path, n_jobs=2, canonicalize=False)
    assert parallel.smiles == smiles
    assert parallel.skipped == {"parse": 1, "sanitize": 1}
    assert parallel.rejects == [(128, "C1CC", "parse"), (129, "N(C)(C)(C)C", "sanitize")]
    serial = read_molecules(path, n_jobs=1)
    assert serial.smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]


# -- write_smiles --------------------------------------------------------------------------


def test_write_smiles_formats_and_atomicity(tmp_path: Path) -> None:
    smiles = ["CCO", "c1ccccc1", "C[C@@H](N)C(=O)O"]
    csv_path = write_smiles(tmp_path / "out" / "m.csv", smiles, {"name": ["a", "b, c", "d"], "score": [1, 2.5, 3]})
    assert csv_path.read_text().splitlines() == ["smiles,name,score", "CCO,a,1", 'c1ccccc1,"b, c",2.5', "C[C@@H](N)C(=O)O,d,3"]
    assert read_molecules(csv_path).smiles == smiles
    smi_path = write_smiles(tmp_path / "m.smi", smiles)
    assert smi_path.read_text() == "CCO\nc1ccccc1\nC[C@@H](N)C(=O)O\n"
    write_smiles(smi_path, ["O"])  # replaces the old file
    assert smi_path.read_text() == "O\n"
    gz_path = write_smiles(tmp_path / "m.smi.gz", smiles, {"id": [1, 2, 3]})
    assert gzip.decompress(gz_path.read_bytes()).decode().splitlines()[1] == "c1ccccc1\t2"
    assert read_molecules(gz_path).smiles == smiles
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(DataError, match="equal-length"):
        write_smiles(tmp_path / "x.csv", smiles, {"name": ["a"]})
    assert not (tmp_path / "x.csv").exists()


# -- embedded data ------------------------------------------------------------------------


def test_embedded_sets() -> None:
    train = default_training_smiles()
    test = default_test_smiles()
    assert len(train) == 50_000 and len(set(train)) == 50_000
    assert len(test) == 5_000
    assert not set(test[:500]) & set(train)  # MOSES train and test are disjoint
    assert default_training_smiles(limit=3) == train[:3]
    assert all(Chem.MolFromSmiles(s) is not None for s in train[:200])


# -- MOSES cache ----------------------------------------------------------------------------


def _fake_payloads() -> dict[str, bytes]:
    return {
        "train.csv.gz": _gzip_bytes(b"SMILES\nCCO\nc1ccccc1\n"),
        "test.csv.gz": _gzip_bytes(b"SMILES\nCCN\n"),
        "test_scaffolds.csv.gz": _gzip_bytes(b"SMILES\nc1ccncc1\n"),
        "test_stats.npz": b"fake-npz-1",
        "test_scaffolds_stats.npz": b"fake-npz-2",
    }


def _record_line(member: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{member},sha256={digest},{len(data)}"


def _fake_wheel(path: Path, corrupt: str | None = None, drop: str | None = None) -> Path:
    payloads = _fake_payloads()
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in payloads.items():
            member = f"moses/dataset/data/{name}"
            record.append(_record_line(member, data))
            if name != drop:
                zf.writestr(member, data + (b"!" if name == corrupt else b""))
        zf.writestr("molsets-0.3.1.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_materialize_from_wheel_and_lookup(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "molsets-0.3.1-py3-none-any.whl")
    cache = tmp_path / "cache"
    paths = materialize_moses(cache_dir=cache, wheel=wheel)
    assert set(paths) == {"train", "test", "test_scaffolds", "test_stats", "test_scaffolds_stats"}
    assert paths["test_stats"].read_bytes() == b"fake-npz-1"
    assert moses_split("train", cache_dir=cache) == cache / "train.csv.gz"
    assert read_molecules(moses_split("test_scaffolds", cache_dir=cache)).smiles == ["c1ccncc1"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(_fake_payloads())


def test_materialize_from_unpacked_folder_and_env_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "unpacked" / "moses" / "dataset" / "data"
    folder.mkdir(parents=True)
    for name, data in _fake_payloads().items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "envcache"))
    materialize_moses(wheel=tmp_path / "unpacked")
    assert moses_split("test") == tmp_path / "envcache" / "moses" / "test.csv.gz"


def test_materialize_rejects_bad_wheels(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="sha256"):
        materialize_moses(cache_dir=cache, wheel=_fake_wheel(tmp_path / "bad.whl", corrupt="train.csv.gz"))
    assert not (cache / "train.csv.gz").exists() and not list(cache.glob("*.tmp"))
    with pytest.raises(DataError, match="has no moses/dataset/data/test.csv.gz"):
        materialize_moses(cache_dir=cache, wheel=_fake_wheel(tmp_path / "short.whl", drop="test.csv.gz"))
    with pytest.raises(DataError, match="not a zip"):
        materialize_moses(cache_dir=cache, wheel=_write(tmp_path / "junk.whl", b"junk"))
    with pytest.raises(DataError, match="not found"):
        materialize_moses(cache_dir=cache, wheel=tmp_path / "absent.whl")


def test_materialize_downloads_with_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        _fake_wheel(Path(cmd[cmd.index("-d") + 1]) / "molsets-0.3.1-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(moses_module.subprocess, "run", fake_run)
    paths = materialize_moses(cache_dir=tmp_path / "cache")
    assert paths["train"].is_file()
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "molsets==0.3.1" in calls[0]

    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for molsets==0.3.1")

    monkeypatch.setattr(moses_module.subprocess, "run", failing_run)
    with pytest.raises(DataError, match="No matching distribution.*--wheel"):
        materialize_moses(cache_dir=tmp_path / "cache2")


def test_moses_split_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="molgen data moses"):
        moses_split("train", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="test_scaffolds"):
        moses_split("validation", cache_dir=tmp_path)


# -- splits ---------------------------------------------------------------------------------


def test_train_val_split() -> None:
    items = [f"m{i}" for i in range(1000)]
    train, val = train_val_split(items, val_fraction=0.05, seed=0)
    assert len(val) == 50 and len(train) == 950
    assert sorted(train + val) == sorted(items)
    assert train == sorted(train, key=items.index) and val == sorted(val, key=items.index)
    assert train_val_split(items, 0.05, seed=0) == (train, val)
    assert train_val_split(items, 0.05, seed=1)[1] != val
    assert train_val_split(["a", "b"], 0.05) in ((["a"], ["b"]), (["b"], ["a"]))
    assert train_val_split(["a", "b", "c"], 0.0) == (["a", "b", "c"], [])
    with pytest.raises(ConfigError):
        train_val_split(items, 1.0)


# -- torch batching -------------------------------------------------------------------------


def test_sequence_dataset_and_collate() -> None:
    import torch

    from molgen.datasets import SequenceDataset, collate_padded

    seqs = [np.array([1, 5, 6, 2]), np.array([1, 7, 2]), np.array([1, 2])]
    ds = SequenceDataset(seqs)
    assert len(ds) == 3 and ds.lengths.tolist() == [4, 3, 2]
    assert ds[1].tolist() == [1, 7, 2] and ds[1].dtype == torch.long
    padded = np.array([[1, 5, 6, 2], [1, 7, 2, 0], [1, 2, 0, 0]])
    from_padded = SequenceDataset(padded)
    assert [from_padded[i].tolist() for i in range(3)] == [s.tolist() for s in seqs]
    assert SequenceDataset(padded, lengths=[2, 2, 2])[0].tolist() == [1, 5]
    ids, lengths = collate_padded([ds[0], ds[2]])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[1, 5, 6, 2], [1, 2, 0, 0]] and lengths.tolist() == [4, 2]


def _sampler_lengths() -> np.ndarray:
    return np.random.default_rng(7).integers(5, 60, size=1003)


def test_bucket_sampler_covers_every_index_once_with_homogeneous_batches() -> None:
    from molgen.datasets import BucketBatchSampler

    lengths = _sampler_lengths()
    sampler = BucketBatchSampler(lengths, batch_size=16, shuffle=True, seed=3, pool_batches=10)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 63
        flat = np.concatenate(batches)
        assert np.array_equal(np.sort(flat), np.arange(1003))
        assert sum(len(b) < 16 for b in batches) == 1
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.random.default_rng(0).permutation(1003), 63)])
    assert spread < 0.2 * random_spread  # pools of 160 from 55 distinct lengths: spread ~3 vs ~45


def test_bucket_sampler_determinism_and_options() -> None:
    from molgen.datasets import BucketBatchSampler

    lengths = _sampler_lengths()
    a = BucketBatchSampler(lengths, batch_size=16, seed=3)
    b = BucketBatchSampler(lengths, batch_size=16, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    dropped = BucketBatchSampler(lengths, batch_size=16, drop_last=True)
    batches = list(dropped)
    assert len(batches) == len(dropped) == 62 and all(len(x) == 16 for x in batches)
    ordered = list(BucketBatchSampler(lengths, batch_size=16, shuffle=False))
    assert np.all(np.diff(lengths[np.concatenate(ordered)]) >= 0)
    with pytest.raises(ConfigError):
        BucketBatchSampler(lengths, batch_size=0)


def test_dataloader_end_to_end() -> None:
    from torch.utils.data import DataLoader

    from molgen.datasets import BucketBatchSampler, SequenceDataset, collate_padded

    ds = SequenceDataset([np.arange(1, n + 1) for n in _sampler_lengths()[:100]])
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds.lengths, 8, seed=0), collate_fn=collate_padded)
    seen = 0
    for ids, lengths in loader:
        assert ids.shape == (len(lengths), int(lengths.max()))
        assert (ids[:, 0] == 1).all() and int((ids != 0).sum()) == int(lengths.sum())
        seen += len(lengths)
    assert seen == 100


def test_readers_do_not_import_torch() -> None:
    code = "import sys, molgen.datasets as d; d.read_molecules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_smi_file_whose_first_line_has_a_comma_is_not_forced_into_csv(tmp_path):
    from molgen.datasets import read_molecules

    odd = tmp_path / "odd.smi"
    odd.write_text("!,\n!x\n")  # bad lines, the first with a comma: no CSV column to find
    result = read_molecules(odd)
    assert result.smiles == [] and result.n_read == 2 and result.n_skipped == 2
    csv_like = tmp_path / "pairs.smi"
    csv_like.write_text("CCO,1.5\nc1ccccc1,2.0\n")  # comma-separated SMILES with a value still reads as CSV
    assert read_molecules(csv_like).smiles == ["CCO", "c1ccccc1"]

"""The tokenised-data cache: same arrays as tokenising afresh, memory-mapped, keyed safely."""

from __future__ import annotations

import numpy as np

from molgen.datasets.token_cache import token_cache_key
from molgen.vae.training import tokenize_smiles

SMILES = ["CCO", "c1ccccc1O", "not-a-smiles(", "CC(=O)Nc1ccc(O)cc1", "C" * 60, "CCN(CC)CC"]


def _tokenize(tmp_path, smiles=SMILES, **kw):
    return tokenize_smiles(smiles, "smiles", 40, n_jobs=1, cache_dir=tmp_path, cache_min=0, **kw)


def test_second_call_memory_maps_the_same_arrays(tmp_path):
    fresh, vocab = _tokenize(tmp_path)
    assert len(list(tmp_path.iterdir())) == 1  # one entry, no temporary folder left
    cached, cached_vocab = _tokenize(tmp_path)
    assert isinstance(cached.ids, np.memmap)
    assert cached_vocab == vocab
    np.testing.assert_array_equal(np.asarray(cached.ids, dtype=np.int64), fresh.ids)
    np.testing.assert_array_equal(cached.lengths, fresh.lengths)
    assert cached.smiles == fresh.smiles
    assert cached.skipped == fresh.skipped == {"untokenizable": 1, "too_long": 1}


def test_key_depends_on_molecules_order_settings_and_vocabulary(tmp_path):
    base = token_cache_key(SMILES, "smiles", 40, None)
    assert token_cache_key(SMILES[::-1], "smiles", 40, None) != base
    assert token_cache_key(SMILES, "selfies", 40, None) != base
    assert token_cache_key(SMILES, "smiles", 41, None) != base
    _, vocab = _tokenize(tmp_path)
    assert token_cache_key(SMILES, "smiles", 40, vocab.to_dict()) != base
    # Applying a given vocabulary makes its own entry with that vocabulary's ids.
    other, _ = _tokenize(tmp_path, smiles=["CCO", "CCS"], vocab=vocab)
    assert other.ids[1, 3] == vocab.unk_id  # 'S' is not in the vocabulary
    assert len(list(tmp_path.iterdir())) == 2


def test_broken_entry_is_rebuilt(tmp_path):
    fresh, _ = _tokenize(tmp_path)
    (entry,) = tmp_path.iterdir()
    (entry / "meta.json").write_text("{ truncated")
    again, _ = _tokenize(tmp_path)
    np.testing.assert_array_equal(np.asarray(again.ids), fresh.ids)
    assert not isinstance(again.ids, np.memmap)  # tokenised afresh ...
    assert isinstance(_tokenize(tmp_path)[0].ids, np.memmap)  # ... and the entry repaired


def test_small_inputs_are_not_cached(tmp_path):
    tokenize_smiles(SMILES, "smiles", 40, n_jobs=1, cache_dir=tmp_path)  # default cache_min
    assert not tmp_path.exists() or not any(tmp_path.iterdir())

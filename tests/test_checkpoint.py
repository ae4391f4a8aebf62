"""Checkpoints: round trip, and a one-line CheckpointError for every kind of bad file."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from molgen.errors import CheckpointError
from molgen.utils.checkpoint import (
    FORMAT_VERSION,
    flatten_state,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    unflatten_state,
)


def _write(tmp_path, name="ck.safetensors"):
    path = tmp_path / name
    tensors = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(2, dtype=torch.int64)}
    save_checkpoint(path, tensors, {"kind": "test", "nested": {"a": [1, 2]}})
    return path, tensors


def test_round_trip(tmp_path):
    path, tensors = _write(tmp_path)
    loaded, meta = load_checkpoint(path)
    assert meta == {"kind": "test", "nested": {"a": [1, 2]}}
    assert torch.equal(loaded["w"], tensors["w"]) and torch.equal(loaded["b"], tensors["b"])
    assert read_checkpoint_meta(path)["kind"] == "test"


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, skeleton = flatten_state(opt.state_dict(), "optim")
    restored = unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    original = opt.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    for pid, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][pid][key], value)


@pytest.mark.parametrize("cut", [0, 5, 40, -3])
def test_truncated_file_is_refused(tmp_path, cut):
    path, _ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(CheckpointError, match="truncated|corrupted|checksum"):
        load_checkpoint(path)


def test_flipped_byte_fails_checksum(tmp_path):
    path, _ = _write(tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a molgen checkpoint"):
        load_checkpoint(path)


def test_future_version_is_refused(tmp_path):
    path, _ = _write(tmp_path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"]["format_version"] = str(FORMAT_VERSION + 1)
    new_header = json.dumps(header).encode()
    new_header += b" " * ((8 - len(new_header) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new_header)) + new_header + raw[8 + n :])
    with pytest.raises(CheckpointError, match="newer than this molgen supports"):
        load_checkpoint(path)


class _Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_side_effects(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    torch_file = tmp_path / "evil.pt"
    torch.save({"x": _Exploit(marker)}, torch_file)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(torch_file)
    assert not marker.exists()


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path, tensors = _write(tmp_path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, tensors, {"bad": object()})  # not JSON-serialisable
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

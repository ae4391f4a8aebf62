"""Self-describing, safe checkpoints.

A molgen checkpoint is one safetensors file. Tensors hold the weights (and,
for resumable training state, the optimizer and RNG state); the safetensors
header's string metadata holds JSON: what kind of model it is, its config,
the tokenizer vocabulary, training metadata, a format version and a SHA-256
of the tensor bytes. Loading parses JSON and raw tensor bytes only — nothing
is ever unpickled, so a checkpoint cannot execute code.

Writes go to a temporary file that is fsynced and renamed into place, so a
crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from molgen.errors import CheckpointError
from molgen.utils.io import atomic_output

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_meta",
    "flatten_state",
    "unflatten_state",
]

FORMAT_NAME = "molgen-checkpoint"
FORMAT_VERSION = 1
# A header larger than this is not one of ours (ours are a few hundred kB at most).
_MAX_HEADER = 64 * 1024 * 1024


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-serialisable ``meta`` atomically to ``path``."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    body = st_save(tensors)
    header_len = struct.unpack("<Q", body[:8])[0]
    digest = hashlib.sha256(body[8 + header_len :]).hexdigest()
    # The checksum covers the tensor bytes; it must be known before the header
    # is final, so the file is serialised twice (cheap next to the disk write).
    meta_json = json.dumps(meta, sort_keys=True)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "sha256": digest,
        "header_sha256": _header_digest(json.loads(body[8 : 8 + header_len]), meta_json),
        "meta": meta_json,
    }
    blob = st_save(tensors, metadata=metadata)
    with atomic_output(path, "wb") as fh:
        fh.write(blob)
    return path


def _header_digest(descriptors: dict[str, Any], meta_json: str) -> str:
    """SHA-256 of the tensor index (names, dtypes, shapes, offsets) and the metadata JSON.

    ``sha256`` covers the tensor bytes only; without this, damage that keeps
    the header valid JSON (a renamed tensor, an altered config value) would load.
    """
    tensors = {k: v for k, v in descriptors.items() if k != "__metadata__"}
    return hashlib.sha256(json.dumps({"tensors": tensors, "meta": meta_json}, sort_keys=True).encode()).hexdigest()


def _split(path: Path) -> tuple[dict[str, Any], bytes, bytes]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or train a model first")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    raw = path.read_bytes()
    if len(raw) < 8:
        raise CheckpointError(f"{path} is truncated or empty (not a molgen checkpoint); re-save or re-train it")
    header_len = struct.unpack("<Q", raw[:8])[0]
    if header_len > _MAX_HEADER or 8 + header_len > len(raw):
        if raw[:2] == b"PK" or raw[:1] == b"\x80":
            raise CheckpointError(
                f"{path} is a pickle/zip (torch.save) file, not a molgen checkpoint; "
                "molgen never unpickles files — convert it with molgen's own save"
            )
        raise CheckpointError(f"{path} is truncated or not a molgen checkpoint (bad header); re-save or re-train it")
    try:
        header = json.loads(raw[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has a corrupted header (not a molgen checkpoint)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupted header (not a molgen checkpoint)")
    return header, raw, raw[8 + header_len :]


def _check_header(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is a safetensors file but not a molgen checkpoint (no molgen format tag); "
            "pass a file written by molgen"
        )
    try:
        version = int(metadata.get("format_version", "-1"))
    except ValueError:
        version = -1
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this molgen supports ({FORMAT_VERSION}); "
            "upgrade molgen"
        )
    if version < 1:
        raise CheckpointError(f"{path} has an invalid checkpoint format version; it is corrupted")
    try:
        return json.loads(metadata["meta"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has corrupted metadata; re-save or re-train it") from None


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Return a checkpoint's metadata without verifying or loading its tensors."""
    path = Path(path)
    header, _, _ = _split(path)
    return _check_header(path, header)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", verify: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(tensors, meta)`` from a molgen checkpoint, verifying its checksum.

    Raises :class:`CheckpointError` with a one-line reason for a missing,
    truncated, corrupted, foreign or future-version file.
    """
    path = Path(path)
    header, raw, data = _split(path)
    meta = _check_header(path, header)
    if verify:
        expected = header["__metadata__"].get("sha256")
        if expected != hashlib.sha256(data).hexdigest():
            raise CheckpointError(f"{path} failed its checksum (corrupted or truncated); re-save or re-train it")
        expected_header = header["__metadata__"].get("header_sha256")  # absent in checkpoints from before it existed
        if expected_header is not None and expected_header != _header_digest(header, header["__metadata__"]["meta"]):
            raise CheckpointError(f"{path} has a corrupted header (its checksum does not match); re-save or re-train it")
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} could not be decoded ({exc}); it is corrupted") from None
    if str(map_location) != "cpu":
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return tensors, meta


def flatten_state(state: Any, prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (e.g. an optimizer ``state_dict``) into tensors and a JSON skeleton.

    Tensors are replaced by ``{"__tensor__": key}`` markers so the structure
    can live in the checkpoint's JSON metadata and be rebuilt without pickle.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, key: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[key] = obj
            return {"__tensor__": key}
        if isinstance(obj, dict):
            # JSON keys must be strings; remember which were ints (optimizer param ids).
            return {
                "__dict__": [[k, isinstance(k, int), walk(v, f"{key}.{k}")] for k, v in obj.items()]
            }
        if isinstance(obj, (list, tuple)):
            return {"__list__": [walk(v, f"{key}.{i}") for i, v in enumerate(obj)], "tuple": isinstance(obj, tuple)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")

    return tensors, walk(state, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {int(k) if is_int else k: unflatten_state(v, tensors) for k, is_int, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten_state(v, tensors) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton

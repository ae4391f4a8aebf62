"""Sharded jobs: split one large sampling, scoring or benchmark job over many machines.

molgen has no cluster code of its own; an existing scheduler (a Slurm job
array, a Kubernetes Indexed Job) starts ``N`` independent workers, worker ``i``
runs a command with ``--shard i/N``, and ``molgen merge`` combines their
outputs once all of them have finished.

Shard indices are 0-based (``0/N`` .. ``N-1/N``), as ``$SLURM_ARRAY_TASK_ID``
with ``--array=0-(N-1)`` and Kubernetes' ``$JOB_COMPLETION_INDEX``.

The promises:

* Shard ``i`` of ``N`` gets a contiguous block of the work; block sizes differ
  by at most one and add up to the total exactly (:meth:`ShardSpec.bounds`).
* Randomness comes from a per-shard seed derived from ``(seed, i)`` alone
  (:meth:`ShardSpec.seed`), so a shard's output is the same whether it runs
  alone, first, last or beside the others, and the merged result depends only
  on ``(n, N, seed)`` -- not on how many machines ran at once or in which
  order they finished. (Changing ``N`` changes the draw, as changing the
  batch size does for an unsharded run.)
* Every text output of a shard gets a record beside it, ``<output>.shard.json``,
  written after the output itself: the shard, the job's settings and the
  output's SHA-256. :func:`merge_text_parts` refuses a set of parts with a
  shard missing, twice, from another job, or changed since it was written.

Example::

    >>> spec = parse_shard("3/10")
    >>> spec.bounds(1_000_003)
    (300003, 400003)
    >>> [parse_shard(f"{i}/4").size(10) for i in range(4)]
    [3, 3, 2, 2]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from molgen.errors import ConfigError, DataError
from molgen.utils.io import atomic_output, atomic_write_text

__all__ = [
    "ShardSpec",
    "parse_shard",
    "file_digest",
    "sidecar_path",
    "write_sidecar",
    "read_sidecar",
    "check_complete",
    "collect_parts",
    "merge_text_parts",
    "MergedText",
]

T = TypeVar("T")
SIDECAR_SUFFIX = ".shard.json"
_FORMAT = 1
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# Torch seeds are 64-bit; sampling also uses seed + 1 and seed + 2, so stay well below.
_SEED_BITS = 62


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"a job needs at least one shard, not {self.count}; use --shard i/N with N >= 1")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard index {self.index} is out of range for {self.count} shard(s): indices are 0-based, "
                f"0..{self.count - 1} (as $SLURM_ARRAY_TASK_ID with --array=0-{self.count - 1}, or $JOB_COMPLETION_INDEX)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, n: int) -> tuple[int, int]:
        """``[start, stop)`` of this shard's block of ``n`` items (the first ``n % count`` shards get one more)."""
        base, extra = divmod(n, self.count)
        start = self.index * base + min(self.index, extra)
        return start, start + base + (self.index < extra)

    def size(self, n: int) -> int:
        """How many of ``n`` items this shard gets."""
        start, stop = self.bounds(n)
        return stop - start

    def select(self, items: Sequence[T]) -> Sequence[T]:
        """This shard's contiguous block of ``items``."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def seed(self, seed: int) -> int:
        """The seed this shard uses, derived from ``(seed, index)`` only.

        A :class:`numpy.random.SeedSequence` with the shard index as spawn key
        gives statistically independent streams for different shards.
        """
        words = np.random.SeedSequence(seed % 2**64, spawn_key=(self.index,)).generate_state(2, np.uint32)
        return (int(words[0]) << 32 | int(words[1])) >> (64 - _SEED_BITS)

    def file_tag(self) -> str:
        """``shard-0003-of-0010``: sorts in shard order."""
        width = max(4, len(str(self.count - 1)))
        return f"shard-{self.index:0{width}d}-of-{self.count:0{width}d}"


def parse_shard(text: str) -> ShardSpec:
    """``"i/N"`` -> :class:`ShardSpec`; anything else is a one-line :class:`ConfigError`."""
    match = _SPEC.match(str(text))
    if match is None:
        raise ConfigError(f"--shard {text!r} is not of the form i/N (e.g. 3/10; i is 0-based, 0..N-1)")
    return ShardSpec(int(match.group(1)), int(match.group(2)))


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the shard record of ``output`` lives: ``<output>.shard.json``."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def write_sidecar(output: str | os.PathLike, spec: ShardSpec, job: dict[str, Any], *, rows: int, header: bool, **extra: Any) -> Path:
    """Record that ``output`` is the finished part ``spec`` of ``job`` (call after writing ``output``).

    Args:
        output: the part's file, complete.
        spec: which shard it is.
        job: the settings every part of the job must share (the command, its
            inputs' digests, seed, sizes ...); :func:`merge_text_parts`
            refuses parts whose ``job`` differs.
        rows: data lines in ``output`` (without the header).
        header: whether the first line is a header.
        extra: more facts to record (not compared), e.g. the derived seed.
    """
    record = {
        "molgen_shard": _FORMAT,
        "shard": spec.index,
        "of": spec.count,
        "file": Path(output).name,
        "rows": rows,
        "header": header,
        "sha256": file_digest(output),
        "job": job,
        **extra,
    }
    path = sidecar_path(output)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def collect_parts(paths: Iterable[str | os.PathLike], suffixes: tuple[str, ...] = ()) -> list[Path]:
    """The part files named by ``paths``: folders expand to their parts, shard records to their data file.

    In a folder, a part is a file with a shard record beside it, or (for
    ``suffixes`` such as ``.npz``) any file with one of those suffixes.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    continue
                if child.name.endswith(SIDECAR_SUFFIX):
                    found.append(child.with_name(child.name[: -len(SIDECAR_SUFFIX)]))
                elif child.suffix in suffixes:
                    found.append(child)
            continue
        if path.name.endswith(SIDECAR_SUFFIX):
            path = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
        found.append(path)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise DataError("no shard outputs found; pass the part files (or their folder) that the --shard runs wrote")
    return unique


def check_complete(records: Sequence[dict[str, Any]], names: Sequence[str]) -> list[int]:
    """Order of ``records`` by shard; refuse a missing, repeated or foreign part.

    Each record has ``shard``, ``of`` and ``job``; ``names`` label them in messages.
    """
    counts = {r["of"] for r in records}
    if len(counts) > 1:
        raise DataError(f"these parts come from jobs split into different numbers of shards ({sorted(counts)}); merge one job at a time")
    count = counts.pop()
    first_job = records[0]["job"]
    for record, name in zip(records, names, strict=True):
        if record["job"] != first_job:
            diff = sorted(k for k in set(first_job) | set(record["job"]) if first_job.get(k) != record["job"].get(k))
            raise DataError(f"{name} belongs to another job than {names[0]} (they differ in {', '.join(diff)}); merge the parts of one job")
    by_shard: dict[int, str] = {}
    for record, name in zip(records, names, strict=True):
        if record["shard"] in by_shard:
            raise DataError(f"shard {record['shard']}/{count} is given twice ({by_shard[record['shard']]} and {name}); pass each part once")
        by_shard[record["shard"]] = name
    missing = [i for i in range(count) if i not in by_shard]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{len(missing)} of {count} shards missing (index {shown}); run them (e.g. --shard {missing[0]}/{count}) "
            "or pass their files, then merge again"
        )
    return sorted(range(len(records)), key=lambda k: records[k]["shard"])


def read_sidecar(part: Path) -> dict[str, Any]:
    """The shard record of ``part``; a one-line :class:`DataError` when there is none or it is damaged."""
    path = sidecar_path(part)
    if not part.is_file():
        raise DataError(f"shard output {part} does not exist; check the path (or run that shard again)")
    if not path.is_file():
        raise DataError(
            f"{part} has no shard record ({path.name}): it was not written by a --shard run, or that run did not finish; run the shard again"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("molgen_shard") != _FORMAT:
            raise ValueError("unknown format")
        for key in ("shard", "of", "rows", "header", "sha256", "job"):
            record[key]
    except (ValueError, KeyError, UnicodeDecodeError):
        raise DataError(f"{path} is not a molgen shard record; run that shard again") from None
    return record


@dataclass
class MergedText:
    """What :func:`merge_text_parts` wrote."""

    output: Path
    parts: int
    rows: int
    duplicates_dropped: int
    job: dict[str, Any]


def merge_text_parts(parts: Iterable[str | os.PathLike], output: str | os.PathLike, unique: bool = False) -> MergedText:
    """Concatenate the text outputs of a sharded job (SMILES or CSV) in shard order.

    Checks first that every shard is there exactly once, that all parts come
    from the same job, and that each part's bytes are what its shard wrote
    (SHA-256 and row count); writes ``output`` atomically with one header.

    Args:
        parts: the part files (any order), or folders holding them.
        output: the merged file.
        unique: keep only the first line of each molecule (first column),
            e.g. to de-duplicate samples across shards.

    Raises:
        DataError: a part or its record is missing, damaged, changed or foreign.
    """
    paths = collect_parts(parts)
    records = [read_sidecar(p) for p in paths]
    order = check_complete(records, [str(p) for p in paths])
    output = Path(output)
    if any(output.resolve() == p.resolve() for p in paths):
        raise DataError(f"the merged output {output} is one of the parts; choose another -o")
    suffixes = {p.suffix for p in paths}
    if len(suffixes) == 1 and output.suffix not in suffixes:
        raise DataError(f"the parts are {suffixes.pop()} files; give the merged output the same suffix, not {output.name!r}")
    headers = {bool(records[k]["header"]) for k in order}
    if len(headers) > 1:
        raise DataError("some parts have a header line and others do not; merge parts of one job with one output format")
    seen: set[str] = set()
    rows = dropped = 0
    header_line: str | None = None
    with atomic_output(output, "wb") as sink:
        for k in order:
            path, record = paths[k], records[k]
            digest, n_rows = hashlib.sha256(), 0
            with open(path, "rb") as handle:
                for line_no, line in enumerate(handle):
                    digest.update(line)
                    if record["header"] and line_no == 0:
                        if header_line is None:
                            header_line = line.decode("utf-8", "replace")
                            sink.write(line)
                        elif line.decode("utf-8", "replace") != header_line:
                            raise DataError(f"{path} has another header than the first part; merge parts of one job")
                        continue
                    n_rows += 1
                    if unique:
                        key = _first_field(line)
                        if key in seen:
                            dropped += 1
                            continue
                        seen.add(key)
                    sink.write(line if line.endswith(b"\n") else line + b"\n")
                    rows += 1
            if digest.hexdigest() != record["sha256"] or n_rows != record["rows"]:
                raise DataError(
                    f"{path} changed after shard {record['shard']}/{record['of']} wrote it "
                    f"({n_rows:,} rows now, {record['rows']:,} recorded, or other bytes); run that shard again"
                )
    return MergedText(output=output, parts=len(paths), rows=rows, duplicates_dropped=dropped, job=records[order[0]]["job"])


def _first_field(line: bytes) -> str:
    text = line.decode("utf-8", "replace").strip()
    return re.split(r"[,\s]", text, maxsplit=1)[0]

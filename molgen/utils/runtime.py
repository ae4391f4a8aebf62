"""Devices, seeds and a record of the software a run used."""

from __future__ import annotations

import os
import platform
import random
from datetime import datetime, timezone

import numpy as np
import torch

from molgen.errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "deterministic_cuda", "environment_info", "native_bf16", "autocast_dtype", "autocast", "PRECISIONS"]

#: Values of ``--precision`` (training and decoding).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a :class:`torch.device`.

    ``auto`` picks the first CUDA device when one is present and the CPU
    otherwise. Asking for CUDA on a machine without it is a ConfigError rather
    than a silent fallback, so a run never pretends to use a GPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} requested but CUDA is not available; use --device cpu or auto")
        index = 0 if spec == "cuda" else spec.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"device {spec!r} does not exist ({torch.cuda.device_count()} CUDA device(s)); use cuda:0..N-1"
            )
        return torch.device(f"cuda:{int(index)}")
    raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` does bfloat16 arithmetic in hardware.

    On the CPU that means AVX512-BF16 or AMX instructions (recent Xeon and
    EPYC parts); without them bfloat16 is emulated and slower than float32.
    On CUDA it is what ``torch.cuda.is_bf16_supported`` reports.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu" or os.environ.get("MOLGEN_NO_BF16"):
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def autocast_dtype(precision: str, device: torch.device | str, auto_cuda: torch.dtype | None = None) -> torch.dtype | None:
    """The dtype ``precision`` runs in under ``torch.autocast`` on ``device``; ``None`` for plain fp32.

    ``auto`` is ``auto_cuda`` on CUDA, bf16 on CPUs with native bfloat16 and
    fp32 elsewhere; fp16 exists only on CUDA.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16 (CUDA only)")
    if precision == "auto":
        if device.type == "cuda":
            return auto_cuda
        return torch.bfloat16 if device.type == "cpu" and native_bf16(device) else None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 mixed precision needs a CUDA device; use --precision bf16 on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> torch.autocast:
    """``torch.autocast`` in ``dtype`` on ``device``, or a disabled one for ``None`` (fp32)."""
    return torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way.

    Where CUDA is present this also asks for its deterministic kernels, so
    the same seed on the same GPU gives the same run (see :func:`deterministic_cuda`).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        deterministic_cuda()
    return torch.Generator().manual_seed(seed)


def deterministic_cuda() -> None:
    """Deterministic CUDA kernels: cuDNN without autotuning, cuBLAS with a fixed
    workspace, and PyTorch's deterministic variants of accumulating ops (the
    embedding gradient's scatter-add among them) where one exists; an op that
    has none runs anyway and warns once. Costs a little speed; CPU runs are untouched.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def environment_info(device: torch.device | None = None) -> dict[str, str | int | None]:
    """Versions, device and host facts written into every run folder."""
    import rdkit
    import selfies

    import molgen

    info: dict[str, str | int | None] = {
        "molgen": molgen.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "rdkit": rdkit.__version__,
        "selfies": selfies.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        info["device"] = str(device)
        info["native_bf16"] = int(native_bf16(device))
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    return info

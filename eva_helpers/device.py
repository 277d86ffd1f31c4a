"""Where the work runs: the device, the precision, the CPU cores, the DDP processes, and the seeds."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import subprocess
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_name(name: str) -> str:
    """Return `name` if it is 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', else raise ValueError naming them."""
    if name in ("auto", "cpu", "cuda", "mps") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"device={name!r} is not understood; use one of {', '.join(map(repr, DEVICE_NAMES))}.")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; other names are checked against the machine."""
    if check_device_name(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but this machine has no CUDA GPU; use device='auto' or 'cpu'.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={name!r} was asked for but this machine has {count} GPU(s), cuda:0 to "
                         f"cuda:{count - 1}; pick one of those, or device='cuda'.")  # fmt: skip
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device={name!r} was asked for but MPS is not available here; use device='auto' or 'cpu'.")
    return device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_has_bf16() -> bool:
    """True where the CPU runs bf16 matrix work natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(*, precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None = fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not cuda_has_bf16(device):
            major, minor = torch.cuda.get_device_capability(device)
            warnings.warn(
                f"precision='bf16' on {torch.cuda.get_device_name(device)} (compute capability {major}.{minor}): this "
                "GPU has no bf16 tensor cores, so bf16 is emulated, slower than fp32, and some cuDNN versions refuse "
                "it. Use precision='auto' (fp16 with a gradient scaler here) or 'fp32'.",
                stacklevel=2,
            )
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"precision={precision!r} is unknown; choose one of {', '.join(map(repr, PRECISIONS))}.")
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def cuda_has_bf16(device: torch.device) -> bool:
    """True where the GPU computes in bf16 natively (compute capability 8.0, Ampere, or newer).

    torch.cuda.is_bf16_supported() also says True on a T4 (7.5), where bf16 only runs by emulation.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


def precision_name(dtype: torch.dtype | None) -> str:
    """How metrics and benchmarks name an autocast dtype: 'bfloat16', 'float16', or 'float32' for none."""
    return str(dtype).replace("torch.", "") if dtype is not None else "float32"


def autocast(*, device: torch.device, dtype: torch.dtype | None):
    """An autocast context for dtype, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_quota(cgroup: str | Path = "/sys/fs/cgroup") -> int | None:
    """The CPUs a container's quota allows (cgroup v2 cpu.max, else v1's cfs quota), rounded up; None without one.

    torch sizes its thread pool from the host's cores, which in a container (a Hugging Face Space, say) can be
    many more than the quota: the threads then wait for each other.
    """
    cgroup = Path(cgroup)
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]  # v2: "200000 100000", or "max 100000"
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()  # v1: -1 without a quota
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def auto_workers() -> int:
    """DataLoader workers that suit this machine: none on two cores, where workers steal the training step's cores."""
    cores = usable_cpus()
    return 0 if cores <= 2 else min(8, cores // 2)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation draws from these)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """The sum of `values` over all processes (the values themselves in a single process)."""
    if rank_and_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def versions() -> dict[str, str]:
    """The versions a result depends on, for metrics.json."""
    import albumentations
    import torchvision

    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "albumentations": albumentations.__version__,
        "numpy": np.__version__,
        "eva_helpers": __version__,
    }


def distributed(*, model: torch.nn.Module, device: torch.device, sync_bn: bool = True) -> torch.nn.Module:
    """The model wrapped for DDP; on CUDA with sync_bn, BatchNorm first normalises over the global batch."""
    if sync_bn and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def provenance(device: torch.device) -> dict[str, str | None]:
    """What a result ran on: the device's name, the CUDA and cuDNN versions, the git commit of this checkout."""
    on_cuda = device.type == "cuda"
    return {
        "device_name": torch.cuda.get_device_name(device) if on_cuda else _cpu_name(),
        "cuda": torch.version.cuda if on_cuda else None,
        "cudnn": str(torch.backends.cudnn.version()) if on_cuda else None,
        "git_commit": _git_commit(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """The commit of the checkout this package runs from, with '+changes' if it has uncommitted ones; else None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")

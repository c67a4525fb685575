"""Weight tensors from files: .npy and .safetensors in, .npy out (atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelsim.checks import MAX_WEIGHT, check_input_file, check_npy
from kernels.errors import InputError
from kernels.io import atomic_path

__all__ = ["check_weights", "load_safetensors", "load_tensor", "save_npy"]


def load_safetensors(path: str | Path, option: str) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as NumPy arrays; errors name ``option`` (the CLI flag)."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise InputError(f"{option}: reading .safetensors needs the safetensors package (pip install accelsim[models])") from None
    check_input_file(path, ".safetensors file", InputError)
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt files
        raise InputError(f"{option}: cannot read {str(path)!r} as .safetensors: {exc}") from None


def load_tensor(path: str | Path, name: str | None = None) -> np.ndarray:
    """Read one tensor from ``.npy`` or ``.safetensors`` (``name`` picks it when there are several).

    Raises
    ------
    InputError
        Missing file, unknown suffix, unreadable file, a missing/ambiguous tensor name, or a tensor
        that is empty, not real numbers, or holds NaN/inf.
    """
    path = Path(path)
    check_input_file(path, "weight tensor (.npy or .safetensors)", InputError)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if name is not None:
            raise InputError("--tensor: only applies to .safetensors inputs; drop it for .npy")
        check_npy(path, InputError)  # the header against the file size, before numpy allocates the shape
        try:
            return check_weights(np.load(path, allow_pickle=False), path)
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"input: cannot read {str(path)!r} as .npy: {exc}") from None
    if suffix == ".safetensors":
        tensors = load_safetensors(path, "input")
        if name is None:
            if len(tensors) != 1:
                raise InputError(f"--tensor: {str(path)!r} holds {len(tensors)} tensors; pick one of {sorted(tensors)[:10]}")
            return check_weights(next(iter(tensors.values())), path)
        if name not in tensors:
            raise InputError(f"--tensor: no tensor {name!r} in {str(path)!r}; have {sorted(tensors)[:10]}")
        return check_weights(tensors[name], path)
    raise InputError(f"input: unsupported file type {suffix!r} for {str(path)!r}; use .npy or .safetensors")


def check_weights(a: np.ndarray, path: Path, option: str = "input") -> np.ndarray:
    """A non-empty array of finite real numbers within :data:`~accelsim.checks.MAX_WEIGHT` (what pruning,
    TASD and the search can work on); else an :class:`InputError` naming ``option`` and the file."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iuf":
        raise InputError(f"{option}: {str(path)!r} holds {getattr(a, 'dtype', type(a).__name__)} data; "
                         "expected real numbers")
    if a.size == 0:
        raise InputError(f"{option}: {str(path)!r} holds an empty tensor of shape {'×'.join(map(str, a.shape))}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError(f"{option}: {str(path)!r} holds NaN or inf values; weights must be finite")
    peak = float(np.abs(a).max())
    if peak > MAX_WEIGHT:
        raise InputError(f"{option}: {str(path)!r} holds a value of magnitude {peak:.3g}, beyond {MAX_WEIGHT:.3g} "
                         "(accelsim.checks.MAX_WEIGHT, float32's largest)")
    return a


def save_npy(w: np.ndarray, path: str | Path) -> None:
    """Write ``w`` to ``path`` (must end in .npy) atomically: a failure leaves no partial file."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise InputError(f"--out: must end in .npy, got {str(path)!r}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save won't append .npy
        np.save(f, np.asarray(w), allow_pickle=False)



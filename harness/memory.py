"""Memory measurements: the bytes autograd saves for backward.

``tracemalloc`` does not see torch tensors, so deqbench measures two things itself: the peak
resident set of a cell's worker process (the runner), and, here, the peak of the bytes held
alive by autograd for backward, through ``torch.autograd.graph.saved_tensors_hooks``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def _storage_key(tensor: torch.Tensor) -> tuple[int, int] | None:
    """(address, bytes) of the storage behind a tensor; None if it has no real storage."""
    try:
        from torch._C._functorch import get_unwrapped, is_functorch_wrapped_tensor

        while is_functorch_wrapped_tensor(tensor):  # torch.func wraps what it saves
            tensor = get_unwrapped(tensor)
    except ImportError:  # pragma: no cover - functorch internals moved
        pass
    try:
        storage = tensor.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):
        return None


class SavedTensorMeter:
    """Live and peak bytes of the storages autograd holds for backward, each counted once.

    A saved tensor is counted from the moment autograd packs it until the graph node that
    holds it is freed; several saved views of one storage count once.
    """

    def __init__(self) -> None:
        self.live_bytes = 0
        self.peak_bytes = 0
        self.packed = 0
        self._references: dict[tuple[int, int], int] = {}

    def _pack(self, tensor: torch.Tensor):
        key = _storage_key(tensor)
        if key is None:
            return tensor
        self.packed += 1
        count = self._references.get(key, 0)
        self._references[key] = count + 1
        if count == 0:
            self.live_bytes += key[1]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return _Saved(tensor, key, self)

    def _release(self, key: tuple[int, int]) -> None:
        count = self._references.get(key, 0) - 1
        if count <= 0:
            self._references.pop(key, None)
            self.live_bytes -= key[1]
        else:
            self._references[key] = count

    @staticmethod
    def _unpack(saved):
        return saved.tensor if isinstance(saved, _Saved) else saved

    @contextmanager
    def measure(self):
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            yield self


class _Saved:
    """What autograd keeps instead of a saved tensor: the tensor, released on collection."""

    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor, key, meter):
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self):
        self.meter._release(self.key)


@contextmanager
def saved_tensor_bytes():
    """``with saved_tensor_bytes() as meter: ...``; then ``meter.peak_bytes``."""
    meter = SavedTensorMeter()
    with meter.measure():
        yield meter

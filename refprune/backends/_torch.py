"""PyTorch on the CPU (``torch``) or on a CUDA device (``torch-cuda``)."""

from __future__ import annotations

import json

import numpy as np

from ._base import Backend, Generator, shape_tuple


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        msg = "torch is not installed; pip install 'refprune[torch]'"
        raise RuntimeError(msg) from exc
    return torch


class TorchGenerator(Generator):
    """``torch.Generator`` on the backend's device."""

    def __init__(self, backend, seed):
        self._backend = backend
        self._torch = backend.torch
        self._gen = self._torch.Generator(device=backend.device)
        self._gen.manual_seed(int(seed))

    def uniform(self, shape, dtype="float64", low=0.0, high=1.0):
        out = self._torch.empty(shape_tuple(shape), dtype=self._backend.dtype(dtype), device=self._backend.device)
        return out.uniform_(low, high, generator=self._gen)

    def normal(self, shape, dtype="float64"):
        return self._torch.randn(
            shape_tuple(shape), generator=self._gen, dtype=self._backend.dtype(dtype), device=self._backend.device
        )

    def permutation(self, n):
        return self._torch.randperm(int(n), generator=self._gen, device=self._backend.device)

    def state(self):
        return json.dumps(self._gen.get_state().tolist())

    def set_state(self, state):
        self._gen.set_state(self._torch.tensor(json.loads(state), dtype=self._torch.uint8))


class TorchBackend(Backend):
    name = "torch"
    _device_type = "cpu"

    def __init__(self, device=None):
        self.torch = _import_torch()
        import array_api_compat.torch as xp

        self.xp = xp
        self.device = self.torch.device(device if device is not None else self._device_type)
        self._check_device()

    def _check_device(self):
        if self.device.type != "cpu":
            msg = f"the torch backend runs on the CPU; use 'torch-cuda' for device={self.device}"
            raise ValueError(msg)

    def limit_threads(self, n):
        limiter = super().limit_threads(n)
        self.torch.set_num_threads(n)
        return limiter

    def versions(self):
        return {"torch": self.torch.__version__, "torch_threads": self.torch.get_num_threads()}

    def asarray(self, host_array, dtype=None):
        host = np.asarray(host_array)
        if not host.flags.c_contiguous:  # np.ascontiguousarray would turn 0-d into 1-d
            host = host.copy()
        return self.torch.as_tensor(host, device=self.device).to(dtype=self.dtype(dtype) or _torch_dtype(self, host))

    def to_numpy(self, x):
        return x.detach().cpu().numpy()

    def _native_rng(self, seed):
        return TorchGenerator(self, seed)


def _torch_dtype(backend, host):
    return backend.torch.from_numpy(np.empty(0, dtype=host.dtype)).dtype


class TorchCudaBackend(TorchBackend):
    name = "torch-cuda"
    _device_type = "cuda"

    def _check_device(self):
        if not self.torch.cuda.is_available():
            msg = "torch-cuda needs a CUDA GPU, and torch sees none here"
            raise RuntimeError(msg)
        if self.device.type != "cuda":
            msg = f"the torch-cuda backend runs on a CUDA device, got device={self.device}"
            raise ValueError(msg)
        if self.device.index is None:  # arrays report cuda:N, and torch.device("cuda") != torch.device("cuda:0")
            self.device = self.torch.device("cuda", self.torch.cuda.current_device())

    def synchronize(self):
        self.torch.cuda.synchronize(self.device)

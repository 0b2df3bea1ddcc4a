"""This pod's own GPUs as NVML sees them, read in a worker thread so the server's event loop never waits."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["absent", "local_gpus", "read_gpus"]


def absent(reason: str) -> dict[str, Any]:
    """The answer when this pod has no NVML: no GPU, no driver, or no nvidia-ml-py."""
    return {"nvml": False, "reason": reason, "gpus": []}


def _text(value: Any) -> str:
    # nvidia-ml-py answers str; pynvml releases before 11 answered bytes.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _optional(read: Callable[[], Any]) -> Any:
    """A reading that some GPUs do not support, such as MIG instances and utilization: None then."""
    try:
        return read()
    except Exception:
        return None


def _device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    utilization = _optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    return {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
        "memory_total": None if memory is None else int(memory.total),
        "memory_used": None if memory is None else int(memory.used),
        "utilization_gpu": None if utilization is None else int(utilization.gpu),
        "temperature": _optional(
            lambda: int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        ),
    }


def _import_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def read_gpus(load: Callable[[], Any] = _import_pynvml) -> dict[str, Any]:
    """Every GPU this container sees, blocking while NVML answers; NVML missing or failing is an answer too.

    ``load`` returns the pynvml module; tests hand in a stand-in for a machine with GPUs.
    """
    try:
        nvml = load()
    except ImportError:
        return absent("nvidia-ml-py is not installed in this server's environment")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        # NVMLError_LibraryNotFound on a pod without the NVIDIA driver mounted, DriverNotLoaded and others
        return absent(f"NVML could not start: {exc}")
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = [_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except Exception as exc:
        return absent(f"NVML failed: {exc}")
    finally:
        _optional(nvml.nvmlShutdown)
    return {"nvml": True, "driver": driver, "gpus": gpus}


async def local_gpus(limit: float, load: Callable[[], Any] = _import_pynvml) -> dict[str, Any]:
    """:func:`read_gpus` in a worker thread, given up after ``limit`` seconds.

    A wedged GPU can keep an NVML call waiting for a long time. The thread is then left to finish on
    its own, since a thread cannot be stopped, and the caller gets an answer at once.
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(read_gpus, load), limit)
    except TimeoutError:
        return absent(f"NVML did not answer within {limit:g} s")

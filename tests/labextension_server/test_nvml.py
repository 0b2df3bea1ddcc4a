"""This pod's GPUs from NVML: a stand-in pynvml for a machine with GPUs, and every way NVML can be missing."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from labextension_server.nvml import local_gpus, read_gpus


class NVMLError(Exception):
    pass


class FakeNvml:
    """pynvml's calls over a list of devices; ``fail`` names a call that raises, ``unsupported`` those that
    raise per device as NVML does for readings a GPU lacks."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self, devices: list[dict[str, Any]], fail: str = "", unsupported: tuple[str, ...] = ()
    ) -> None:
        self.devices = devices
        self.fail = fail
        self.unsupported = unsupported
        self.shutdowns = 0

    def _call(self, name: str, value: Any) -> Any:
        if name == self.fail:
            raise NVMLError(f"{name} failed")
        if name in self.unsupported:
            raise NVMLError("Not Supported")
        return value

    def nvmlInit(self) -> None:
        self._call("nvmlInit", None)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._call("nvmlSystemGetDriverVersion", "550.54.15")

    def nvmlDeviceGetCount(self) -> int:
        return self._call("nvmlDeviceGetCount", len(self.devices))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.devices[index]

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> Any:
        return self._call("nvmlDeviceGetName", h["name"])

    def nvmlDeviceGetUUID(self, h: dict[str, Any]) -> Any:
        return self._call("nvmlDeviceGetUUID", h["uuid"])

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> Any:
        return self._call(
            "nvmlDeviceGetMemoryInfo", SimpleNamespace(total=h["total"], used=h["used"], free=0)
        )

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> Any:
        return self._call("nvmlDeviceGetUtilizationRates", SimpleNamespace(gpu=h["util"], memory=0))

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._call("nvmlDeviceGetTemperature", h["temp"])


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-1",
    "total": 85899345920,
    "used": 1024,
    "util": 37,
    "temp": 41,
}
# pynvml before 11 answered bytes
A100_BYTES = {
    "name": b"NVIDIA A100-SXM4-80GB",
    "uuid": b"GPU-2",
    "total": 10,
    "used": 0,
    "util": 0,
    "temp": 30,
}


def row(index: int, d: dict[str, Any], **over: Any) -> dict[str, Any]:
    name = d["name"].decode() if isinstance(d["name"], bytes) else d["name"]
    uuid = d["uuid"].decode() if isinstance(d["uuid"], bytes) else d["uuid"]
    base = {
        "index": index,
        "name": name,
        "uuid": uuid,
        "memory_total": d["total"],
        "memory_used": d["used"],
        "utilization_gpu": d["util"],
        "temperature": d["temp"],
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("nvml", "expected"),
    [
        pytest.param(FakeNvml([]), {"nvml": True, "driver": "550.54.15", "gpus": []}, id="driver-no-gpu"),
        pytest.param(
            FakeNvml([H100, A100_BYTES]),
            {"nvml": True, "driver": "550.54.15", "gpus": [row(0, H100), row(1, A100_BYTES)]},
            id="two-gpus-bytes-decoded",
        ),
        pytest.param(
            FakeNvml([H100], unsupported=("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature")),
            {
                "nvml": True,
                "driver": "550.54.15",
                "gpus": [row(0, H100, utilization_gpu=None, temperature=None)],
            },
            id="mig-readings-unsupported",
        ),
        pytest.param(
            FakeNvml([H100], unsupported=("nvmlDeviceGetMemoryInfo",)),
            {
                "nvml": True,
                "driver": "550.54.15",
                "gpus": [row(0, H100, memory_total=None, memory_used=None)],
            },
            id="memory-unsupported",
        ),
        pytest.param(
            FakeNvml([H100], fail="nvmlInit"),
            {"nvml": False, "reason": "NVML could not start: nvmlInit failed", "gpus": []},
            id="init-fails",
        ),
        pytest.param(
            FakeNvml([H100], fail="nvmlDeviceGetCount"),
            {"nvml": False, "reason": "NVML failed: nvmlDeviceGetCount failed", "gpus": []},
            id="count-fails",
        ),
        pytest.param(
            FakeNvml([H100], fail="nvmlDeviceGetName"),
            {"nvml": False, "reason": "NVML failed: nvmlDeviceGetName failed", "gpus": []},
            id="name-fails",
        ),
    ],
)
def test_read_gpus(nvml: FakeNvml, expected: dict[str, Any]) -> None:
    assert read_gpus(lambda: nvml) == expected
    # NVML is shut down again whenever it started
    assert nvml.shutdowns == (0 if nvml.fail == "nvmlInit" else 1)


def test_without_nvidia_ml_py_the_answer_says_so() -> None:
    def missing() -> Any:
        raise ModuleNotFoundError("No module named 'pynvml'")

    assert read_gpus(missing) == {
        "nvml": False,
        "reason": "nvidia-ml-py is not installed in this server's environment",
        "gpus": [],
    }


def test_a_wedged_nvml_is_given_up_after_the_timeout_without_blocking_the_loop() -> None:
    release = threading.Event()

    class Wedged(FakeNvml):
        def nvmlInit(self) -> None:
            release.wait(10)

    async def scenario() -> tuple[dict[str, Any], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        try:
            answer = await local_gpus(0.3, lambda: Wedged([H100]))
        finally:
            ticker.cancel()
            release.set()
        return answer, ticks

    answer, ticks = asyncio.run(scenario())
    assert answer == {"nvml": False, "reason": "NVML did not answer within 0.3 s", "gpus": []}
    # the loop went on while NVML hung in its thread
    assert ticks >= 10

"""Model FLOPs utilisation: achieved training FLOP/s over the device's peak.

On CUDA the peak is the vendor's dense bf16 figure (table below). On CPU there is no vendor
figure worth quoting, so we measure one: the best fp32 matmul rate torch reaches on this machine
with the threads the trainer uses, cached per machine so every run is judged against the same peak.
"""

import json
import os
import platform
import time

from miniseries.paths import atomic_write_text, cache_dir

# Dense bf16 tensor-core peaks (FLOP/s), vendor datasheets.
CUDA_PEAKS = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "RTX 4090": 165e12,
}


def cuda_peak(device_name: str) -> float | None:
    for key, peak in CUDA_PEAKS.items():  # longest keys first matter: "H100 NVL" before "H100"
        if key in device_name:
            return peak
    return None


def _cpu_key(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return f"{platform.node()}|{cpu}|threads={threads}"


def measure_cpu_peak(threads: int, size: int = 2048, seconds: float = 1.0) -> float:
    """Best fp32 matmul FLOP/s over a few timed bursts of size x size matmuls."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm up
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - t0))
        return best
    finally:
        torch.set_num_threads(old)


def cpu_peak(threads: int) -> float:
    """Measured once per machine and thread count, then read from the cache."""
    path = cache_dir() / "cpu_peak.json"
    table = {}
    if path.exists():
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = {}
    key = _cpu_key(threads)
    if key not in table:
        table[key] = measure_cpu_peak(threads)
        atomic_write_text(path, json.dumps(table, indent=1))
    return float(table[key])


def peak_flops(device: str, threads: int | None = None) -> tuple[float | None, str]:
    """(peak FLOP/s or None, where the number came from)."""
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(device)
        peak = cuda_peak(name)
        return peak, f"{name} bf16 datasheet" if peak else f"{name}: unknown peak"
    if device == "cpu":
        import torch

        threads = threads or torch.get_num_threads()
        if os.environ.get("MINISERIES_NO_PEAK"):
            return None, "not measured (MINISERIES_NO_PEAK)"
        return cpu_peak(threads), f"measured fp32 matmul peak, {threads} threads"
    return None, f"no peak known for {device}"

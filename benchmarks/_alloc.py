"""Counting the tensor allocations of a piece of code, and running the emulated CUDA kernels.

``AllocationTrace`` records every allocation and free of torch's CPU allocator while it is
active (``torch.profiler`` with ``profile_memory=True``) and answers: the peak of the bytes
allocated above the start (``peak``), the bytes still allocated at the end (``net``), and the
sizes of the allocations made inside each operator (``allocations_in``). Memory that a kernel
takes from ``malloc`` directly (``std::vector``) is not seen; the CPU accumulation kernel's
per-plane id lists are such memory, and are counted separately where it matters.

The CUDA kernels, compiled by cuda-emu (``../shared/tools/cuda-emu``), run on the CPU with
their unmodified torch adapters: every buffer the adapter allocates on a GPU is allocated here
as a CPU tensor of the same size, so ``AllocationTrace`` counts the CUDA path's allocations.
``use_emulated_kernels(lib, ops)`` makes the ``gaussocc`` ops ``ops`` run the emulated kernels
(``gaussocc_emu``) on CPU tensors, so the library's Python code and autograd run unchanged
around them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


class AllocationTrace:
    """``with AllocationTrace() as t: ...``; then ``t.peak``, ``t.net``, ``t.allocations_in()``.

    ``ops``: operator names whose calls to record in ``t.calls`` (name, start and end time, the
    inputs: tensor sizes or scalar values), in call order.
    """

    def __init__(self, ops: tuple[str, ...] = ()) -> None:
        self.ops = ops
        self.calls: list[dict] = []

    def __enter__(self) -> AllocationTrace:
        self._prof = profile(
            activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=bool(self.ops)
        )
        self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._prof.__exit__(*exc)
        events = []  # (time, bytes, enclosing operator names)
        self._ptrs: dict = {}

        def walk(node, stack):
            if node.name in self.ops:
                inputs = [getattr(x, "sizes", x) for x in node.extra_fields.inputs]
                self.calls.append(
                    {
                        "name": node.name,
                        "start": node.start_time_ns,
                        "end": node.end_time_ns,
                        "inputs": inputs,
                    }
                )
            if node.name == "[memory]":
                fields = node.extra_fields
                if str(fields.device) == "cpu":
                    events.append((node.start_time_ns, int(fields.alloc_size), tuple(stack)))
                    self._ptrs[(node.start_time_ns, int(fields.alloc_size))] = int(fields.ptr)
            for child in node.children:
                walk(child, [*stack, node.name])

        for root in self._prof.profiler.kineto_results.experimental_event_tree():
            walk(root, [])
        events.sort(key=lambda e: e[0])
        self.calls.sort(key=lambda c: c["start"])
        self.events = events
        total = peak = 0
        for _, size, _ in events:
            total += size
            peak = max(peak, total)
        self.peak = peak
        self.net = total

    def allocations_in(self, op_name: str) -> list[int]:
        """Sizes (bytes) of the allocations made inside operator ``op_name``, in order."""
        return [s for _, s, stack in self.events if s > 0 and op_name in stack]

    def live_at_peak(self) -> list[tuple[int, tuple[str, ...]]]:
        """The allocations alive at the peak: ``(bytes, operators it was allocated in)``."""
        live: dict = {}
        total = best = 0
        snapshot: list = []
        for t, size, stack in self.events:
            ptr = self._ptrs.get((t, size))
            if size > 0:
                live[ptr] = (size, stack)
            else:
                live.pop(ptr, None)
            total += size
            if total > best:
                best, snapshot = total, list(live.values())
        return sorted(snapshot, key=lambda x: -x[0])

    def levels(self) -> list[tuple[int, int]]:
        """``(time, bytes allocated above the start)`` after each event."""
        out, total = [], 0
        for t, size, _ in self.events:
            total += size
            out.append((t, total))
        return out


_LIBS: list = []


def load_emulated(lib: str | None = None) -> str:
    """Loads the emulated CUDA kernels (``build/cuda_emu/gaussocc_emu.so`` by default)."""
    path = Path(lib or "build/cuda_emu/gaussocc_emu.so")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: build it with "
            "../shared/tools/cuda-emu/build --python $(which python)"
        )
    torch.ops.load_library(str(path.resolve()))
    return str(path)


def use_emulated_kernels(ops: list[str], lib: str | None = None) -> str:
    """Runs the CPU dispatch of ``gaussocc::<op>`` on the emulated CUDA kernel of that op."""
    path = load_emulated(lib)
    library = torch.library.Library("gaussocc", "IMPL")
    _LIBS.append(library)
    for name in ops:
        emulated = getattr(torch.ops.gaussocc_emu, name)

        def kernel(*args, _op=emulated):
            return _op(*args)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
            library.impl(name, kernel, "CPU")
    return path

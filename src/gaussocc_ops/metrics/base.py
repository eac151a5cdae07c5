"""Base of the stateful metrics: additive count states, ``update/compute/reset/sync``."""

from __future__ import annotations

import torch
import torch.distributed as dist


class Metric:
    """A metric whose state is a set of additive count tensors (float64).

    ``update()`` adds a batch's counts to the local state; ``sync()`` sums the state over all
    ``torch.distributed`` ranks (every rank must call it; the local state is kept, so calling
    ``sync()`` again, or after more ``update()`` calls, gives the new global sum rather than
    counting twice); ``compute()`` turns the (synced if ``sync()`` was called since the last
    update, else local) counts into metric values; ``reset()`` zeroes everything.
    Counts are summed in float64, which is exact up to 2^53.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._names: list[str] = []
        self._synced: dict[str, torch.Tensor] | None = None

    def add_state(self, name: str, shape: tuple[int, ...]) -> None:
        self._names.append(name)
        setattr(self, name, torch.zeros(shape, dtype=torch.float64, device=self.device))

    def _add(self, name: str, value: torch.Tensor) -> None:
        state = getattr(self, name)
        state += value.detach().to(device=state.device, dtype=torch.float64)
        self._synced = None

    def states(self) -> dict[str, torch.Tensor]:
        """The counts ``compute()`` uses: synced ones after ``sync()``, else the local ones."""
        if self._synced is not None:
            return self._synced
        return {name: getattr(self, name) for name in self._names}

    def reset(self) -> None:
        for name in self._names:
            getattr(self, name).zero_()
        self._synced = None

    def sync(self, group: dist.ProcessGroup | None = None) -> None:
        """All-reduce (sum) the counts over ``group`` (default: the world). No-op when
        ``torch.distributed`` is not initialised. The states are packed into one flat tensor,
        so this is a single collective."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        local = [getattr(self, name) for name in self._names]
        flat = torch.cat([t.reshape(-1) for t in local])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        synced, offset = {}, 0
        for name, t in zip(self._names, local, strict=True):
            synced[name] = flat[offset : offset + t.numel()].view_as(t)
            offset += t.numel()
        self._synced = synced

    def to(self, device: torch.device | str) -> Metric:
        """Move the states (e.g. to the rank's CUDA device for NCCL)."""
        self.device = torch.device(device)
        for name in self._names:
            setattr(self, name, getattr(self, name).to(self.device))
        if self._synced is not None:
            self._synced = {k: v.to(self.device) for k, v in self._synced.items()}
        return self


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den == 0``."""
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


def mean_over(values: torch.Tensor, include: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``include`` (0 when nothing is included)."""
    n = include.sum()
    return torch.where(n > 0, (values * include).sum() / n.clamp(min=1), values.new_zeros(()))

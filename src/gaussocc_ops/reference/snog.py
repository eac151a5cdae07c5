"""Pure-Python oracle of the SNOG accept/reject step (ViPOcc Eq. 6)."""

from __future__ import annotations

import torch


def snog_accept(
    candidates: torch.Tensor, positions: torch.Tensor, count: torch.Tensor, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy non-overlap filter with the contract of ``torch.ops.gaussocc.snog_accept``.

    Args:
        candidates: ``[B, T, 2]`` int32 patch top-left corners ``(row, col)`` in drawing order;
            a negative row marks a candidate that fell outside the image.
        positions: ``[B, P, 2]`` int32 accepted top-left corners (the first ``count[b]`` rows).
        count: ``[B]`` int32 number of patches accepted so far.
        patch_size: patch edge ``l`` in pixels.

    Returns:
        Updated ``(positions, count)``: each image takes its candidates in order and accepts one
        when ``(r - r_i)^2 + (c - c_i)^2 >= 2 l^2`` for every accepted ``(r_i, c_i)``, until it
        holds ``P`` patches.
    """
    min_dist2 = 2 * patch_size * patch_size
    P = positions.shape[1]
    out_pos = positions.tolist()
    out_count = count.tolist()
    for b, image_candidates in enumerate(candidates.tolist()):
        accepted = [tuple(p) for p in out_pos[b][: out_count[b]]]
        for r, c in image_candidates:
            if len(accepted) >= P:
                break
            if r < 0:
                continue
            if all((r - ar) ** 2 + (c - ac) ** 2 >= min_dist2 for ar, ac in accepted):
                accepted.append((r, c))
        out_pos[b][: len(accepted)] = [list(p) for p in accepted]
        out_count[b] = len(accepted)
    return (
        torch.tensor(out_pos, dtype=torch.int32, device=positions.device).reshape(positions.shape),
        torch.tensor(out_count, dtype=torch.int32, device=count.device),
    )

"""Projection of sketch latents onto the manifold of training latents (Sketch2Anime, LLE-style).

A rough sketch's latent ``z`` is replaced by ``z* = sum_i w_i n_i`` where ``n_i`` are its K nearest
training latents and ``w`` solves the sum-to-one least-squares problem of locally linear embedding

    minimise ||z - sum_i w_i n_i||^2 + lambda ||w||^2   subject to   sum_i w_i = 1,

whose closed form is ``C w = 1`` (then ``w /= sum(w)``) with the local Gram matrix
``C = (N - z)(N - z)^T`` and ``lambda = reg * trace(C) / K`` (Roweis & Saul). ``strength`` t blends:
``z_t = t z* + (1 - t) z``.

``LatentBank`` and exact k-NN live in ``models/latent_bank.py`` (re-exported here).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from collections.abc import Collection, Sequence

import numpy as np
import torch

from .latent_bank import BANK_FORMAT_VERSION, IndexKind, LatentBank, _check_matrix, knn_exact

__all__ = ["BANK_FORMAT_VERSION", "DEFAULT_K", "DEFAULT_REG", "IndexKind", "LatentBank", "ProjectionDetails",
           "knn_exact", "project", "projection_weights"]

# The defaults of every projection: k nearest bank latents and the LLE regulariser (pipeline.json
# stores both per pipeline; training's projection_k defaults to DEFAULT_K too).
DEFAULT_K = 10
DEFAULT_REG = 1e-3


# ---------------------------------------------------------------------------------------------
# weights

def _prepare_neighbourhood(z: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Differences ``(N, K, D)`` in float64, scaled to unit mean squared norm (weights are scale free)."""
    diff = neighbours.to(torch.float64) - z.to(torch.float64)[:, None, :]
    scale = diff.pow(2).sum(dim=(1, 2)) / diff.shape[1]
    return diff / scale.clamp_min(1e-300).sqrt()[:, None, None]


def _affine_weights(diff: torch.Tensor, reg: float) -> torch.Tensor:
    """Closed-form sum-to-one weights for ``(N, K, D)`` differences -> ``(N, K)`` float64."""
    n, k, _ = diff.shape
    gram = diff @ diff.transpose(1, 2)
    trace = torch.diagonal(gram, dim1=1, dim2=2).sum(1)
    # reg*trace/K keeps C invertible when K > D or neighbours repeat; the absolute 1e-12 covers
    # C == 0 (every neighbour equals the query), where any sum-to-one w is exact -> uniform.
    ridge = reg * trace / k + 1e-12
    gram = gram + ridge[:, None, None] * torch.eye(k, dtype=gram.dtype)
    w = torch.linalg.solve(gram, torch.ones(n, k, 1, dtype=gram.dtype)).squeeze(-1)
    total = w.sum(1, keepdim=True)
    bad = ~torch.isfinite(w).all(1, keepdim=True) | (total.abs() < 1e-300)
    w = torch.where(bad, torch.full_like(w, 1.0 / k), w / torch.where(bad, torch.ones_like(total), total))
    return w


def _simplex_weights(diff: torch.Tensor, reg: float) -> torch.Tensor:
    """Non-negative sum-to-one weights, exactly, by one NNLS per query.

    Minimising ``q(w) = w^T (C + lambda I) w`` over the simplex equals solving the NNLS problem
    ``min_{v >= 0} ||A v - b||^2`` with ``A = [G^T; sqrt(lambda) I; 1^T]``, ``b = [0; 0; 1]``
    and setting ``w = v / sum(v)``: for ``v = s w`` the objective is ``s^2 q(w) + (s - 1)^2``, so
    its minimiser has the simplex-optimal ``w`` and ``s = 1 / (1 + q) > 0``.
    """
    from scipy.optimize import nnls

    n, k, d = diff.shape
    out = np.empty((n, k), dtype=np.float64)
    eye = np.eye(k)
    b = np.zeros(d + k + 1)
    b[-1] = 1.0
    for row in range(n):
        g = diff[row].numpy()  # (K, D)
        trace = float((g * g).sum())
        lam = reg * trace / k + 1e-12
        a = np.concatenate([g.T, np.sqrt(lam) * eye, np.ones((1, k))], axis=0)
        v, _ = nnls(a, b, maxiter=50 * k)
        total = v.sum()
        out[row] = v / total if total > 0 and np.isfinite(total) else np.full(k, 1.0 / k)
    return torch.from_numpy(out)


def _batched_weights(z: torch.Tensor, neighbours: torch.Tensor, reg: float, nonnegative: bool) -> torch.Tensor:
    diff = _prepare_neighbourhood(z, neighbours)
    return _simplex_weights(diff, reg) if nonnegative else _affine_weights(diff, reg)


def _check_reg(reg: float) -> None:
    if not (isinstance(reg, (int, float)) and np.isfinite(reg) and reg >= 0):
        raise ValueError(f"reg must be a finite number >= 0, got {reg!r}")


def projection_weights(
    z: torch.Tensor, neighbours: torch.Tensor, reg: float = DEFAULT_REG, nonnegative: bool = False
) -> torch.Tensor:
    """Reconstruction weights ``(K,)`` (sum 1) of ``z (D,)`` from ``neighbours (K, D)``.

    ``nonnegative=True`` adds ``w >= 0`` (z* then lies in the neighbours' convex hull), solved
    exactly by NNLS on an augmented system (see ``_simplex_weights``). Float32 result.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 1:
        raise ValueError(f"z must have shape (D,), got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    _check_matrix(z[None], "z")
    _check_matrix(neighbours, "neighbours", z.shape[0])
    if neighbours.shape[0] < 1:
        raise ValueError("need at least one neighbour")
    _check_reg(reg)
    return _batched_weights(z[None], neighbours[None], reg, nonnegative)[0].to(torch.float32)


@dataclass(frozen=True)
class ProjectionDetails:
    """What ``project`` did per query: bank rows ``indices (N, K)``, ``weights (N, K)``,
    ``distances (N, K)`` and the fully projected ``manifold (N, D)`` (strength 1). Leading N is
    dropped when the query was a single ``(D,)`` vector."""

    indices: torch.Tensor
    weights: torch.Tensor
    distances: torch.Tensor
    manifold: torch.Tensor


# Full precision under any autocast (a bf16 pipeline): the neighbours and weights must not depend on it.
@torch.autocast("cpu", enabled=False)
def project(
    z: torch.Tensor,
    bank: LatentBank | torch.Tensor,
    k: int = DEFAULT_K,
    strength: float = 1.0,
    reg: float = DEFAULT_REG,
    nonnegative: bool = False,
    return_details: bool = False,
    index: IndexKind = "exact",
    exclude: Sequence[Collection[int]] | None = None,
    candidates: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ProjectionDetails]:
    """Move ``z (N, D)`` or ``(D,)`` towards the bank's manifold: ``t z* + (1 - t) z``, ``t = strength``.

    ``z*`` is the sum-to-one combination of the ``k`` nearest bank latents (``k`` clamped to the
    bank size). ``strength`` is one number or one per query (an ``(N,)`` tensor). ``exclude``
    gives, per query, bank rows that may not be neighbours (training excludes an image's own
    sketches, or projection would hand back the latent unchanged). ``candidates`` gives, per
    query, the bank rows ``(C,)`` to take the ``k`` nearest from instead of the whole bank
    (inference's variations: a random subset of the nearest rows; not with ``exclude``). Returns
    the same shape and dtype as ``z``; with ``return_details`` also a :class:`ProjectionDetails`.
    """
    if not isinstance(bank, LatentBank):
        if not isinstance(bank, torch.Tensor):
            raise ValueError(f"bank must be a LatentBank or an (M, D) tensor, got {type(bank).__name__}")
        bank = LatentBank(bank, [str(i) for i in range(bank.shape[0] if bank.dim() == 2 else 0)])
    if not isinstance(z, torch.Tensor) or z.dim() not in (1, 2):
        raise ValueError(f"z must have shape (D,) or (N, D), got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    single = z.dim() == 1
    queries = z[None] if single else z
    _check_matrix(queries, "z", bank.dim)
    t = _check_strength(strength, queries.shape[0])
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_reg(reg)
    if len(bank) == 0:
        raise ValueError("the latent bank is empty")

    if candidates is not None:
        if exclude is not None:
            raise ValueError("pass exclude or candidates, not both (leave the excluded rows out of the candidates)")
        distances, indices = _knn_among(bank, queries.detach(), int(k), candidates)
    elif exclude is None:
        distances, indices = bank.knn(queries.detach(), int(k), index=index)
    else:
        distances, indices = _knn_excluding(bank, queries.detach(), int(k), exclude, index)
    neighbours = bank.latents[indices]  # (N, K, D)
    weights = _batched_weights(queries.detach(), neighbours, reg, nonnegative)
    manifold = (weights[:, :, None] * neighbours.to(torch.float64)).sum(1)
    if isinstance(t, float) and t == 0.0:
        result = queries.clone()  # exactly the raw latent
    else:
        t_rows = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1)
        result = (t_rows * manifold + (1.0 - t_rows) * queries.to(torch.float64)).to(z.dtype)
    if single:
        result = result[0]
    if not return_details:
        return result
    details = ProjectionDetails(indices=indices, weights=weights.to(torch.float32), distances=distances,
                                manifold=manifold.to(torch.float32))
    if single:
        details = ProjectionDetails(*(getattr(details, f)[0] for f in ("indices", "weights", "distances", "manifold")))
    return result, details


def _check_strength(strength: float | torch.Tensor, n: int) -> float | torch.Tensor:
    """One strength in [0, 1] (a float) or one per query (an ``(n,)`` float64 tensor)."""
    if isinstance(strength, torch.Tensor) and strength.dim() == 1:
        if strength.shape[0] != n or not bool(((strength >= 0) & (strength <= 1)).all()):
            raise ValueError(f"per-query strengths must be an ({n},) tensor of numbers in [0, 1], got {strength}")
        return strength.detach().to(torch.float64).cpu()
    if isinstance(strength, torch.Tensor) and strength.dim() == 0:
        strength = float(strength)
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, numbers.Real) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}")
    return float(strength)


def _knn_among(bank: LatentBank, queries: torch.Tensor, k: int,
               candidates: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest rows per query among that query's ``candidates`` (k clamped to the fewest candidates)."""
    if len(candidates) != queries.shape[0]:
        raise ValueError(f"candidates needs one set of rows per query ({queries.shape[0]}), got {len(candidates)}")
    rows = [torch.as_tensor(c, dtype=torch.long).reshape(-1) for c in candidates]
    k_avail = min([k] + [r.numel() for r in rows])
    if k_avail < 1:
        raise ValueError("a query has no candidate rows")
    if any(bool(((r < 0) | (r >= len(bank))).any()) for r in rows):
        raise ValueError(f"candidate rows must be in [0, {len(bank)})")
    out_d = torch.empty(queries.shape[0], k_avail, dtype=torch.float32)
    out_i = torch.empty(queries.shape[0], k_avail, dtype=torch.long)
    for row, cand in enumerate(rows):
        dist = (bank.latents[cand] - queries[row].to(torch.float32)).norm(dim=-1)
        order = torch.argsort(dist, stable=True)[:k_avail]
        out_d[row], out_i[row] = dist[order], cand[order]
    return out_d, out_i


def _knn_excluding(bank: LatentBank, queries: torch.Tensor, k: int, exclude: Sequence[Collection[int]],
                   index: IndexKind) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest rows per query, skipping that query's ``exclude`` rows (k clamped to what is left)."""
    if len(exclude) != queries.shape[0]:
        raise ValueError(f"exclude needs one collection of rows per query ({queries.shape[0]}), got {len(exclude)}")
    widest = max((len(rows) for rows in exclude), default=0)
    k_avail = min(k, len(bank) - widest)
    if k_avail < 1:
        raise ValueError("excluding these rows leaves no neighbours in the latent bank")
    distances, indices = bank.knn(queries, k_avail + widest, index=index)
    out_d = torch.empty(queries.shape[0], k_avail, dtype=distances.dtype)
    out_i = torch.empty(queries.shape[0], k_avail, dtype=indices.dtype)
    for row, rows in enumerate(exclude):
        keep = [j for j in range(indices.shape[1]) if int(indices[row, j]) not in rows][:k_avail]
        out_d[row], out_i[row] = distances[row, keep], indices[row, keep]
    return out_d, out_i

"""Projection of sketch latents onto the manifold of training latents (Sketch2Anime, LLE-style).

A rough sketch's latent ``z`` is replaced by ``z* = sum_i w_i n_i`` where ``n_i`` are its K nearest
training latents and ``w`` solves the sum-to-one least-squares problem of locally linear embedding

    minimise ||z - sum_i w_i n_i||^2 + lambda ||w||^2   subject to   sum_i w_i = 1,

whose closed form is ``C w = 1`` (then ``w /= sum(w)``) with the local Gram matrix
``C = (N - z)(N - z)^T`` and ``lambda = reg * trace(C) / K`` (Roweis & Saul). ``strength`` t blends:
``z_t = t z* + (1 - t) z``.

``LatentBank`` holds the training latents and their ids; it saves to ``<stem>.safetensors`` +
``<stem>.json`` and searches exactly (chunked matrix products) or, optionally, with faiss.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..checkpoint import CheckpointError, atomic_save_tensors, atomic_write_text, read_json, read_tensors

BANK_FORMAT_VERSION = 1
IndexKind = Literal["exact", "faiss"]
# The defaults of every projection: k nearest bank latents and the LLE regulariser (pipeline.json
# stores both per pipeline; training's projection_k defaults to DEFAULT_K too).
DEFAULT_K = 10
DEFAULT_REG = 1e-3
# Keeps one chunk's score matrix (queries x bank rows) at or under ~64 MB of float32.
_MAX_SCORE_ELEMENTS = 1 << 24


def _check_matrix(x: torch.Tensor, name: str, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (count, dim), got {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]}, expected {dim}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def knn_exact(
    queries: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536,
    key_sq_norms: torch.Tensor | None = None, keys_checked: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest ``keys (M, D)`` rows of each ``queries (Q, D)`` row (Euclidean).

    Ranks by ``||b||^2 - 2 a.b`` (``||a||^2`` does not change the order) one chunk of ``chunk_size``
    keys at a time, merging a running top-k, so memory stays bounded for big banks. The returned
    distances are then recomputed directly from the differences (no cancellation error) and
    re-sorted. ``k`` is clamped to ``M``. ``key_sq_norms (M,)``: the keys' squared norms, if the
    caller keeps them (a bank does: recomputing them per query costs more than the search).
    ``keys_checked``: the keys were validated already (a bank checks once, at construction; the
    finiteness scan of a big bank costs ten times the search itself). Returns ``(distances (Q, k), indices (Q, k) int64)``,
    nearest first.
    """
    _check_matrix(queries, "queries")
    if keys_checked:
        if keys.dim() != 2 or keys.shape[1] != queries.shape[1]:
            raise ValueError(f"bank latents have shape {tuple(keys.shape)}, queries have dimension {queries.shape[1]}")
    else:
        _check_matrix(keys, "bank latents", queries.shape[1])
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    n_keys = keys.shape[0]
    if n_keys == 0:
        raise ValueError("the latent bank is empty")
    k = min(k, n_keys)
    queries = queries.to(torch.float32)
    keys = keys.to(torch.float32)
    q_block = max(1, _MAX_SCORE_ELEMENTS // min(chunk_size, n_keys))
    if key_sq_norms is None:
        key_sq_norms = torch.linalg.vector_norm(keys, dim=1).square()

    all_idx = []
    for q0 in range(0, queries.shape[0], q_block):
        q = queries[q0 : q0 + q_block]
        best_score = q.new_empty((q.shape[0], 0))
        best_idx = torch.empty((q.shape[0], 0), dtype=torch.int64)
        for k0 in range(0, n_keys, chunk_size):
            chunk = keys[k0 : k0 + chunk_size]
            score = torch.addmm(key_sq_norms[None, k0 : k0 + chunk_size], q, chunk.T, alpha=-2.0)
            take = min(k, chunk.shape[0])
            s, i = torch.topk(score, take, dim=1, largest=False)
            best_score = torch.cat([best_score, s], dim=1)
            best_idx = torch.cat([best_idx, i + k0], dim=1)
            if best_score.shape[1] > k:
                best_score, pos = torch.topk(best_score, k, dim=1, largest=False)
                best_idx = torch.gather(best_idx, 1, pos)
        all_idx.append(best_idx)
    indices = torch.cat(all_idx, dim=0)
    distances = (keys[indices] - queries[:, None, :]).norm(dim=-1)
    distances, order = torch.sort(distances, dim=1, stable=True)
    return distances, torch.gather(indices, 1, order)


class LatentBank:
    """Training latents ``(M, D)`` float32 with one id (str) per row."""

    def __init__(self, latents: torch.Tensor, ids: list[str]) -> None:
        _check_matrix(latents, "latents")
        ids = [str(i) for i in ids]
        if len(ids) != latents.shape[0]:
            raise ValueError(f"{latents.shape[0]} latents but {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise ValueError("latent bank ids must be unique")
        self.latents = latents.detach().to(torch.float32).cpu().contiguous()
        self.ids = ids
        self._faiss_index = None
        self._sq_norm_cache: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return int(self.latents.shape[1])

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    # ---- files ------------------------------------------------------------------------------

    def save(self, path_stem: str | Path, storage: Literal["float32", "float16"] = "float32") -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` then ``<stem>.json`` (atomically each; JSON last).

        ``storage="float16"`` halves the file (a shipped model's bank); loading always gives float32.
        """
        if storage not in ("float32", "float16"):
            raise ValueError(f"storage must be 'float32' or 'float16', got {storage!r}")
        stem = Path(path_stem)
        tensor_path = stem.with_name(stem.name + ".safetensors")
        json_path = stem.with_name(stem.name + ".json")
        atomic_save_tensors(tensor_path, {"latents": self.latents.to(getattr(torch, storage))})
        atomic_write_text(json_path, json.dumps({
            "format_version": BANK_FORMAT_VERSION,
            "dim": self.dim,
            "count": len(self),
            "ids": self.ids,
        }))
        return tensor_path, json_path

    @classmethod
    def load(cls, path_stem: str | Path) -> "LatentBank":
        stem = Path(path_stem)
        json_path = stem.with_name(stem.name + ".json")
        meta = read_json(json_path)
        if not isinstance(meta, dict) or meta.get("format_version") != BANK_FORMAT_VERSION:
            raise CheckpointError(
                f"{json_path} is not a version-{BANK_FORMAT_VERSION} latent bank "
                f"(format_version {meta.get('format_version') if isinstance(meta, dict) else None!r})"
            )
        tensors = read_tensors(stem.with_name(stem.name + ".safetensors"))
        latents = tensors.get("latents")
        if latents is None or latents.dim() != 2:
            raise CheckpointError(f"{stem}.safetensors has no (count, dim) 'latents' tensor")
        ids = meta.get("ids")
        if not isinstance(ids, list) or len(ids) != latents.shape[0] or meta.get("dim") != latents.shape[1] \
                or meta.get("count") != latents.shape[0]:
            raise CheckpointError(
                f"{json_path} does not match its tensors (json: count {meta.get('count')}, dim {meta.get('dim')}; "
                f"tensors: {tuple(latents.shape)})"
            )
        try:
            return cls(latents, ids)
        except ValueError as exc:
            raise CheckpointError(f"{stem}: {exc}") from None

    # ---- search -----------------------------------------------------------------------------

    def _sq_norms(self) -> torch.Tensor:
        if self._sq_norm_cache is None:
            self._sq_norm_cache = torch.linalg.vector_norm(self.latents, dim=1).square()
        return self._sq_norm_cache

    def knn(
        self, queries: torch.Tensor, k: int, chunk_size: int = 65536, index: IndexKind = "exact"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``queries (Q, D)`` -> ``(distances (Q, k'), indices (Q, k'))``, ``k' = min(k, M)``, nearest first.

        ``index="exact"``: chunked brute force (:func:`knn_exact`). ``index="faiss"``: an HNSW
        graph index (approximate, built once per bank) from the optional ``faiss-cpu`` package.
        """
        if index == "exact":
            return knn_exact(queries, self.latents, k, chunk_size, self._sq_norms(), keys_checked=True)
        if index == "faiss":
            return self._knn_faiss(queries, k)
        raise ValueError(f"unknown index {index!r}: use 'exact' or 'faiss'")

    def _knn_faiss(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            import faiss  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError(
                'index="faiss" needs the optional faiss package: pip install "sketch2anime[faiss]" '
                '(or use index="exact")'
            ) from None
        _check_matrix(queries, "queries", self.dim)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, len(self))
        if self._faiss_index is None:
            index = faiss.IndexHNSWFlat(self.dim, 32)
            index.hnsw.efConstruction = 80
            index.add(np.ascontiguousarray(self.latents.numpy(), dtype=np.float32))
            self._faiss_index = index
        self._faiss_index.hnsw.efSearch = max(64, 2 * k)
        sq, idx = self._faiss_index.search(np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32), k)
        if (idx < 0).any():  # graph search found fewer than k: fall back to exact for safety
            return knn_exact(queries, self.latents, k, key_sq_norms=self._sq_norms(), keys_checked=True)
        indices = torch.from_numpy(idx.astype(np.int64))
        distances = torch.from_numpy(np.sqrt(np.maximum(sq, 0.0)).astype(np.float32))
        return distances, indices


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

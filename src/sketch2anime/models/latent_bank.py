"""The latent bank: training latents and their ids, with exact (or faiss) k-nearest-neighbour search.

``LatentBank`` saves to ``<stem>.safetensors`` + ``<stem>.json`` and searches exactly (chunked
matrix products) or, optionally, with faiss. The projection that uses it is ``models/projection.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..checkpoint import CheckpointError, atomic_save_tensors, atomic_write_text, read_json, read_tensors

BANK_FORMAT_VERSION = 1
BANK_STORAGES = ("float32", "float16", "int8")
IndexKind = Literal["exact", "faiss"]
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


# Under a bf16 autocast the ranking matmul would round the distances and change the neighbours.
@torch.autocast("cpu", enabled=False)
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

    def save(self, path_stem: str | Path, storage: Literal["float32", "float16", "int8"] = "float32"
             ) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` then ``<stem>.json`` (atomically each; JSON last).

        ``storage="float16"`` halves the file (a shipped model's bank); ``"int8"`` quarters it, each
        row scaled by its largest absolute value / 127 (error at most 0.4 % of that value, far below
        the distances between neighbours). Loading always gives float32.
        """
        if storage not in BANK_STORAGES:
            raise ValueError(f"storage must be one of {', '.join(BANK_STORAGES)}, got {storage!r}")
        stem = Path(path_stem)
        tensor_path = stem.with_name(stem.name + ".safetensors")
        json_path = stem.with_name(stem.name + ".json")
        if storage == "int8":
            scale = self.latents.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            quantised = torch.round(self.latents / scale[:, None]).clamp(-127, 127).to(torch.int8)
            atomic_save_tensors(tensor_path, {"latents_int8": quantised, "row_scale": scale})
        else:
            atomic_save_tensors(tensor_path, {"latents": self.latents.to(getattr(torch, storage))})
        atomic_write_text(json_path, json.dumps({
            "format_version": BANK_FORMAT_VERSION,
            "dim": self.dim,
            "count": len(self),
            "storage": storage,
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
        if latents is None and "latents_int8" in tensors:
            quantised, scale = tensors["latents_int8"], tensors.get("row_scale")
            if quantised.dtype != torch.int8 or quantised.dim() != 2 or scale is None \
                    or tuple(scale.shape) != (quantised.shape[0],) or not bool(torch.isfinite(scale).all()):
                raise CheckpointError(f"{stem}.safetensors: an int8 bank needs latents_int8 (count, dim) int8 and "
                                      "a finite row_scale (count,)")
            latents = quantised.float() * scale.float()[:, None]
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

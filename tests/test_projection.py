"""Latent bank, exact k-NN and the LLE-style manifold projection."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from sketch2anime.checkpoint import CheckpointError
from sketch2anime.models.projection import LatentBank, knn_exact, project, projection_weights


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def make_bank(m: int = 200, d: int = 16, seed: int = 0) -> LatentBank:
    return LatentBank(randn(m, d, seed=seed), [f"img{i:04d}" for i in range(m)])


def affine_hull_residual(point: torch.Tensor, vertices: torch.Tensor) -> float:
    """Distance from ``point (D,)`` to the affine hull of ``vertices (K, D)`` (float64 lstsq)."""
    p, v = point.double(), vertices.double()
    basis = (v[1:] - v[0]).T  # (D, K-1)
    coef = torch.linalg.lstsq(basis, (p - v[0])[:, None]).solution
    return float((basis @ coef - (p - v[0])[:, None]).norm())


# ---------------------------------------------------------------------------------------------
# weights

def test_weights_sum_to_one():
    z = randn(16, seed=1)
    nbrs = randn(10, 16, seed=2)
    w = projection_weights(z, nbrs)
    assert w.shape == (10,)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-5)


def test_exact_recovery_of_affine_combination():
    nbrs = randn(6, 32, seed=3)
    true_w = torch.tensor([0.5, -0.2, 0.3, 0.1, 0.2, 0.1])
    z = true_w @ nbrs
    w = projection_weights(z, nbrs, reg=1e-9)
    assert torch.allclose(w, true_w, atol=1e-4)
    # Through project(): the bank holds exactly these neighbours.
    bank = LatentBank(nbrs, [str(i) for i in range(6)])
    z_star = project(z, bank, k=6, reg=1e-9)
    assert torch.allclose(z_star, z, atol=1e-4)
    # With the default regulariser it is still close (bias of order reg).
    assert torch.allclose(project(z, bank, k=6), z, atol=0.05 * float(z.norm()))


def test_k_larger_than_bank():
    bank = make_bank(m=5, d=8)
    z = randn(8, seed=9)
    out, details = project(z, bank, k=50, return_details=True)
    assert details.indices.shape == (5,)
    assert sorted(details.indices.tolist()) == list(range(5))
    assert float(details.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(out).all()
    dist, idx = bank.knn(z[None], k=50)
    assert dist.shape == idx.shape == (1, 5)


def test_duplicate_latents_in_bank():
    row = randn(8, seed=4)
    dup = LatentBank(torch.stack([row] * 6 + [randn(8, seed=5)]), [str(i) for i in range(7)])
    for z in (row.clone(), randn(8, seed=6)):
        for nonneg in (False, True):
            out, details = project(z, dup, k=6, nonnegative=nonneg, return_details=True)
            assert torch.isfinite(out).all() and torch.isfinite(details.weights).all()
            assert float(details.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    # Query equal to the duplicated latent: C == 0, any weights are exact -> z* == z.
    assert torch.allclose(project(row, dup, k=6), row, atol=1e-6)
    w = projection_weights(row, torch.stack([row] * 4), reg=0.0)
    assert torch.allclose(w, torch.full((4,), 0.25))


def test_strength_zero_is_identity_and_one_in_affine_hull():
    bank = make_bank()
    z = randn(3, 16, seed=7) * 2
    assert torch.equal(project(z, bank, k=5, strength=0.0), z)
    full, details = project(z, bank, k=5, strength=1.0, return_details=True)
    for i in range(3):
        neighbours = bank.latents[details.indices[i]]
        assert affine_hull_residual(full[i], neighbours) < 1e-4
        assert torch.allclose(full[i], details.weights[i] @ neighbours, atol=1e-5)
    # Far from the bank, projection moves the latent (and half strength goes half way).
    assert (full - z).norm(dim=1).min() > 1.0
    half = project(z, bank, k=5, strength=0.5)
    assert torch.allclose(half, 0.5 * full + 0.5 * z, atol=1e-5)


def test_nonnegative_weights():
    bank = make_bank()
    z = randn(4, 16, seed=8)
    out, details = project(z, bank, k=8, nonnegative=True, return_details=True)
    assert (details.weights >= 0).all()
    assert torch.allclose(details.weights.sum(1), torch.ones(4), atol=1e-5)
    # Unconstrained weights for such queries do go negative, so the constraint is active...
    _, free = project(z, bank, k=8, return_details=True)
    assert (free.weights < 0).any()
    # ...and the constrained fit cannot beat the unconstrained one.
    assert ((out - z).norm(dim=1) >= (free.manifold - z).norm(dim=1) - 1e-4).all()


def test_nonnegative_recovers_convex_combination():
    nbrs = randn(5, 20, seed=10)
    true_w = torch.tensor([0.1, 0.4, 0.0, 0.3, 0.2])
    w = projection_weights(true_w @ nbrs, nbrs, reg=1e-9, nonnegative=True)
    assert torch.allclose(w, true_w, atol=1e-4)


def test_batched_matches_single():
    bank = make_bank()
    z = randn(4, 16, seed=11)
    batched = project(z, bank, k=7)
    for i in range(4):
        assert torch.allclose(project(z[i], bank, k=7), batched[i], atol=1e-6)


def test_bad_inputs():
    bank = make_bank(d=16)
    z = randn(16)
    for strength in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            project(z, bank, strength=strength)
    with pytest.raises(ValueError, match="dimension"):
        project(randn(8), bank)
    with pytest.raises(ValueError, match="shape"):
        project(randn(2, 3, 16), bank)
    with pytest.raises(ValueError, match="k must"):
        project(z, bank, k=0)
    with pytest.raises(ValueError, match="NaN"):
        project(torch.full((16,), float("nan")), bank)
    with pytest.raises(ValueError, match="dimension"):
        projection_weights(z, randn(4, 8))
    with pytest.raises(ValueError, match="reg"):
        projection_weights(z, randn(4, 16), reg=-1.0)
    with pytest.raises(ValueError, match="ids"):
        LatentBank(randn(3, 4), ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        LatentBank(randn(2, 4), ["a", "a"])
    with pytest.raises(ValueError, match="index"):
        bank.knn(z[None], 3, index="annoy")


# ---------------------------------------------------------------------------------------------
# search

@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_knn_matches_brute_force(chunk_size):
    keys = randn(300, 12, seed=12) * 3 + 5  # offset: large norms stress ||a||^2 - 2ab + ||b||^2
    queries = randn(9, 12, seed=13) * 3 + 5
    dist, idx = knn_exact(queries, keys, k=10, chunk_size=chunk_size)
    ref = torch.cdist(queries.double(), keys.double()).topk(10, largest=False)
    assert torch.equal(idx, ref.indices)
    assert torch.allclose(dist.double(), ref.values, atol=1e-4)
    assert (dist[:, 1:] >= dist[:, :-1]).all()


def test_faiss_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    bank = make_bank()
    with pytest.raises(ValueError, match=r"sketch2anime\[faiss\]"):
        bank.knn(randn(1, 16), 3, index="faiss")


def test_faiss_agrees_with_exact():
    pytest.importorskip("faiss")
    bank = make_bank(m=500)
    queries = randn(20, 16, seed=14)
    _, exact = bank.knn(queries, 5)
    _, approx = bank.knn(queries, 5, index="faiss")
    assert (approx[:, 0] == exact[:, 0]).float().mean() >= 0.9


# ---------------------------------------------------------------------------------------------
# files

def test_bank_save_load_round_trip(tmp_path):
    bank = make_bank(m=30, d=8)
    tensors_path, json_path = bank.save(tmp_path / "sub" / "latent_bank")
    assert tensors_path.name == "latent_bank.safetensors" and json_path.name == "latent_bank.json"
    meta = json.loads(json_path.read_text())
    assert meta["count"] == 30 and meta["dim"] == 8 and meta["format_version"] == 1
    loaded = LatentBank.load(tmp_path / "sub" / "latent_bank")
    assert loaded.ids == bank.ids
    assert torch.equal(loaded.latents, bank.latents)
    assert loaded.latents.dtype == torch.float32


def test_bank_half_precision_storage(tmp_path):
    bank = make_bank(m=30, d=8)
    full, _ = bank.save(tmp_path / "full")
    half, _ = bank.save(tmp_path / "half", storage="float16")
    assert half.stat().st_size < 0.75 * full.stat().st_size
    loaded = LatentBank.load(tmp_path / "half")
    assert loaded.latents.dtype == torch.float32
    assert torch.allclose(loaded.latents, bank.latents, rtol=1e-3, atol=1e-3)
    assert not torch.equal(loaded.latents, bank.latents)  # it really was rounded
    with pytest.raises(ValueError, match="storage"):
        bank.save(tmp_path / "x", storage="bfloat8")


def test_bank_int8_storage_keeps_neighbours_and_projections(tmp_path):
    torch.manual_seed(0)
    bank = LatentBank(torch.randn(400, 64) * 3, [f"r{i}" for i in range(400)])
    full, _ = bank.save(tmp_path / "full")
    small, _ = bank.save(tmp_path / "small", storage="int8")
    assert small.stat().st_size < 0.3 * full.stat().st_size
    loaded = LatentBank.load(tmp_path / "small")
    assert loaded.latents.dtype == torch.float32 and loaded.ids == bank.ids
    error = (loaded.latents - bank.latents).abs().amax(dim=1)
    assert bool((error <= bank.latents.abs().amax(dim=1) / 254 + 1e-6).all())  # half a step of 1/127
    assert not torch.equal(loaded.latents, bank.latents)  # it really was rounded
    queries = torch.randn(20, 64) * 3
    _, want = bank.knn(queries, 5)
    _, got = loaded.knn(queries, 5)
    assert (want == got).float().mean() > 0.95
    torch.testing.assert_close(project(queries, loaded, k=5, strength=1.0), project(queries, bank, k=5, strength=1.0),
                               atol=0.05, rtol=0.0)


def test_bank_int8_damaged_scale_is_refused(tmp_path):
    bank = make_bank(m=6, d=4)
    tensor_path, _ = bank.save(tmp_path / "q", storage="int8")
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(tensor_path))
    tensors["row_scale"] = tensors["row_scale"][:3].contiguous()
    save_file(tensors, str(tensor_path))
    with pytest.raises(CheckpointError, match="row_scale"):
        LatentBank.load(tmp_path / "q")


def test_bank_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        LatentBank.load(tmp_path / "nothing")
    bank = make_bank(m=4, d=3)
    _, json_path = bank.save(tmp_path / "b")
    meta = json.loads(json_path.read_text())
    meta["count"] = 5
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match"):
        LatentBank.load(tmp_path / "b")


def test_excluded_rows_are_never_neighbours_and_strengths_per_row() -> None:
    from sketch2anime.models.projection import LatentBank, project

    g = torch.Generator().manual_seed(0)
    latents = torch.randn(30, 6, generator=g)
    bank = LatentBank(latents, [f"r{i}" for i in range(30)])
    queries = latents[:3].clone()
    # Without exclusion, a query that is a bank row projects onto itself.
    same = project(queries, bank, k=4, strength=1.0)
    assert torch.allclose(same, queries, atol=5e-3)
    out, details = project(queries, bank, k=4, strength=1.0, exclude=[{0}, {1, 5}, set()], return_details=True)
    assert 0 not in details.indices[0].tolist() and not {1, 5} & set(details.indices[1].tolist())
    assert float((out[0] - queries[0]).norm()) > 0.1  # it had to move to other rows
    assert torch.allclose(out[2], queries[2], atol=5e-3)  # nothing excluded for the third
    # Per-row strengths: 0 keeps the latent, 1 gives the manifold point, 0.5 lies half way.
    strengths = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    mixed, d = project(queries, bank, k=4, strength=strengths, exclude=[{0}, {1}, {2}], return_details=True)
    assert torch.allclose(mixed[0], queries[0])
    assert torch.allclose(mixed[1], d.manifold[1], atol=1e-5)
    assert torch.allclose(mixed[2], 0.5 * (queries[2] + d.manifold[2]), atol=1e-5)
    with pytest.raises(ValueError, match="one collection of rows per query"):
        project(queries, bank, k=4, exclude=[{0}])
    with pytest.raises(ValueError, match="per-query strengths"):
        project(queries, bank, k=4, strength=torch.tensor([0.1, 2.0, 0.3]))


def test_candidates_restrict_the_neighbours_to_a_subset() -> None:
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(40, 6, generator=g)
    bank = LatentBank(latents, [f"r{i}" for i in range(40)])
    queries = torch.randn(2, 6, generator=g)
    subsets = [torch.tensor([3, 7, 11, 20, 31]), torch.tensor([0, 1, 2, 39])]
    out, details = project(queries, bank, k=3, strength=0.6, candidates=subsets, return_details=True)
    for row, subset in enumerate(subsets):
        assert set(details.indices[row].tolist()) <= set(subset.tolist())
        # The same as projecting onto a bank that holds only those rows.
        alone = project(queries[row], latents[subset], k=3, strength=0.6)
        assert torch.allclose(out[row], alone, atol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        project(queries, bank, k=3, candidates=subsets, exclude=[{0}, {1}])
    with pytest.raises(ValueError, match="one set of rows per query"):
        project(queries, bank, k=3, candidates=subsets[:1])
    with pytest.raises(ValueError, match="candidate rows must be in"):
        project(queries, bank, k=3, candidates=[torch.tensor([0, 40]), torch.tensor([1])])

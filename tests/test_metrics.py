"""Evaluation metrics: SSIM/PSNR/L1, FID/KID, CIELAB + CIEDE2000, hint adherence, line fidelity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from conftest import draw_face
from sketch2anime.data.image_io import rgb_to_tensor
from sketch2anime.evaluation.color import ciede2000, hint_adherence, rgb_to_lab
from sketch2anime.evaluation.fid import (
    HedVggFeatureExtractor,
    InceptionFeatureExtractor,
    feature_statistics,
    fid_kid,
    frechet_distance_of_samples,
    paired_fid_difference,
    frechet_distance,
    kernel_inception_distance,
    make_feature_extractor,
    paired_kid_difference,
)
from sketch2anime.evaluation.lines import chamfer_distance, edge_map, line_fidelity, line_fscore, sketch_ink
from sketch2anime.evaluation.ssim import l1, psnr, ssim
from sketch2anime.models.hed import HED, HEDConfig
from sketch2anime.models.inception import InceptionConfig, InceptionV3FID


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The machine's cores are shared; one thread avoids oversubscription stalls in small convs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def faces(n: int, size: int = 64, offset: int = 0) -> torch.Tensor:
    return torch.stack([rgb_to_tensor(np.asarray(draw_face(size, offset + i))) for i in range(n)])


# ---------------------------------------------------------------------------------------------
# SSIM / PSNR / L1

def test_identical_images_give_perfect_scores():
    x = faces(3)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.equal(l1(x, x), torch.zeros(3, dtype=torch.float64))


def test_ssim_matches_scikit_image_on_random_images():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 3, 37, 52, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 37, 52, generator=g) * torch.tensor([0.05, 0.2, 0.5, 1.0]).view(4, 1, 1, 1)
    b = (a + noise).clamp(-1, 1)
    ours = ssim(a, b)
    for i in range(4):
        x = ((a[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        y = ((b[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        ref = skimage_metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1, channel_axis=-1)
        assert abs(float(ours[i]) - ref) < 1e-4
    assert ours[0] > ours[1] > ours[2] > ours[3]  # more noise, less similar


def test_psnr_and_l1_known_values():
    a = torch.zeros(2, 3, 16, 16)
    b = a + 0.2  # 0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(l1(a, b), torch.full((2,), 0.1, dtype=torch.float64), atol=1e-6)


def test_reconstruction_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))


# ---------------------------------------------------------------------------------------------
# Fréchet distance, KID

def test_frechet_distance_identical_stats_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = feature_statistics(rng.normal(size=(200, 16)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    for method in ("sqrtm", "eigh"):
        got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
        assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_methods_agree_on_full_covariances_and_handle_singular_ones():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 12)), rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    stats = (*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance(*stats, method="sqrtm") == pytest.approx(frechet_distance(*stats, method="eigh"), rel=1e-7)
    # Fewer samples than dimensions: rank-deficient covariances must still give a finite number.
    few_a, few_b = feature_statistics(rng.random((6, 40))), feature_statistics(rng.random((6, 40)) + 0.5)
    value = frechet_distance(*few_a, *few_b)
    assert math.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="equal length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_frechet_distance_of_samples_equals_the_statistics_route():
    rng = np.random.default_rng(5)
    # fewer samples than dimensions (the validation set's case) and more, unequal counts
    for (n1, n2, d) in ((30, 25, 80), (200, 150, 12)):
        a = rng.normal(size=(n1, d))
        b = rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
        expected = frechet_distance(*feature_statistics(a), *feature_statistics(b), method="eigh")
        assert frechet_distance_of_samples(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance_of_samples(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_of_samples(a, a + 2.0) == pytest.approx(4.0 * a.shape[1], rel=1e-8)  # a mean shift only
    with pytest.raises(ValueError, match="equal width"):
        frechet_distance_of_samples(a, b[:, :5])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance_of_samples(a[:1], b)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_of_samples(np.full_like(a, np.nan), a)


def test_paired_fid_difference_says_which_model_is_further():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 5))
    close = real + rng.normal(scale=0.1, size=real.shape)
    far = real + rng.normal(scale=0.1, size=real.shape) + 1.0
    out = paired_fid_difference(real, close, far, draws=200, rng=3)
    assert out["difference"] == pytest.approx(frechet_distance_of_samples(real, far)
                                              - frechet_distance_of_samples(real, close))
    # further in every draw: the whole interval lies above 0
    assert out["low"] > 0 and out["share_below"] == 0.0 and out["low"] <= out["difference"] <= out["high"]
    # the order matters: the close model against the far one is below it in every draw
    flipped = paired_fid_difference(real, far, close, draws=200, rng=3)
    assert flipped["high"] < 0 and flipped["share_below"] == 1.0
    # a model against itself: exactly 0 in every draw
    same = paired_fid_difference(real, close, close, draws=50, rng=0)
    assert same["low"] == same["high"] == same["difference"] == 0.0
    with pytest.raises(ValueError, match="one shape"):
        paired_fid_difference(real, close[:10], far)
    with pytest.raises(ValueError, match="draws"):
        paired_fid_difference(real, close, far, draws=1)


def test_kid_near_zero_for_same_distribution_and_larger_when_shifted():
    rng = np.random.default_rng(3)
    f = rng.random((300, 32))
    same_mean, _ = kernel_inception_distance(f, f, subsets=20, subset_size=100, rng=0)
    other = rng.random((300, 32))
    fresh_mean, _ = kernel_inception_distance(f, other, subsets=20, subset_size=100, rng=0)
    shifted_mean, shifted_std = kernel_inception_distance(f, f + 0.3, subsets=20, subset_size=100, rng=0)
    assert abs(same_mean) < 0.01 and abs(fresh_mean) < 0.01
    assert shifted_mean > 10 * max(abs(same_mean), abs(fresh_mean), 1e-4)
    assert shifted_std >= 0
    # subset_size larger than the sets is clamped, and the result is reproducible from a seed.
    assert kernel_inception_distance(f[:50], other[:40], subsets=3, rng=7) == \
        kernel_inception_distance(f[:50], other[:40], subsets=3, rng=np.random.default_rng(7))


def test_paired_kid_difference_matches_kid_and_says_which_model_is_further():
    """The point estimate is KID(b) − KID(a) exactly; the interval sits above 0 when b is further from
    the reals, below when the roles swap, and around 0 for two draws of the same distribution."""
    rng = np.random.default_rng(5)
    real = rng.random((60, 16))
    near, far = rng.random((60, 16)), rng.random((60, 16)) + 0.25
    kid = {name: kernel_inception_distance(f, real, subsets=1, subset_size=1000, rng=0)[0]
           for name, f in (("near", near), ("far", far))}
    worse = paired_kid_difference(real, near, far, draws=300, rng=0)
    assert worse["difference"] == pytest.approx(kid["far"] - kid["near"])
    assert 0 < worse["low"] < worse["difference"] < worse["high"]
    better = paired_kid_difference(real, far, near, draws=300, rng=0)
    assert better["difference"] == pytest.approx(-worse["difference"]) and better["high"] < 0
    same = paired_kid_difference(real, near, rng.random((60, 16)), draws=300, rng=0)
    assert same["low"] < 0 < same["high"]
    identical = paired_kid_difference(real, near, near, draws=20, rng=0)
    assert identical["difference"] == 0 and identical["low"] == 0 == identical["high"]
    with pytest.raises(ValueError, match="paired"):
        paired_kid_difference(real, near, far[:50])


def test_fid_kid_dict():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(120, 8))
    result = fid_kid(real, real + 2.0, rng=0, kid_subsets=5, kid_subset_size=50)
    assert result["fid"] == pytest.approx(8 * 4.0, rel=1e-6)  # pure mean shift: ||2·1||²
    assert result["kid_mean"] > 0 and result["n_real"] == 120 and result["kid_subset_size"] == 50
    assert result["fid_full_rank"] is True
    assert fid_kid(real, real, rng=0, kid_subsets=5)["fid"] == pytest.approx(0.0, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# feature extractors (tiny random networks: numbers are meaningless, plumbing is not)

def tiny_inception_extractor(batch_size: int = 4) -> InceptionFeatureExtractor:
    torch.manual_seed(0)
    model = InceptionV3FID(InceptionConfig(width=0.0625, input_size=75))
    return InceptionFeatureExtractor(model, pretrained=False, batch_size=batch_size)


def tiny_hed_extractor() -> HedVggFeatureExtractor:
    torch.manual_seed(0)
    return HedVggFeatureExtractor(HED(HEDConfig(widths=(4, 4, 8, 8, 8))), batch_size=3, size=32)


@pytest.mark.parametrize("make", [tiny_inception_extractor, tiny_hed_extractor])
def test_extractor_features_and_fid_of_identical_images(make):
    extractor = make()
    images = faces(6)
    features = extractor(images)
    assert features.shape == (6, extractor.feature_dim) and features.dtype == np.float64
    assert np.isfinite(features).all() and not extractor.comparable_with_published
    # Batching does not change the features.
    np.testing.assert_allclose(extractor.extract([images[:4], images[4:]]), features, rtol=1e-5, atol=1e-6)
    same = fid_kid(features, extractor(images.clone()), rng=0, kid_subsets=3)
    different = fid_kid(features, extractor(-images), rng=0, kid_subsets=3)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert different["fid"] > 1e-3
    assert extractor.describe()["extractor"] == extractor.name
    if isinstance(extractor, HedVggFeatureExtractor):
        assert extractor.describe()["input_size"] == 32


def test_extractor_rejects_wrong_range_and_shape():
    extractor = tiny_hed_extractor()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        extractor(torch.full((1, 3, 16, 16), 255.0))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        extractor(torch.zeros(1, 1, 16, 16))


def test_make_feature_extractor_names_and_weights(tmp_path):
    with pytest.raises(ValueError, match="unknown feature extractor"):
        make_feature_extractor("clip")
    with pytest.raises(ValueError, match="pt_inception-2015-12-05"):
        make_feature_extractor("inception")
    from sketch2anime.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError):
        make_feature_extractor("hed-vgg", tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="not found"):
        make_feature_extractor("inception", tmp_path / "absent.pth")


# ---------------------------------------------------------------------------------------------
# colour

SHARMA_2005 = [  # L1, a1, b1, L2, a2, b2, ΔE00 (Sharma, Wu & Dalal 2005, Table 1)
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_sharma_test_data_both_ways():
    data = np.array(SHARMA_2005)
    assert data.shape == (34, 7)
    np.testing.assert_allclose(ciede2000(data[:, :3], data[:, 3:6]), data[:, 6], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ciede2000(data[:, 3:6], data[:, :3]), data[:, 6], atol=1e-4, rtol=0)
    assert ciede2000(data[0, :3], data[0, :3]) == 0.0


def test_rgb_to_lab_reference_points_and_scikit_image():
    np.testing.assert_allclose(rgb_to_lab(np.array([255, 255, 255], np.uint8)), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(rgb_to_lab(np.array([0.0, 0.0, 0.0])), [0, 0, 0], atol=1e-9)
    # sRGB red, a well-known reference value.
    np.testing.assert_allclose(rgb_to_lab(np.array([255, 0, 0], np.uint8)), [53.24, 80.09, 67.20], atol=0.02)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_lab(image), rgb_to_lab(image / 255.0), atol=1e-9)
    color = pytest.importorskip("skimage.color")
    np.testing.assert_allclose(rgb_to_lab(image), color.rgb2lab(image), atol=0.01)
    with pytest.raises(ValueError, match="last axis of 3"):
        rgb_to_lab(np.zeros((4, 4)))


def _hint_from(image: torch.Tensor, downscale: int, mask: torch.Tensor) -> torch.Tensor:
    colours = F.avg_pool2d(image, downscale) * mask
    return torch.cat([colours, mask], dim=1)


def test_hint_adherence_small_for_matching_large_for_complementary():
    image = faces(2, 64)
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, 2:6, 2:6] = 1
    mask[1, :, 8:12, 3:9] = 1
    hint = _hint_from(image, 4, mask)
    good = hint_adherence(image, hint)
    assert good["count"] == 16 + 24 and good["samples_with_hints"] == 2
    assert good["median"] < 0.5 and good["p90"] < 0.5
    bad = hint_adherence(-image, hint)  # complementary colours everywhere
    assert bad["median"] > 20
    assert (bad["per_sample_median"] > 20).all()


def test_hint_adherence_without_hints_is_nan_safe():
    image = faces(2, 64)
    mask = torch.zeros(2, 1, 16, 16)
    mask[1, :, 4:6, 4:6] = 1
    result = hint_adherence(image, _hint_from(image, 4, mask))
    assert np.isnan(result["per_sample_median"][0]) and result["per_sample_count"][0] == 0
    assert result["per_sample_count"][1] == 4 and result["samples_with_hints"] == 1
    empty = hint_adherence(image, torch.zeros(2, 4, 16, 16))
    assert empty["median"] is None and empty["p90"] is None and empty["count"] == 0
    with pytest.raises(ValueError, match="RGB \\+ mask"):
        hint_adherence(image, torch.zeros(2, 3, 16, 16))


# ---------------------------------------------------------------------------------------------
# line fidelity

def _lines_mask(size: int = 48, shift: int = 0) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[10:40, 12 + shift] = True
    mask[30, 5:45] = True
    return mask


def test_line_fscore_identical_shifted_and_tolerance():
    lines = _lines_mask()
    assert line_fscore(lines, lines) == (1.0, 1.0, 1.0)
    p, r, f = line_fscore(lines, _lines_mask(shift=1), tolerance_px=2)
    assert p == 1.0 and r == 1.0  # within tolerance
    far = np.roll(lines, 6, axis=(0, 1))
    p2, r2, f2 = line_fscore(lines, far, tolerance_px=2)
    assert f2 < 0.2 and r2 < 0.2
    batch = np.stack([lines, lines])
    _, recalls, _ = line_fscore(batch, np.stack([lines, far]))
    assert recalls.shape == (2,) and recalls[0] == 1.0 and recalls[1] < 0.2


def test_line_fscore_empty_masks():
    lines, empty = _lines_mask(), np.zeros((48, 48), dtype=bool)
    p, r, f = line_fscore(lines, empty)
    assert math.isnan(p) and r == 0.0 and f == 0.0
    p, r, f = line_fscore(empty, lines)
    assert p == 0.0 and math.isnan(r) and math.isnan(f)


def test_chamfer_distance():
    lines = _lines_mask()
    assert chamfer_distance(lines, lines) == 0.0
    vertical = np.zeros((32, 32), dtype=bool)
    vertical[:, 10] = True
    assert chamfer_distance(vertical, np.roll(vertical, 3, axis=1)) == pytest.approx(3.0)
    empty = np.zeros((32, 32), dtype=bool)
    assert chamfer_distance(empty, empty) == 0.0
    assert chamfer_distance(vertical, empty) == pytest.approx(math.hypot(32, 32))
    assert chamfer_distance(np.stack([vertical, vertical]), np.stack([vertical, empty])).shape == (2,)


def _sketch_and_drawing(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    sketch = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(sketch)
    d.ellipse([12, 10, 52, 54], outline=0, width=2)
    d.line([20, 40, 44, 40], fill=0, width=2)
    array = np.asarray(sketch)
    sketch_t = torch.from_numpy(array.copy())[None, None].float() / 127.5 - 1
    colour = np.stack([array, np.where(array > 0, 200, 0), np.where(array > 0, 120, 0)], -1).astype(np.uint8)
    return sketch_t, rgb_to_tensor(colour)[None]


def test_edge_map_and_line_fidelity_on_drawn_lines():
    sketch, drawing = _sketch_and_drawing()
    ink = sketch_ink(sketch)
    assert ink.dtype == bool and ink.shape == (1, 64, 64) and 100 < ink.sum() < 600
    edges = edge_map(drawing)
    assert edges.dtype == bool and edges.shape == (1, 64, 64) and edges.any()
    assert not edge_map(torch.zeros(1, 3, 64, 64)).any()  # flat image, no edges
    kept = line_fidelity(sketch, drawing)
    assert kept["recall"] > 0.95 and kept["chamfer"] < 2.0
    flat = torch.ones_like(drawing) * torch.tensor([0.6, 0.5, 0.2]).view(1, 3, 1, 1)
    lost = line_fidelity(sketch, flat)
    assert lost["recall"] == 0.0 and lost["f"] == 0.0 and lost["precision"] is None

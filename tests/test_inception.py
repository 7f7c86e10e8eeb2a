"""FID Inception-v3: architecture, pooling variants, and the user-supplied weight loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sketch2anime.evaluation.fid import make_feature_extractor
from sketch2anime.models.inception import (
    InceptionConfig,
    InceptionV3FID,
    _avg_pool_no_pad,
    load_fid_inception,
    load_fid_inception_weights,
)

SMALL = InceptionConfig(width=0.0625, input_size=75)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The machine's cores are shared; one thread avoids oversubscription stalls in small convs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_model(seed: int = 0) -> InceptionV3FID:
    torch.manual_seed(seed)
    return InceptionV3FID(SMALL).eval()


def test_full_network_structure_matches_the_fid_graph():
    with torch.device("meta"):
        model = InceptionV3FID(InceptionConfig())
    state = model.state_dict()
    # Trunk of torchvision-style Inception-v3 without fc / AuxLogits.
    assert sum(p.numel() for p in model.parameters()) == 21_785_568
    assert model.out_features == 2048
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_6e.branch7x7_2.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.bn.running_var"].shape == (384,)
    assert model.Mixed_7b.pool == "avg" and model.Mixed_7c.pool == "max"
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in state)


def test_pool_branches_do_not_count_padding():
    # count_include_pad=False: a constant map stays constant at the borders too.
    ones = torch.ones(1, 2, 5, 5)
    assert torch.allclose(_avg_pool_no_pad(ones), ones)


def test_small_network_resizes_any_input():
    model = small_model()
    with torch.no_grad():
        a = model(torch.rand(3, 3, 64, 64) * 2 - 1)
        b = model(torch.rand(1, 3, 75, 75) * 2 - 1)
    assert a.shape == (3, model.out_features) and b.shape == (1, model.out_features)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 1, 75, 75))
    no_resize = InceptionV3FID(InceptionConfig(width=0.0625, resize_input=False))
    with pytest.raises(ValueError, match="at least 75x75"):
        no_resize(torch.zeros(1, 3, 64, 64))


def _outputs(model: InceptionV3FID, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_state_dict_round_trips_through_loader_pth_and_safetensors(tmp_path):
    source = small_model(seed=1)
    # Give the BatchNorm statistics non-default values so a failed load would show.
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 3, 75, 75) * 2 - 1
    expected = _outputs(source, x)
    state = source.state_dict()

    # .pth as pytorch-fid ships it: classifier included, no num_batches_tracked, DataParallel prefix.
    pth_state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    pth_state["module.fc.weight"] = torch.zeros(1008, source.out_features)
    pth_state["module.fc.bias"] = torch.zeros(1008)
    torch.save(pth_state, tmp_path / "weights.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "weights.safetensors"))

    for name in ("weights.pth", "weights.safetensors"):
        loaded = load_fid_inception_weights(tmp_path / name, SMALL)
        target = small_model(seed=2)
        assert not torch.allclose(_outputs(target, x), expected)
        target.load_state_dict(loaded)
        assert torch.allclose(_outputs(target, x), expected, atol=1e-6)
    model = load_fid_inception(tmp_path / "weights.safetensors", SMALL)
    assert not model.training and torch.allclose(_outputs(model, x), expected, atol=1e-6)


def test_loader_names_missing_unexpected_and_mismatched_keys(tmp_path):
    state = dict(small_model().state_dict())
    del state["Mixed_6b.branch1x1.conv.weight"]
    state["Mixed_9z.extra.weight"] = torch.zeros(3)
    state["Conv2d_2a_3x3.conv.weight"] = torch.zeros(5, 5, 3, 3)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError) as info:
        load_fid_inception_weights(tmp_path / "bad.safetensors", SMALL)
    message = str(info.value)
    assert "Mixed_6b.branch1x1.conv.weight" in message
    assert "Mixed_9z.extra.weight" in message
    assert "Conv2d_2a_3x3.conv.weight" in message and "(5, 5, 3, 3)" in message
    # A small network's weights do not fit the real FID network.
    save_file({k: v.contiguous() for k, v in small_model().state_dict().items()}, str(tmp_path / "small.safetensors"))
    with pytest.raises(ValueError, match="wrong shape"):
        load_fid_inception_weights(tmp_path / "small.safetensors")


def test_loader_rejects_missing_corrupt_and_unknown_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_fid_inception_weights(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable PyTorch weight file"):
        load_fid_inception_weights(tmp_path / "broken.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_fid_inception_weights(tmp_path / "broken.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported weight file type"):
        load_fid_inception_weights(tmp_path / "weights.npz")


def test_full_network_features_and_extractor_with_weights(tmp_path):
    torch.manual_seed(3)
    full = InceptionV3FID(InceptionConfig()).eval()
    images = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        direct = full(images)
    assert direct.shape == (2, 2048)
    assert torch.isfinite(direct).all() and (direct >= 0).all()  # pooled ReLU outputs
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(tmp_path / "fid.safetensors"))
    extractor = make_feature_extractor("inception", tmp_path / "fid.safetensors")
    assert extractor.comparable_with_published and extractor.feature_dim == 2048
    features = extractor(images)
    assert features.shape == (2, 2048)
    np.testing.assert_allclose(features, direct.double().numpy(), rtol=1e-4, atol=1e-5)
    random = make_feature_extractor("inception", allow_random_weights=True)
    assert not random.comparable_with_published and random.describe()["weights"] == "random"

"""Inception-v3 as used for FID (the TensorFlow graph of 2015-12-05), pool3 features only.

FID numbers are only comparable with published ones when they come from the exact network of
Heusel et al. (2017): the TF Inception-v3 checkpoint of 2015-12-05. Its PyTorch port (pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``) differs from the ImageNet Inception-v3 of the model zoos
in its pooling, which this module reproduces:

* ``Mixed_5b..5d`` (A blocks), ``Mixed_6b..6e`` (C blocks) and ``Mixed_7b`` (first E block):
  the pooling branch averages over a 3x3 window *without counting padding*
  (``count_include_pad=False``), as TF's ``avg_pool`` with SAME padding does;
* ``Mixed_7c`` (last E block): the pooling branch is a 3x3 *max* pool (a quirk of that graph).

Submodule names follow the usual PyTorch Inception-v3 naming (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch_pool.bn.running_var`` ...), so that weight file loads without renaming. We only
need the 2048-d global-average-pooled "pool3" features; the classifier (``fc``) is not built.

No weights are shipped or downloaded: ``load_fid_inception_weights(path)`` reads a file the user
provides. Inputs are images in [-1, 1] (the range that graph expects); by default they are resized
to 299x299 bilinearly first.

``InceptionConfig.width`` scales every channel count (rounded, at least 4) so tests can run a
structurally identical, small network; only ``width == 1`` matches the published weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PYTORCH_FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048


@dataclass(frozen=True)
class InceptionConfig:
    width: float = 1.0          # channel multiplier; 1.0 is the real FID network
    resize_input: bool = True   # bilinear resize to input_size before the network
    input_size: int = 299

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"InceptionConfig.width must be positive, got {self.width}")
        if self.input_size < 75:
            raise ValueError(f"InceptionConfig.input_size must be at least 75 (the network's minimum), got {self.input_size}")


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in the TF graph) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1. Out: c64+c64+c96+pool_features."""

    def __init__(self, cin: int, pool_features: int, c: Callable[[int], int]) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(64), 1)
        self.branch5x5_1 = BasicConv2d(cin, c(48), 1)
        self.branch5x5_2 = BasicConv2d(c(48), c(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)
        self.out_channels = c(64) + c(64) + c(96) + pool_features

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1->3x3->3x3/2 | maxpool/2. Out: c384+c96+cin."""

    def __init__(self, cin: int, c: Callable[[int], int]) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, c(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), 3, stride=2)
        self.out_channels = c(384) + c(96) + cin

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1). Out: 4 * c192."""

    def __init__(self, cin: int, channels_7x7: int, c: Callable[[int], int]) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, c(192), 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, c(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, c(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, c(192), 1)
        self.out_channels = 4 * c(192)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool/2. Out: c320+c192+cin."""

    def __init__(self, cin: int, c: Callable[[int], int]) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, c(192), 1)
        self.branch3x3_2 = BasicConv2d(c(192), c(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, c(192), 1)
        self.branch7x7x3_2 = BasicConv2d(c(192), c(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c(192), c(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c(192), c(192), 3, stride=2)
        self.out_channels = c(320) + c(192) + cin

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs. Out: c320 + 2*c384 + 2*c384 + c192.

    ``pool`` is "avg" (padding not counted) for Mixed_7b and "max" for Mixed_7c, as in the FID graph.
    """

    def __init__(self, cin: int, pool: str, c: Callable[[int], int]) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, c(320), 1)
        self.branch3x3_1 = BasicConv2d(cin, c(384), 1)
        self.branch3x3_2a = BasicConv2d(c(384), c(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(c(384), c(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, c(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(448), c(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(c(384), c(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(c(384), c(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, c(192), 1)
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_no_pad(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionV3FID(nn.Module):
    """FID Inception-v3 trunk: images (N, 3, H, W) in [-1, 1] -> pool3 features (N, 2048 * width)."""

    def __init__(self, config: InceptionConfig) -> None:
        super().__init__()
        self.config = config

        def c(n: int) -> int:
            return n if config.width == 1.0 else max(4, int(round(n * config.width)))

        self.Conv2d_1a_3x3 = BasicConv2d(3, c(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(c(32), c(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(c(32), c(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(c(64), c(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(c(80), c(192), 3)
        self.Mixed_5b = InceptionA(c(192), pool_features=c(32), c=c)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, pool_features=c(64), c=c)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, pool_features=c(64), c=c)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, c=c)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, channels_7x7=c(128), c=c)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, channels_7x7=c(160), c=c)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, channels_7x7=c(160), c=c)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, channels_7x7=c(192), c=c)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, c=c)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, pool="avg", c=c)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, pool="max", c=c)
        self.out_features = self.Mixed_7c.out_channels
        self._init_random()

    def _init_random(self) -> None:
        # Placeholder initialisation for weight-less use (tests, smoke runs); real FID needs the file.
        if self.Conv2d_1a_3x3.conv.weight.is_meta:  # shape-only copy: nothing to initialise
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(x.shape)}")
        size = self.config.input_size
        if self.config.resize_input and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        elif min(x.shape[-2:]) < 75:
            raise ValueError(f"Inception-v3 needs inputs of at least 75x75 pixels, got {tuple(x.shape[-2:])}")
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------
# weights from a user-supplied file

# Parts of the full classifier checkpoint that the pool3 trunk does not use.
_UNUSED_PREFIXES = ("fc.", "AuxLogits.")
_WRAPPER_PREFIXES = ("module.", "model.", "inception.", "net.")


def _read_file(path: Path) -> dict[str, Tensor]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
    if suffix in (".pth", ".pt", ".bin"):
        try:
            # weights_only=True: tensors and plain containers only, no arbitrary pickled code.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a weight file"
            raise ValueError(f"{path} is not a readable PyTorch weight file ({type(exc).__name__}: {exc})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a plain state dict of tensors")
        return state
    raise ValueError(f"unsupported weight file type {suffix!r} for {path}: use .pth (e.g. "
                     f"{PYTORCH_FID_WEIGHTS_NAME} from pytorch-fid) or .safetensors")


def _strip_wrappers(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix) and not name.startswith(_UNUSED_PREFIXES):
                name = name[len(prefix):]
                changed = True
    return name


def _expected_shapes(config: InceptionConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = InceptionV3FID(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_fid_inception_weights(path: str | Path, config: InceptionConfig | None = None) -> dict[str, Tensor]:
    """Read FID Inception weights from ``path`` and return a state dict for ``InceptionV3FID``.

    Accepts pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or a safetensors file with the
    same names (optionally wrapped as ``module.``/``model.``). The classifier (``fc.*``) and
    auxiliary head are dropped; missing BatchNorm ``num_batches_tracked`` counters are filled in.
    Raises ValueError naming missing, unexpected or wrongly shaped entries.
    """
    config = config or InceptionConfig()
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"Inception weight file not found: {path} (FID needs the user-supplied "
                         f"{PYTORCH_FID_WEIGHTS_NAME} or a safetensors conversion of it)")
    raw = _read_file(path)
    state: dict[str, Tensor] = {}
    for key, value in raw.items():
        name = _strip_wrappers(key)
        if name.startswith(_UNUSED_PREFIXES):
            continue
        state[name] = value
    expected = _expected_shapes(config)
    for name in expected:
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.tensor(0, dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k} (file {tuple(state[k].shape)}, network {expected[k]})"
                        for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_list(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} with wrong shape: {_list(mismatched)}")
    if problems:
        raise ValueError(f"{path} does not match the FID Inception-v3 network; " + "; ".join(problems))
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_fid_inception(path: str | Path, config: InceptionConfig | None = None) -> InceptionV3FID:
    """Build ``InceptionV3FID`` with weights from ``path``, in eval mode."""
    config = config or InceptionConfig()
    model = InceptionV3FID(config)
    model.load_state_dict(load_fid_inception_weights(path, config))
    return model.eval()

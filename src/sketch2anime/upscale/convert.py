"""ncnn graphs -> this package's upscaler modules (config + torch state dict), checked layer by layer.

Each converter reads the parsed graph (``ncnn_format.NcnnModel``), checks that it has exactly the
architecture the module implements (layer types, order, kernel, stride, padding, activation), infers
the config from the layer sizes and reshapes the flat weights:

- Convolution weights are stored ``[out][in][kh][kw]``, as PyTorch's ``Conv2d`` wants them.
- Deconvolution weights are stored ``[out][in][kh][kw]`` too, but ``ConvTranspose2d`` wants
  ``[in][out][kh][kw]``: the first two axes are swapped (no kernel flip: both scatter the same way).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models.srvgg import SRVGGConfig, SRVGGNetCompact
from ..models.upconv7 import UpConv7, UpConv7Config
from .ncnn_format import NcnnFormatError, NcnnLayer, NcnnModel

NETWORKS: dict[str, tuple[type[nn.Module], type]] = {
    "srvgg_compact": (SRVGGNetCompact, SRVGGConfig),
    "upconv7": (UpConv7, UpConv7Config),
}


def _conv_shape(layer: NcnnLayer, in_channels: int | None = None) -> tuple[int, int, int]:
    """(out, in, k) of a square Convolution/Deconvolution layer, from num_output and weight_data_size."""
    out, kw = layer.get(0), layer.get(1)
    kh = layer.get(11, kw)
    if kh != kw:
        raise NcnnFormatError(f"{layer.name}: only square kernels are supported, got {kh}x{kw}")
    size = layer.get(6)
    if not isinstance(out, int) or not isinstance(kw, int) or size % (out * kw * kw):
        raise NcnnFormatError(f"{layer.name}: weight_data_size {size} does not fit {out} outputs of {kw}x{kw}")
    inputs = size // (out * kw * kw)
    if in_channels is not None and inputs != in_channels:
        raise NcnnFormatError(f"{layer.name}: takes {inputs} channels, the previous layer gives {in_channels}")
    if layer.get(2, 1) != 1 or layer.get(12, layer.get(2, 1)) != 1:
        raise NcnnFormatError(f"{layer.name}: dilated convolutions are not supported")
    return out, inputs, kw


def _expect(layer: NcnnLayer, key: int, value: Any, label: str, default: Any = 0) -> None:
    found = layer.get(key, default)
    if found != value:
        raise NcnnFormatError(f"{layer.type} {layer.name}: {label} ({key}=) is {found!r}, this architecture needs {value!r}")


def _conv_tensors(model: NcnnModel, layer: NcnnLayer, shape: tuple[int, int, int], transpose: bool) -> dict[str, torch.Tensor]:
    out, inputs, k = shape
    arrays = model.weights[layer.name]
    weight = torch.from_numpy(arrays["weight"].reshape(out, inputs, k, k).copy())
    if transpose:
        weight = weight.transpose(0, 1).contiguous()
    if "bias" not in arrays:
        raise NcnnFormatError(f"{layer.name}: has no bias (5=1); the upscalers' convolutions all have one")
    return {"weight": weight, "bias": torch.from_numpy(arrays["bias"].copy())}


def _types(model: NcnnModel) -> list[str]:
    return [layer.type for layer in model.layers if layer.type not in ("Input", "Split")]


def srvgg_from_ncnn(model: NcnnModel) -> tuple[SRVGGConfig, dict[str, torch.Tensor]]:
    """Real-ESRGAN's SRVGGNetCompact (conv + PReLU pairs, last conv, PixelShuffle, nearest Interp, add)."""
    kinds = _types(model)
    pairs = (len(kinds) - 4) // 2
    expected = ["Convolution", "PReLU"] * pairs + ["Convolution", "PixelShuffle", "Interp", "BinaryOp"]
    if pairs < 1 or kinds != expected:
        raise NcnnFormatError("not an SRVGGNetCompact graph: expected (Convolution, PReLU) pairs, Convolution, "
                              f"PixelShuffle, Interp, BinaryOp; found {' '.join(kinds[:6])} ...")
    convs, prelus = model.of_type("Convolution"), model.of_type("PReLU")
    shuffle, interp, add = model.of_type("PixelShuffle")[0], model.of_type("Interp")[0], model.of_type("BinaryOp")[0]
    scale = shuffle.get(0)
    _expect(interp, 0, 1, "resize type (1 = nearest)")
    if float(interp.get(1, 0)) != scale or float(interp.get(2, 0)) != scale:
        raise NcnnFormatError(f"{interp.name}: the skip branch must be enlarged by the pixel-shuffle factor {scale}")
    _expect(add, 0, 0, "operation (0 = add)")
    state: dict[str, torch.Tensor] = {}
    channels = None
    for index, conv in enumerate(convs):
        _expect(conv, 3, 1, "stride", 1)
        _expect(conv, 4, 1, "padding")
        _expect(conv, 9, 0, "fused activation")
        shape = _conv_shape(conv, channels)
        channels = shape[0]
        prefix = "last" if index == len(convs) - 1 else f"convs.{index}"
        for key, tensor in _conv_tensors(model, conv, shape, transpose=False).items():
            state[f"{prefix}.{key}"] = tensor
    for index, prelu in enumerate(prelus):
        state[f"acts.{index}.weight"] = torch.from_numpy(model.weights[prelu.name]["slope"].copy())
    features, in_channels = _conv_shape(convs[0])[:2]
    out_channels, remainder = divmod(_conv_shape(convs[-1])[0], scale * scale)
    if remainder:
        raise NcnnFormatError(f"{convs[-1].name}: {_conv_shape(convs[-1])[0]} outputs are not a multiple of {scale}^2")
    config = SRVGGConfig(in_channels=in_channels, out_channels=out_channels, features=features,
                         body_convs=len(convs) - 2, scale=int(scale))
    return config, state


def upconv7_from_ncnn(model: NcnnModel) -> tuple[UpConv7Config, dict[str, torch.Tensor]]:
    """waifu2x UpConv7 (valid 3x3 convs with fused leaky ReLU, then a 4x4 stride-2 Deconvolution)."""
    kinds = _types(model)
    if len(kinds) < 2 or kinds != ["Convolution"] * (len(kinds) - 1) + ["Deconvolution"]:
        raise NcnnFormatError(f"not an UpConv7 graph: expected Convolutions then one Deconvolution, found {' '.join(kinds)}")
    convs, deconv = model.of_type("Convolution"), model.of_type("Deconvolution")[0]
    slopes = set()
    state: dict[str, torch.Tensor] = {}
    channels = None
    widths = []
    for index, conv in enumerate(convs):
        _expect(conv, 3, 1, "stride", 1)
        _expect(conv, 4, 0, "padding")
        _expect(conv, 9, 2, "fused activation (2 = leaky ReLU)")
        slope = conv.get(10)
        if not isinstance(slope, tuple) or len(slope) != 1:
            raise NcnnFormatError(f"{conv.name}: leaky ReLU needs one slope (-23310=1,<slope>), got {slope!r}")
        slopes.add(float(slope[0]))
        shape = _conv_shape(conv, channels)
        if shape[2] != 3:
            raise NcnnFormatError(f"{conv.name}: UpConv7 convs are 3x3, got {shape[2]}x{shape[2]}")
        channels = shape[0]
        widths.append(channels)
        for key, tensor in _conv_tensors(model, conv, shape, transpose=False).items():
            state[f"convs.{index}.{key}"] = tensor
    if len(slopes) != 1:
        raise NcnnFormatError(f"UpConv7 layers use different leaky slopes {sorted(slopes)}")
    _expect(deconv, 3, 2, "stride", 1)
    _expect(deconv, 4, 3, "padding")
    _expect(deconv, 9, 0, "fused activation")
    shape = _conv_shape(deconv, channels)
    if shape[2] != 4:
        raise NcnnFormatError(f"{deconv.name}: the UpConv7 deconvolution is 4x4, got {shape[2]}x{shape[2]}")
    for key, tensor in _conv_tensors(model, deconv, shape, transpose=True).items():
        state[f"up.{key}"] = tensor
    config = UpConv7Config(in_channels=_conv_shape(convs[0])[1], out_channels=shape[0], channels=tuple(widths),
                           negative_slope=slopes.pop())
    return config, state


CONVERTERS: dict[str, Callable[[NcnnModel], tuple[Any, dict[str, torch.Tensor]]]] = {
    "srvgg_compact": srvgg_from_ncnn,
    "upconv7": upconv7_from_ncnn,
}


def build_network(network: str, config: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """Instantiate ``NETWORKS[network]`` with ``config`` and load ``state`` (strict; shapes checked)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown upscaler network {network!r} (known: {', '.join(NETWORKS)})")
    module = NETWORKS[network][0](config)
    expected = module.state_dict()
    if set(state) != set(expected):
        raise ValueError(f"{network} weights do not match the module (missing {sorted(set(expected) - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - set(expected))[:3]})")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(f"{network} weight {key} has shape {tuple(tensor.shape)}, the module needs "
                             f"{tuple(expected[key].shape)}")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{network} weight {key} contains NaN or infinite values")
    module.load_state_dict({k: v.float() for k, v in state.items()})
    return module.eval()


def convert_ncnn(model: NcnnModel, network: str) -> nn.Module:
    """A parsed ncnn model -> the loaded module of type ``network`` (``srvgg_compact`` or ``upconv7``)."""
    if network not in CONVERTERS:
        raise ValueError(f"unknown upscaler network {network!r} (known: {', '.join(CONVERTERS)})")
    config, state = CONVERTERS[network](model)
    return build_network(network, config, state)


def flat_weights_count(model: NcnnModel) -> int:
    """Number of stored numbers (weights, biases, slopes): the converted state dict must hold as many."""
    return int(sum(np.asarray(a).size for arrays in model.weights.values() for a in arrays.values()))

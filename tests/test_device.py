"""One device setting for every model, tensor and batch (``--device auto|cpu|cuda``)."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.device import resolve_device
from soundtwin.errors import SoundtwinError
from soundtwin.runtime.torch_runtime import Verifier


def test_device_names_resolve_and_a_missing_gpu_is_refused_by_name(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SoundtwinError, match="--device cuda: no CUDA GPU is available here"):
        resolve_device("cuda")
    with pytest.raises(SoundtwinError, match="'tpu' is not one of auto, cpu, cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cli_refuses_a_gpu_it_does_not_have_before_touching_anything(synth_data, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = CliRunner().invoke(app, ["train", str(synth_data / "train"), "--out", str(tmp_path / "m"), "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU is available" in r.stderr
    assert not (tmp_path / "m").exists()


def test_a_verifier_keeps_its_encoder_and_batches_on_its_device(trained):
    v = Verifier.load(trained[0], cache_dir=False, device="cpu")
    seen = []
    real = v.encoder.forward
    v.encoder.forward = lambda x, lengths: (seen.append((x.device, lengths.device)), real(x, lengths))[1]
    e = v.embed([(np.sin(np.arange(16000) * 0.05).astype(np.float32), 16000)])
    assert seen == [(torch.device("cpu"), torch.device("cpu"))] and e.dtype == np.float32
    assert {p.device for p in v.encoder.parameters()} == {torch.device("cpu")}

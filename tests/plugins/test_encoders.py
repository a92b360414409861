"""Audio encoders (spec A5, §10) and image encoders (spec A4, §10): shapes, windows, local loading.

Pretrained components are tested through their real loading paths on tiny random models saved
to tmp_path (nothing is downloaded; conftest sets HF_HUB_OFFLINE).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.plugin.manager import load_registry
from memo_zoo.slots.audio_encoder import AudioEncoder
from memo_zoo.slots.image_encoder import ImageEncoder
from memo_zoo_plugins.audio_encoder import plugin as audio_plugin
from memo_zoo_plugins.audio_encoder.log_mel import HOP, N_FFT, LogMelAudioEncoder, LogMelConfig, mel_filterbank
from memo_zoo_plugins.audio_encoder.wav2vec2 import Wav2Vec2AudioEncoder, Wav2Vec2EncoderConfig
from memo_zoo_plugins.audio_encoder.windows import frame_windows, resample_to_frames
from memo_zoo_plugins.image_encoder import plugin as image_plugin
from memo_zoo_plugins.image_encoder.clip_vision import CLIP_MEAN, CLIP_STD, ClipVisionConfig, ClipVisionEncoder
from memo_zoo_plugins.image_encoder.conv import ConvImageEncoder, ConvImageEncoderConfig
from memo_zoo_plugins.image_encoder.face_embedding import FaceEmbeddingConfig, FaceEmbeddingEncoder
from memo_zoo_plugins.image_encoder.timm_backbone import TimmEncoderConfig, TimmImageEncoder

SR = 16_000


def waveform(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, round(SR * seconds), generator=torch.Generator().manual_seed(seed)) * 0.1


def registry_with(slot: str, kinds: set[str], module):
    """The installed registry if it already has these components, else one with ``module`` added."""
    registry = load_registry(disabled=())
    if kinds <= set(registry.kinds(slot)):
        return registry
    return load_registry(disabled=(), extra_plugins=[(f"test_{slot}", module)])


# ---- registration ---------------------------------------------------------------------------------

@pytest.mark.parametrize("slot, kinds, module", [
    ("audio_encoder", {"log_mel": [], "wav2vec2": ["weights"]}, audio_plugin),
    ("image_encoder", {"conv": [], "clip_vision": ["weights"], "timm": ["model", "weights"],
                       "face_embedding": ["weights"]}, image_plugin),
])
def test_plugins_register_documented_components(slot, kinds, module):
    """Pretrained components require their weights; the CPU defaults build from defaults alone."""
    registry = registry_with(slot, set(kinds), module)
    for kind, required_fields in kinds.items():
        spec = registry.get(slot, kind).spec
        assert spec.summary.strip()
        assert all(field.description for field in spec.config.model_fields.values())
        assert [n for n, f in spec.config.model_fields.items() if f.is_required()] == required_fields
        if not required_fields:  # the CPU defaults build without touching the disk
            component = spec.factory(spec.config())
            assert isinstance(component, AudioEncoder if slot == "audio_encoder" else ImageEncoder)


# ---- windows (A5) ---------------------------------------------------------------------------------

def test_resample_samples_each_video_frame_at_its_middle_and_clamps_the_ends():
    features = torch.arange(10, dtype=torch.float64).view(1, 10, 1)  # feature k = k, at k / 50 s
    at_25fps = resample_to_frames(features, rate=50, offset=0.0, fps=25, num_frames=4)
    assert at_25fps.flatten().tolist() == pytest.approx([1.0, 3.0, 5.0, 7.0])  # frame i at (i + 0.5) / 25 s
    # 30 fps: frame 0 at 1/60 s = feature 5/6; an offset shifts the features later in time.
    assert resample_to_frames(features, 50, 0.0, 30, 1).item() == pytest.approx(5 / 6)
    assert resample_to_frames(features, 50, 0.01, 25, 1).item() == pytest.approx(0.5)
    # Past the last feature (and before the first) the edge value is held.
    assert resample_to_frames(features, 50, 0.0, 1.0, 3).flatten().tolist() == [9.0, 9.0, 9.0]
    assert resample_to_frames(features, 50, 0.5, 25, 1).item() == 0.0
    sub = resample_to_frames(features, 50, 0.0, 25, 2, sub_frames=2)  # at 10, 30, 50, 70 ms
    assert sub.flatten().tolist() == pytest.approx([0.5, 1.5, 2.5, 3.5])


def test_frame_windows_centre_each_frame_and_pad_at_the_edges():
    frames = torch.arange(1, 6, dtype=torch.float32).view(1, 5, 1)  # frames 1..5
    rep = frame_windows(frames, 2, start=0, count=5, padding="replicate")[0, :, :, 0]
    assert rep.tolist()[0] == [1, 1, 1, 2, 3] and rep.tolist()[2] == [1, 2, 3, 4, 5]
    assert rep.tolist()[4] == [3, 4, 5, 5, 5]
    zero = frame_windows(frames, 2, start=0, count=5, padding="zero")[0, :, :, 0]
    assert zero.tolist()[0] == [0, 0, 1, 2, 3] and zero.tolist()[4] == [3, 4, 5, 0, 0]
    assert frame_windows(frames, 1, start=1, count=3)[0, :, :, 0].tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]


# ---- log_mel ----------------------------------------------------------------------------------------

def test_mel_filterbank_is_a_partition_of_triangles():
    bank = mel_filterbank(40)
    assert bank.shape == (N_FFT // 2 + 1, 40) and bank.min() >= 0 and bank.max() <= 1
    assert torch.all(bank.sum(0) > 0), "every band covers at least one STFT bin"
    peaks = bank.argmax(0)
    assert torch.all(peaks[1:] >= peaks[:-1]), "bands rise in frequency"


@pytest.mark.parametrize("fps, frames, pad", [(25.0, 6, 0), (30.0, 5, 2), (12.5, 3, 1)])
def test_log_mel_shapes_follow_the_protocol(fps, frames, pad):
    encoder = LogMelAudioEncoder(LogMelConfig(token_count=8, token_dim=16))
    tokens = encoder.encode(waveform(2, (frames + 2 * pad) / fps), frames, fps, pad_frames=pad)
    assert tokens.shape == (2, frames, 8, 16) and tokens.dtype == torch.float32
    assert (encoder.token_count, encoder.token_dim) == (8, 16)
    assert torch.isfinite(tokens).all()


def test_log_mel_frame_tokens_hear_only_their_window():
    """A5: frame i's tokens depend on the audio of frames i-2..i+2 (plus the STFT's half window)."""
    torch.manual_seed(0)
    encoder = LogMelAudioEncoder(LogMelConfig(token_count=4, window=2))
    fps, frames, i = 25.0, 9, 4
    per_frame = round(SR / fps)
    audio = waveform(1, frames / fps).requires_grad_()
    tokens = encoder.encode(audio, frames, fps)[0, i]
    # A random read-out: a plain sum of LayerNorm-ed tokens is constant, with zero gradient.
    (tokens * torch.randn(tokens.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    touched = audio.grad[0].abs() > 0
    lo, hi = (i - 2) * per_frame, (i + 3) * per_frame
    margin = N_FFT // 2
    assert not touched[:lo - margin].any() and not touched[hi + margin:].any()
    for frame in range(i - 2, i + 3):  # and every frame of the window is heard
        assert touched[frame * per_frame:(frame + 1) * per_frame].any(), f"frame {frame} is not heard"
    assert not touched[(i - 3) * per_frame:(i - 2) * per_frame - margin].any()


def test_log_mel_pad_frames_give_edge_frames_their_real_neighbours():
    """pad_frames=p: the central frames equal those of encoding the whole padded clip."""
    encoder = LogMelAudioEncoder(LogMelConfig())
    audio = waveform(1, 10 / 25)
    whole = encoder.encode(audio, 10, 25.0)
    central = encoder.encode(audio, 6, 25.0, pad_frames=2)
    assert torch.allclose(central, whole[:, 2:8], atol=1e-6)
    # Without padding the first frame's window repeats frame 0 instead of seeing real audio.
    assert not torch.allclose(encoder.encode(audio[:, 2 * 640:8 * 640], 6, 25.0)[:, 0], whole[:, 2], atol=1e-4)


def test_log_mel_is_trainable_and_rejects_bad_calls():
    encoder = LogMelAudioEncoder(LogMelConfig(token_count=2))
    encoder.encode(waveform(1, 0.2), 5, 25.0).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert set(encoder.state_dict()) == {n for n, _ in encoder.named_parameters()}, "buffers are derived, not saved"
    with pytest.raises(ValueError, match="batch, samples"):
        encoder.encode(torch.zeros(3200), 5, 25.0)
    with pytest.raises(ValueError, match="pad_frames"):
        encoder.encode(torch.zeros(1, 3200), 5, 25.0, pad_frames=-1)
    assert encoder.encode(torch.zeros(1, HOP), 1, 25.0).shape == (1, 1, 2, 16)  # shorter than one STFT window


# ---- wav2vec2 (§10) ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                            conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, vocab_size=10)
    folder = tmp_path_factory.mktemp("weights") / "tiny-wav2vec2"
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("resample", ["after", "before"])
def test_wav2vec2_loads_local_weights_and_follows_the_protocol(tiny_wav2vec2, resample):
    encoder = Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights=str(tiny_wav2vec2), token_count=4, token_dim=24,
                                                         hidden=16, resample=resample))
    assert isinstance(encoder, AudioEncoder)
    # all hidden states: 2 layers x 32 wide, 5 frames of window (§10's [5, 12, 768] in miniature)
    assert encoder.projector.mlp[0].in_features == 5 * 2 * 32
    assert encoder.features(waveform(2, 0.4), 25.0, 10).shape == (2, 10, 2, 32)
    tokens = encoder.encode(waveform(2, 8 / 25), 4, 25.0, pad_frames=2)
    assert tokens.shape == (2, 4, 4, 24)
    tokens.square().sum().backward()
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.grad is not None for p in encoder.projector.parameters())
    assert not encoder.train().backbone.training, "the frozen backbone keeps dropout off"


def test_wav2vec2_layer_choice_and_time_alignment(tiny_wav2vec2):
    encoder = Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights=str(tiny_wav2vec2), layers=[0, 2], hidden=8))
    assert encoder.layer_ids == [0, 2] and encoder.projector.mlp[0].in_features == 5 * 2 * 32
    # CNN geometry of this config: stride 5*2 = 10 samples (1600 Hz), receptive field 10 + 2*5 = 20.
    assert encoder.stride == 10 and encoder.offset == pytest.approx(9.5 / SR)
    with pytest.raises(ValueError, match="hidden states 0..2"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights=str(tiny_wav2vec2), layers=[3]))


def test_wav2vec2_weights_by_name_and_missing_weights(tiny_wav2vec2, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tiny_wav2vec2.parent))
    assert Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights="tiny-wav2vec2", hidden=8)).token_dim == 768
    with pytest.raises(MissingWeightsError, match="wav2vec2-base-960h"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights="wav2vec2-base-960h"))
    monkeypatch.delenv("MEMO_ZOO_WEIGHTS_DIR")
    with pytest.raises(MissingWeightsError, match="MEMO_ZOO_WEIGHTS_DIR is not set"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights="wav2vec2-base-960h"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="lacks config.json"):
        Wav2Vec2AudioEncoder(Wav2Vec2EncoderConfig(weights=str(tmp_path / "empty")))


# ---- image encoders (A4, §10) -----------------------------------------------------------------------

def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_conv_encoder_embeds_any_size_and_trains():
    encoder = ConvImageEncoder(ConvImageEncoderConfig())
    assert isinstance(encoder, ImageEncoder)
    assert encoder.encode(images(2, 64)).shape == (2, 32)
    out = encoder.encode(images(1, 48))
    assert out.shape == (1, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    with pytest.raises(ValueError, match="batch, 3, H, W"):
        encoder.encode(torch.zeros(3, 64, 64))


def test_clip_vision_loads_local_weights_and_preprocesses_like_clip(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=12)
    reference = CLIPVisionModelWithProjection(config).eval()
    reference.save_pretrained(tmp_path / "clip")
    encoder = ClipVisionEncoder(ClipVisionConfig(weights=str(tmp_path / "clip")))
    assert isinstance(encoder, ImageEncoder) and encoder.embed_dim == 12 and encoder.image_size == 32
    x = images(2, 32)
    pixels = ((x + 1) / 2 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=pixels).image_embeds
    assert torch.allclose(encoder.encode(x), expected, atol=1e-5)
    assert encoder.encode(images(1, 80)).shape == (1, 12)  # other sizes are resized to 32
    assert not any(p.requires_grad for p in encoder.parameters())


def test_clip_vision_missing_weights_name_the_path(tmp_path):
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "nowhere")):
        ClipVisionEncoder(ClipVisionConfig(weights=str(tmp_path / "nowhere")))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_loads_a_local_state_dict_without_its_classifier(tmp_path, suffix):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    full = timm.create_model("test_resnet", pretrained=False)  # with its classifier, like a real checkpoint
    path = tmp_path / f"test_resnet{suffix}"
    if suffix == ".safetensors":
        save_file(full.state_dict(), str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in full.state_dict().items()}}, path)
    encoder = TimmImageEncoder(TimmEncoderConfig(model="test_resnet", weights=str(path)))
    assert isinstance(encoder, ImageEncoder) and encoder.embed_dim == full.num_features
    loaded = encoder.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in full.state_dict().items() if not k.startswith("fc."))
    assert encoder.encode(images(2, 40)).shape == (2, full.num_features)


def test_timm_refuses_weights_of_another_architecture(tmp_path):
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("test_vit", pretrained=False).state_dict(), str(tmp_path / "vit.safetensors"))
    with pytest.raises(MemoZooError, match="does not fit 'test_resnet'"):
        TimmImageEncoder(TimmEncoderConfig(model="test_resnet", weights=str(tmp_path / "vit.safetensors")))
    with pytest.raises(MissingWeightsError, match="missing.pth"):
        TimmImageEncoder(TimmEncoderConfig(model="test_resnet", weights=str(tmp_path / "missing.pth")))


class TinyFaceNet(nn.Module):
    """Stands in for an ArcFace network: refuses anything but 112 x 112 input, like a real one."""

    def __init__(self, width: int = 512):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(3 * 16, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 112 or x.shape[3] != 112:
            raise RuntimeError("expected a 112 x 112 crop")
        return self.fc(self.pool(x).flatten(1)) * 7.0


@pytest.fixture(params=["torchscript", "export"])
def face_net(tmp_path, request):
    """The same tiny network as a TorchScript file and as a .pt2 torch.export program."""
    torch.manual_seed(0)
    net = TinyFaceNet().eval()
    if request.param == "export":
        path = tmp_path / "arcface.pt2"
        example = torch.zeros(2, 3, 112, 112)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, str(path))
    else:
        path = tmp_path / "arcface.pt"
        with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript; released face nets still ship in it
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(net), str(path))
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_face_embedding_gives_unit_512d_embeddings(face_net):
    encoder = FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=str(face_net)))
    assert isinstance(encoder, ImageEncoder) and encoder.embed_dim == 512
    out = encoder.encode(images(2, 96))
    assert out.shape == (2, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    bgr = FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=str(face_net), bgr=True))
    x = images(1, 112)
    assert torch.allclose(bgr.encode(x), encoder.encode(x.flip(1)), atol=1e-6)
    before = encoder.encode(x)
    assert encoder.train().training and torch.equal(encoder.encode(x), before), "train() leaves the net frozen"
    if face_net.suffix == ".pt":  # an exported program reports no mode: it keeps the one it was exported in
        assert not encoder.backbone.training
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_face_embedding_checks_its_file_and_width(face_net, tmp_path):
    with pytest.raises(MemoZooError, match="expected \\(batch, 256\\)"):
        FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=str(face_net), embed_dim=256)).encode(images(1, 112))
    (tmp_path / "not_script.pt").write_bytes(b"not a zip")
    (tmp_path / "not_export.pt2").write_bytes(b"not a zip")
    for bad in ("not_script.pt", "not_export.pt2"):
        with pytest.raises(MemoZooError, match="not a TorchScript file"):
            FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=str(tmp_path / bad)))
    with pytest.raises(MissingWeightsError, match="arcface_r100.pt"):
        FaceEmbeddingEncoder(FaceEmbeddingConfig(weights=str(tmp_path / "arcface_r100.pt")))

"""``wav2vec2``: frozen Wav2Vec 2.0, all hidden states, windowed, trainable MLP (spec A5, §10).

The paper's and the released code's audio features: ``transformers.Wav2Vec2Model`` loaded from a
LOCAL folder (``wav2vec2-base-960h`` by default: a name looked up under MEMO_ZOO_WEIGHTS_DIR, or a
path), every transformer layer's hidden state stacked (base: 12 x 768), one feature per video
frame, a window of +-2 frames ([5, 12, 768] per frame, §10), and a trainable projector (Linear ->
ReLU -> Linear -> ReLU -> Linear -> LayerNorm) to 32 tokens of 768.

``resample`` says where the 50 Hz wav2vec2 frames meet the video rate:

- ``after`` (paper, A5: "all hidden states ... resampled to the video frame rate"): the
  transformer runs at its native 50 Hz and its hidden states are interpolated to the frames.
- ``before`` (released code, Hallo's Wav2VecModel): the CNN features are interpolated to the
  video frame rate first and the transformer runs on one position per video frame.

``projector`` (optional) takes the trained projector of the authors' released checkpoint (its
``audio_proj`` part, ``released_projector.py``) instead of a new one; the encoder's token, window,
layer and hidden sizes must then be the release's, and a difference is named at build time.

``weights`` is required: the backbone is loaded when the component is built, so a recipe that
names it fails at once, with the path it looked at, rather than at the first training step.
The backbone never trains (``requires_grad=False``, eval mode even under ``.train()``, run under
``no_grad``); only the projector's parameters have gradients.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from memo_zoo.weights import check_readable, loading_error, resolve_weights
from memo_zoo_plugins.audio_encoder.windows import (
    SAMPLE_RATE, TokenProjector, check_encode_args, frame_windows, resample_to_frames,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.audio_encoder.configs import Wav2Vec2EncoderConfig


def _conv_geometry(config) -> tuple[int, int]:
    """(total stride, receptive field) in samples of the wav2vec2 CNN (base: 320, 400)."""
    stride, field = 1, 1
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * stride
        stride *= step
    return stride, field


class Wav2Vec2AudioEncoder(nn.Module):
    def __init__(self, config: Wav2Vec2EncoderConfig):
        super().__init__()
        from transformers import Wav2Vec2Model  # heavy import, only when this component is used

        self.config = config
        self.token_count, self.token_dim = config.token_count, config.token_dim
        what = "Wav2Vec2 audio encoder (transformers folder)"
        path = resolve_weights(config.weights, what, expect=("config.json",))
        check_readable(path, what)  # a damaged file is named, not a bare transformers traceback
        try:
            self.backbone = Wav2Vec2Model.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise loading_error(what, path, error) from None
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        depth = self.backbone.config.num_hidden_layers
        self.layer_ids = list(range(1, depth + 1)) if config.layers == "all" else list(config.layers)
        bad = [i for i in self.layer_ids if not 0 <= i <= depth]
        if bad or not self.layer_ids:
            raise ValueError(f"wav2vec2 layers {config.layers!r}: this model has hidden states 0..{depth}")
        self.stride, receptive_field = _conv_geometry(self.backbone.config)
        # A CNN frame describes the middle of its receptive field: frame k sits at sample
        # stride * k + (field - 1) / 2 (base: 20 ms * k + 12.5 ms).
        self.offset = (receptive_field - 1) / 2 / SAMPLE_RATE
        in_features = (2 * config.window + 1) * len(self.layer_ids) * self.backbone.config.hidden_size
        if config.projector is None:
            self.projector = TokenProjector(in_features, config.hidden, config.token_count, config.token_dim)
        else:
            self.projector = self._released_projector(config.projector)

    def _released_projector(self, reference: str) -> TokenProjector:
        """The released checkpoint's audio_proj (§10), its shapes checked against this encoder's
        before its weights are read."""
        from memo_zoo.model.released.folder import read_part_config, resolve_release
        from memo_zoo_plugins.audio_encoder.released_projector import (PART, check_encoder_agrees,
                                                                       load_token_projector)

        folder = resolve_release(reference)
        check_encoder_agrees(read_part_config(folder, PART), source=f"{reference} ({folder})",
                             token_count=self.config.token_count, token_dim=self.config.token_dim,
                             window=self.config.window, layer_count=len(self.layer_ids),
                             hidden_size=self.backbone.config.hidden_size, hidden=self.config.hidden)
        return load_token_projector(folder)[0]

    def released_part(self):
        """The projector as the release's ``audio_proj`` part (``memo-zoo export``), its
        constructor arguments written out as the released class takes them (Q1)."""
        from memo_zoo.model.released.export import ReleasedPart
        from memo_zoo_plugins.audio_encoder.released_projector import to_released_keys

        config = {"seq_len": 2 * self.config.window + 1, "blocks": len(self.layer_ids),
                  "channels": self.backbone.config.hidden_size, "intermediate_dim": self.config.hidden,
                  "output_dim": self.config.token_dim, "context_tokens": self.config.token_count}
        return ReleasedPart("audio_proj", config, to_released_keys(self.projector.state_dict()))

    def train(self, mode: bool = True) -> "Wav2Vec2AudioEncoder":
        """Only the projector follows ``mode``: the frozen backbone keeps dropout off."""
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, waveform: Tensor, fps: float, total: int) -> Tensor:
        """(B, S) -> (B, total, len(layers), hidden): the stacked hidden states per video frame."""
        x = waveform.to(next(self.backbone.parameters()).dtype)
        if self.config.normalize:
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
        rate = SAMPLE_RATE / self.stride
        hook = None
        if self.config.resample == "before":
            def to_video_rate(module, inputs, output):  # (B, C, N) CNN features -> (B, C, total)
                frames = resample_to_frames(output.transpose(1, 2), rate, self.offset, fps, total)
                return frames.transpose(1, 2)

            # A forward hook on the CNN replaces its output inside the model's own forward, so the
            # transformer and hidden-state bookkeeping run unmodified on one position per frame.
            hook = self.backbone.feature_extractor.register_forward_hook(to_video_rate)
        try:
            with torch.no_grad():
                states = self.backbone(x, output_hidden_states=True).hidden_states
        finally:
            if hook is not None:
                hook.remove()
        stacked = torch.stack([states[i] for i in self.layer_ids], dim=2)  # (B, N, L, H)
        if self.config.resample == "after":
            stacked = resample_to_frames(stacked, rate, self.offset, fps, total)
        return stacked

    def encode(self, waveform: Tensor, num_frames: int, fps: float, pad_frames: int = 0) -> Tensor:
        """(B, S) 16 kHz covering num_frames + 2 pad_frames frames -> (B, num_frames, T, A)."""
        check_encode_args(waveform, num_frames, fps, pad_frames)
        total = num_frames + 2 * pad_frames
        per_frame = self.features(waveform, fps, total)
        windows = frame_windows(per_frame, self.config.window, pad_frames, num_frames, self.config.padding)
        return self.projector(windows.to(self.projector.norm.weight.dtype))


def build(config: Wav2Vec2EncoderConfig) -> Wav2Vec2AudioEncoder:
    return Wav2Vec2AudioEncoder(config)

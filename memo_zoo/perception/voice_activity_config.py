"""Options of Silero voice-activity detection (``memo_zoo.perception.voice_activity``): pydantic
only, no torch or ONNX Runtime.

The ``voice_activity`` preprocessing stage registers a subclass of ``VoiceActivityConfig`` through
its plugin without importing the detector, so ``memo-zoo ls``, ``validate`` and ``schema`` import
none of it (issue 17.8), as for the other perception configs (``memo_zoo.perception.configs``).
The defaults are those of silero-vad's own ``get_speech_timestamps`` (threshold 0.5, speech >= 250
ms, silences >= 100 ms split segments, 30 ms padding), given here in seconds.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VoiceActivityConfig(BaseModel):
    """Silero VAD on 16 kHz mono audio, 512-sample windows, probabilities turned into speech segments."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["onnx", "jit"] = Field(
        "onnx", description="onnx: the model's ONNX file run by ONNX Runtime on the CPU (faster here, "
                            "about 180x real time); jit: its TorchScript file run by torch")
    model: Optional[str] = Field(
        None, description="a Silero VAD model file of that backend (.onnx for onnx, .jit for jit): a path or "
                          "a name under MEMO_ZOO_WEIGHTS_DIR; default: the file shipped inside the installed "
                          "silero-vad package (silero_vad/data/silero_vad.onnx or silero_vad.jit)")
    threshold: float = Field(0.5, gt=0, lt=1, description="a window whose speech probability is at least this "
                                                          "starts (or continues) speech")
    neg_threshold: Optional[float] = Field(
        None, gt=0, lt=1, description="inside speech, a window under this probability counts as silence "
                                      "(hysteresis); default: threshold - 0.15, at least 0.01 (silero's)")
    min_speech_seconds: float = Field(0.25, ge=0, description="speech segments shorter than this are left out")
    min_silence_seconds: float = Field(0.1, ge=0, description="a silence must last this long to end a segment; "
                                                              "shorter pauses stay inside it")
    pad_seconds: float = Field(0.03, ge=0, description="each segment is widened by this much on both sides "
                                                       "(halfway into a shorter gap between two segments)")

    @model_validator(mode="after")
    def _check(self) -> "VoiceActivityConfig":
        if self.neg_threshold is not None and self.neg_threshold > self.threshold:
            raise ValueError(f"neg_threshold ({self.neg_threshold}) is above threshold ({self.threshold}): "
                             "inside speech, silence must be less likely than the onset of speech")
        if self.model is not None:
            suffix = "." + self.model.rsplit(".", 1)[-1].lower() if "." in self.model else ""
            if (suffix == ".onnx") != (self.backend == "onnx"):
                raise ValueError(f"model {self.model!r} does not match backend {self.backend!r}: backend onnx "
                                 "takes a .onnx file, backend jit a TorchScript file (silero_vad.jit)")
        return self

"""The demo page: its layout and the one event that generates (Gradio Blocks).

Left, the inputs: the portrait, the audio (uploaded or recorded), the emotion (detected per
segment, one label, or a schedule of segments), the guidance scale, the sampler steps and the
seconds to generate. Right, the results: the MP4 with its audio, the emotion timeline and a status
box. Generate runs through Gradio's queue with ``concurrency_limit=1`` under one concurrency id,
so one generation runs at a time on the device and a second visitor sees their place in the queue.
Every error a visitor can cause comes back as ``gr.Error`` with the message of the check that
failed (paths inside the server's folder reduced to the file's name, HTML-escaped: Gradio renders
an error as HTML and a file name is the visitor's text); anything unexpected is logged with its
traceback on the server and shown in the page as one line.
"""

from __future__ import annotations

import html
import sys
import traceback
from typing import Any

import gradio as gr

from memo_zoo.demo.checks import DETECTED, EMOTION_MODES, ONE_LABEL, SCHEDULE, emotion_option
from memo_zoo.demo.job import JobRequest, run_job
from memo_zoo.demo.model_source import DemoModel
from memo_zoo.demo.options import DemoOptions
from memo_zoo.demo.progress import FrameRate
from memo_zoo.demo.workspace import Workspace
from memo_zoo.errors import MemoZooError

CONCURRENCY_ID = "device"  # every generation shares one slot: one at a time on the device
# Gradio's cache of uploads and outputs: swept every 10 minutes of files older than an hour (the
# whole workspace goes when the server stops).
DELETE_CACHE = (600, 3600)


def build_app(model: DemoModel, options: DemoOptions, workspace: Workspace) -> gr.Blocks:
    labels = (*model.labels, "none")
    scale = float((model.generation.get("cfg") or {}).get("scale", 3.5))
    with gr.Blocks(title="memo-zoo demo", delete_cache=DELETE_CACHE, analytics_enabled=False) as demo:
        gr.Markdown("## memo-zoo: a talking video from one portrait and one audio track\n"
                    f"Model: {workspace.public(model.source)}. At most {options.max_seconds:g} s of video per "
                    f"request and uploads of {options.max_upload_mb:g} MB; one generation at a time.")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Portrait (one face, looking at the camera)", type="filepath",
                                 sources=["upload"], image_mode=None, elem_id="portrait")
                audio = gr.Audio(label="Audio (speech)", type="filepath", sources=["upload", "microphone"],
                                 elem_id="audio")
                mode = gr.Radio(list(EMOTION_MODES), value=DETECTED, label="Emotion", elem_id="emotion-mode")
                label = gr.Dropdown(list(labels), value=labels[0], label="Emotion for the whole video",
                                    visible=False, elem_id="emotion-label")
                schedule = gr.Textbox(label="Emotion schedule: one segment a line, START END LABEL (seconds)",
                                      placeholder="0 2.5 happy\n2.5 5 sad", lines=3, visible=False,
                                      elem_id="emotion-schedule")
                with gr.Row():
                    cfg = gr.Slider(1.0, 10.0, value=scale, step=0.5, label="Guidance scale (1 = none)",
                                    elem_id="cfg")
                    steps = gr.Slider(1, max(50, model.steps or 1), value=model.steps or 10, step=1,
                                      label="Sampler steps", elem_id="steps", interactive=model.steps is not None)
                with gr.Row():
                    seconds = gr.Slider(0.5, options.max_seconds, value=options.max_seconds, step=0.5,
                                        label="Seconds to generate (at most)", elem_id="seconds")
                    seed = gr.Number(value=int(model.recipe.seed), precision=0, minimum=0, label="Seed",
                                     elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Talking video", elem_id="video", interactive=False)
                timeline = gr.Image(label="Emotion per segment", type="filepath", interactive=False,
                                    elem_id="timeline")
                status = gr.Markdown(elem_id="status")

        mode.change(lambda chosen: (gr.update(visible=chosen == ONE_LABEL), gr.update(visible=chosen == SCHEDULE)),
                    inputs=mode, outputs=[label, schedule], queue=False, api_visibility="private")

        def generate(portrait: Any, speech: Any, chosen: str, one_label: str | None, segments: str | None,
                     guidance: float, sampler_steps: float, length: float, noise_seed: float | None,
                     progress: gr.Progress = gr.Progress(track_tqdm=True)):
            try:
                progress(0, desc="checking the inputs")
                request = JobRequest(
                    image=portrait, audio=speech, emotion=emotion_option(chosen, one_label, segments, model.labels),
                    cfg_scale=guidance, steps=None if model.steps is None else int(sampler_steps),
                    seconds=length, seed=None if noise_seed is None else int(noise_seed))
                with FrameRate(progress):
                    result = run_job(model, options, request, workspace.new_job())
            except MemoZooError as error:
                message = workspace.public(str(error))
                print(f"refused: {message}", file=sys.stderr)
                # Gradio renders an error's message as HTML: a file name is text, never markup.
                raise gr.Error(html.escape(message), duration=None, title="Cannot generate",
                               print_exception=False) from None
            except Exception as error:  # noqa: BLE001 -- a bug: its traceback goes to the server's log only
                traceback.print_exc(file=sys.stderr)
                raise gr.Error(f"generation failed ({type(error).__name__}); the server's log has the details",
                               duration=None, title="Generation failed", print_exception=False) from None
            for message in result.warnings:
                gr.Warning(html.escape(workspace.public(message)))
            return str(result.video), str(result.timeline), workspace.public(result.summary())

        button.click(generate, inputs=[image, audio, mode, label, schedule, cfg, steps, seconds, seed],
                     outputs=[video, timeline, status], concurrency_limit=1, concurrency_id=CONCURRENCY_ID,
                     api_name="generate")
    demo.queue(max_size=options.queue_size, default_concurrency_limit=1)
    return demo

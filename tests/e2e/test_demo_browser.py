"""The demo page and the ablation report in a real browser: headless Chromium driven by Playwright.

Chromium is the system's (Debian's ``chromium`` package, which ``.ci/run`` installs), launched by
path: Playwright never downloads a browser here. Without Chromium or Playwright the module skips,
saying which is missing.

- The page (``memo-zoo demo`` in a subprocess, the tiny recipe and checkpoint of
  test_demo_server.py): a text file given as audio gives a message in the page (Gradio's own for a
  ``.txt``, generation's for text named ``.wav``) and no traceback, and the page keeps working: a
  portrait and a WAV then give a playable ``<video>`` as long as the audio (within two frames) and
  the emotion timeline. A second visitor who presses Generate while a video is generating sees
  their place in the queue, then gets their video.
- The report: ``report.html`` of a small fake sweep logged to a file-store MLflow (as the
  experiment task logs it) opens with every plot loaded and one table row per variant.

With ``MEMO_ZOO_SCREENSHOTS=docs/images`` the tests save the pictures docs/demo.md shows
(demo_generate.png, demo_bad_audio.png, report_browser.png); otherwise they write nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from memo_zoo.atomic import write_bytes_atomically
from tests.e2e.test_demo_server import FPS, SECONDS, DemoServer, demo_files  # noqa: F401 -- a fixture
from tests.unit.test_generate import speech_like, write_wav

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 240_000  # a generation on a loaded 2-core CI machine; the tests wait for events, not for time
TWO_FRAMES = 2 / FPS


def screenshot(page, name: str) -> None:
    """Save ``name`` under $MEMO_ZOO_SCREENSHOTS (relative to the checkout) when it is set."""
    folder = os.environ.get("MEMO_ZOO_SCREENSHOTS")
    if folder:
        target = Path(folder) if Path(folder).is_absolute() else ROOT / folder
        write_bytes_atomically(target / name, page.screenshot(full_page=True))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(demo_files):  # noqa: F811 -- the fixture imported above
    running = DemoServer(demo_files, "--max-upload-mb", "1", "--max-seconds", "2")
    yield running
    running.stop()
    assert "Traceback" not in running.output(), running.output()


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.wait_for_selector("#generate")
    return page


def upload(page, portrait: Path, audio: Path) -> None:
    page.locator("#portrait input[type=file]").set_input_files(str(portrait))
    page.locator("#audio input[type=file]").set_input_files(str(audio))
    # Both uploads have reached the server and come back: the portrait is shown and the audio box
    # offers the uploaded file for download (pressing Generate before then sends no audio).
    page.locator("#portrait img").wait_for()
    page.locator(f'#audio a.download-link[href$="/{audio.name}"]').wait_for()


def record_when_shown(page, script: str) -> None:
    """From now on, set ``window.shown`` once the JavaScript condition ``script`` holds after any change
    of the page: a state that lasts a fraction of a second is not missed between two polls."""
    page.evaluate("""condition => {
        window.shown = false;
        const check = new Function('return (' + condition + ')');
        const look = () => { if (!window.shown && check()) window.shown = true; };
        new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
        look();
    }""", script)


def toast_with(page, text: str):
    toast = page.locator(".toast-body", has_text=text)
    toast.first.wait_for(timeout=WAIT_MS)
    return toast.first.inner_text()


def wait_for_video(page) -> dict:
    page.locator("#video video").wait_for(timeout=WAIT_MS)
    return page.evaluate("""async () => {
        const video = document.querySelector('#video video');
        if (video.readyState < 1 || !isFinite(video.duration)) {
            await new Promise(done => video.addEventListener('loadedmetadata', done, {once: true}));
        }
        return {duration: video.duration, readyState: video.readyState, error: video.error && video.error.code,
                playable: video.canPlayType('video/mp4; codecs="avc1.42E01E, mp4a.40.2"')};
    }""")


def test_bad_audio_gives_a_message_in_the_page_and_no_traceback(browser, server, demo_files):
    page = open_page(browser, server)
    # A .txt: the page's own file check refuses it before it is sent.
    page.locator("#audio input[type=file]").set_input_files(str(demo_files / "notes.txt"))
    assert "Invalid file type: notes.txt" in toast_with(page, "Invalid file type")
    # Text named .wav reaches the server: generation cannot read it and says so, naming the file.
    disguised = demo_files / "notes.wav"
    shutil.copy(demo_files / "notes.txt", disguised)
    upload(page, demo_files / "portrait.png", disguised)
    page.click("#generate")
    message = toast_with(page, "cannot be opened as media")
    assert "\nnotes.wav: cannot be opened as media" in message, message  # the name, not a server path
    shown = page.inner_text("body")  # what the visitor reads (Gradio's file URLs do hold server paths)
    assert "Traceback" not in shown and str(server.workspace) not in shown
    screenshot(page, "demo_bad_audio.png")
    # Over --max-upload-mb (1 MB): refused, with the limit in the message (a fresh page: the audio
    # box holds the last upload).
    page.reload()
    big = write_wav(demo_files / "long.wav", np.tile(speech_like(1.0, 16_000), 40), 16_000)
    page.locator("#audio input[type=file]").set_input_files(str(big))
    message = toast_with(page, "exceed")
    assert "maximum allowed size of 1.0 Mb" in message and "long.wav" in message, message
    page.close()


def test_generate_gives_a_playable_video_as_long_as_the_audio(browser, server, demo_files):
    page = open_page(browser, server)
    upload(page, demo_files / "portrait.png", demo_files / "speech.wav")
    page.click("#generate")
    video = wait_for_video(page)
    assert video["error"] is None and video["readyState"] >= 1 and video["playable"], video
    assert abs(video["duration"] - SECONDS) <= TWO_FRAMES, video
    page.locator("#timeline img").wait_for(timeout=WAIT_MS)
    assert page.evaluate("document.querySelector('#timeline img').naturalWidth") > 0
    status = page.locator("#status").inner_text()
    assert f"{round(SECONDS * FPS)} frames at {FPS} fps" in status and "neutral" in status
    screenshot(page, "demo_generate.png")
    page.close()


def test_the_report_opens_with_every_plot_and_a_row_per_variant(browser, tmp_path):
    from mlflow import MlflowClient

    from memo_zoo.eval.report import report_run
    from tests.unit.test_eval_report import _experiment

    variants = {"self_attention_n2": (40, -0.2), "self_attention_n16": (30, 0.05), "linear_memory": (20, 0.01)}
    tracker, parent = _experiment(tmp_path, variants)
    files = report_run(MlflowClient(tracker.uri), parent.id, tmp_path / "report")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(files.html.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) == len(files.plots) >= 2
    assert all(complete and width > 0 for _, complete, width in images), images
    rows = page.evaluate("[...document.querySelectorAll('table tr')].slice(1).map(r => r.cells[0].innerText)")
    assert rows == list(variants), rows
    screenshot(page, "report_browser.png")
    page.close()


def test_a_second_visitor_sees_their_place_in_the_queue_then_gets_their_video(browser, server, demo_files):
    # The longest audio --max-seconds allows, so that the first generation outlasts the second click.
    seconds = 1.8
    audio = write_wav(demo_files / "speech_long.wav", speech_like(seconds, 16_000), 16_000)
    first, second = open_page(browser, server), open_page(browser, server)
    for page in (first, second):
        upload(page, demo_files / "portrait.png", audio)
    record_when_shown(first, "document.querySelector('.progress-level') !== null")
    # Gradio's status shows "queue: 1/1 | 0.5s" over the outputs while the request waits.
    record_when_shown(second, r"/queue: \d+\/\d+/.test(document.body.innerText)")
    first.click("#generate")
    # Once the first generation runs, the device is taken: the second request waits in the queue.
    first.wait_for_function("window.shown", timeout=WAIT_MS)
    second.click("#generate")
    for page in (first, second):
        assert abs(wait_for_video(page)["duration"] - seconds) <= TWO_FRAMES
    assert second.evaluate("window.shown"), "the second visitor never saw their place in the queue"
    for page in (first, second):
        page.close()

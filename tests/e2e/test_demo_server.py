"""``memo-zoo demo`` as a server (issue 22): what it serves, what it refuses, and the job behind the page.

The server runs as a user starts it, ``python -m memo_zoo demo`` in a subprocess, on a free port of
127.0.0.1, with a tiny recipe and a checkpoint saved by the test (never the real default, which
would train for minutes). Checked over plain HTTP: nothing outside the demo's own folder is
served (``/gradio_api/file=/etc/passwd``, the app's source, the recipe and the checkpoint: 403),
an upload over ``--max-upload-mb`` is refused (413, with the limit in the message), it listens
on 127.0.0.1 only, ``--auth`` is required when given, and its folder is gone once it stops. A
checkpoint that does not fit the recipe stops ``memo-zoo demo`` before it serves, naming the
field. The job the page runs is checked in-process: too small a portrait, silent audio, a bad
schedule and an over-long track each give their message; the default model is the experiment's
keyed training, trained first (through the runner) only when missing.

The browser tests (test_demo_browser.py) reuse ``demo_files`` and ``DemoServer`` from here.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import memo_zoo
from memo_zoo.errors import MemoZooError
from tests.unit.test_generate import make_model, make_recipe, speech_like, write_wav
from tests.unit.test_generate_loading import save_training_checkpoint

FPS, SECONDS = 25, 0.6  # 15 frames: clips of 4, 4, 4, 3
READY_TIMEOUT = 180.0  # seconds for the server to import torch and Gradio on a loaded CI machine
URL_LINE = re.compile(r"memo-zoo demo on (http://\S+) .*uploads and outputs in (\S+) ")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def face_like_portrait(path: Path, width: int = 96, height: int = 80) -> Path:
    """A seeded noise picture (no face: the page warns and generates on it)."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    """A folder with the tiny recipe (a generate task: 32 px, 25 fps, clips of 4, one sampler step),
    its checkpoint, a portrait, 0.6 s of audio and a text file."""
    folder = tmp_path_factory.mktemp("demo")
    document = make_recipe(steps=1, detector={"kind": "fixed", "label": "neutral"})
    document["task"] = {"kind": "generate", "image": "unused.png", "audio": "unused.wav", "size": 32, "fps": FPS,
                        "clip_frames": 4, "motion_frames": 3}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(document))
    save_training_checkpoint(make_model(), folder / "run")
    write_wav(folder / "speech.wav", speech_like(SECONDS, 16_000), 16_000)
    face_like_portrait(folder / "portrait.png")
    (folder / "notes.txt").write_text("these are notes, not a recording\n")
    return folder


class DemoServer:
    """``python -m memo_zoo demo --recipe tiny.yaml --checkpoint run --port P ...`` until ``stop()``."""

    def __init__(self, folder: Path, *extra: str):
        self.folder, self.port = folder, free_port()
        self.log = folder / f"demo-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memo_zoo", "demo", "--recipe", "tiny.yaml", "--checkpoint", "run",
                 "--port", str(self.port), *extra], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.url, self.workspace = self._wait_ready()

    def _wait_ready(self) -> tuple[str, Path]:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"memo-zoo demo exited {self.process.returncode}:\n{self.output()}")
            match = URL_LINE.search(self.output())
            if match:
                return match[1] + "/", Path(match[2])
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"memo-zoo demo did not start in {READY_TIMEOUT:.0f} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path.lstrip("/"), headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, path: str, body: bytes, content_type: str,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, list[str]]:
        request = urllib.request.Request(self.url + path.lstrip("/"), data=body, method="POST",
                                         headers={"Content-Type": content_type, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), response.headers.get_all("set-cookie") or []
        except urllib.error.HTTPError as error:
            return error.code, error.read(), []

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "memozoodemoboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ---- the server ---------------------------------------------------------------------------------


def test_login_then_only_its_own_folder_is_served_big_uploads_are_refused_and_it_cleans_up(demo_files):
    server = DemoServer(demo_files, "--max-upload-mb", "1", "--auth", "ada:correct horse")
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.workspace.is_dir() and server.workspace.stat().st_mode & 0o077 == 0  # owner only

        # --auth: nothing but the login page without logging in, and only with the right password.
        assert server.get("/config")[0] == 401
        assert server.get(f"/gradio_api/file={demo_files / 'speech.wav'}")[0] == 401
        form = "application/x-www-form-urlencoded"
        assert server.post("/login", b"username=ada&password=wrong", form)[0] == 400
        status, _, cookies = server.post("/login", b"username=ada&password=correct+horse", form)
        assert status == 200 and cookies
        login = {"Cookie": "; ".join(c.split(";")[0] for c in cookies)}
        assert server.get("/config", login)[0] == 200
        status, page = server.get("/", login)
        assert status == 200 and b"memo-zoo" in page

        # Logged in, still nothing outside the demo's folder, whatever the path: system files,
        # memo-zoo's own source, the recipe and the checkpoint beside the server, a relative path,
        # a climb out of the upload cache.
        source = Path(memo_zoo.__file__).resolve().parent / "demo" / "app.py"
        checkpoint_file = next((demo_files / "run").rglob("trainer.json"))
        for path in ("/etc/passwd", str(source), str(demo_files / "tiny.yaml"), str(checkpoint_file), "tiny.yaml",
                     f"{server.workspace}/gradio/../../../etc/passwd"):
            status, body = server.get(f"/gradio_api/file={path}", login)
            assert 400 <= status < 500, (path, status)
            assert b"root:" not in body and b"import" not in body

        # An upload over --max-upload-mb is refused by the server itself, naming the limit.
        body, content_type = multipart("files", "big.wav", b"\0" * (1024 * 1024 + 1))
        status, answer, _ = server.post("/gradio_api/upload", body, content_type, login)
        assert status == 413 and b"maximum allowed size of 1048576 bytes" in answer
        body, content_type = multipart("files", "small.wav", (demo_files / "speech.wav").read_bytes())
        status, answer, _ = server.post("/gradio_api/upload", body, content_type, login)
        assert status == 200, answer
        uploaded = Path(yaml.safe_load(answer)[0])
        assert uploaded.is_relative_to(server.workspace), uploaded  # uploads land in the demo's folder
        assert server.get(f"/gradio_api/file={uploaded}", login)[0] == 200  # and only those are served

        # Listening on the loopback address only (127.0.0.1 unless --host says otherwise).
        psutil = pytest.importorskip("psutil")
        listening = {c.laddr.ip for c in psutil.Process(server.process.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, listening
    finally:
        code = server.stop()
    assert code == 143, server.output()  # SIGTERM: 128 + 15, as every memo-zoo command
    assert not server.workspace.exists(), "the demo's folder (uploads, outputs) must go when it stops"
    assert "Traceback" not in server.output()


def test_a_checkpoint_that_does_not_fit_the_recipe_stops_before_serving(demo_files, monkeypatch, capsys):
    from memo_zoo.cli.app import main

    monkeypatch.chdir(demo_files)
    code = main(["demo", "--recipe", "tiny.yaml", "--checkpoint", "run", "--port", str(free_port()),
                 "model.network.cross_attention_dim=24"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cross_attention_dim: recipe 24, checkpoint 16" in err and "Traceback" not in err
    assert "memo-zoo demo on" not in err  # refused before anything listens


# ---- the job behind the page (in-process) -------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(demo_files):
    import torch

    from memo_zoo.demo.model_source import load_demo_model
    from memo_zoo.demo.options import DemoOptions
    from memo_zoo.plugin.manager import load_registry

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    options = DemoOptions(recipe=Path("tiny.yaml"), checkpoint=Path("run"), workdir=demo_files, max_seconds=0.4)
    yield load_demo_model(options, load_registry(disabled=())), options
    torch.set_num_threads(before)


def test_the_job_generates_within_max_seconds_and_refuses_bad_input_with_a_message(loaded, demo_files, tmp_path):
    from memo_zoo.demo.checks import ONE_LABEL, SCHEDULE, emotion_option
    from memo_zoo.demo.job import JobRequest, run_job

    model, options = loaded
    assert model.labels[:4] == ("angry", "disgusted", "fearful", "happy") and model.steps == 1
    request = JobRequest(image=demo_files / "portrait.png", audio=demo_files / "speech.wav",
                         emotion=emotion_option(SCHEDULE, None, "0 0.32 happy\n0.32, 0.4, sad", model.labels))
    result = run_job(model, options, request, tmp_path)
    # 0.6 s of audio cut to the server's 0.4 s: ceil(0.4 x 25) = 10 frames, and the page is told.
    assert result.frames == math.ceil(0.4 * FPS) and result.cut_to == 0.4
    assert "cut to its first 0.4 s" in result.summary()
    assert [s["label"] for s in result.schedule] == ["happy", "happy", "sad"]  # clips of 4 frames (E5)
    assert result.video.is_file() and result.timeline.stat().st_size > 1000
    assert any("no face found" in w for w in result.warnings)

    small = face_like_portrait(tmp_path / "thumb.png", 40, 30)
    with pytest.raises(MemoZooError, match=r"thumb.png is 40x30 px: too small.*at least 64 px"):
        run_job(model, options, JobRequest(image=small, audio=demo_files / "speech.wav"), tmp_path)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16_000)
    with pytest.raises(MemoZooError, match="silent"):
        run_job(model, options, JobRequest(image=demo_files / "portrait.png", audio=silent), tmp_path)
    with pytest.raises(MemoZooError, match="cannot be opened as media"):
        run_job(model, options, JobRequest(image=demo_files / "portrait.png", audio=demo_files / "notes.txt"),
                tmp_path)
    with pytest.raises(MemoZooError, match="cannot be read as an image"):
        run_job(model, options, JobRequest(image=demo_files / "notes.txt", audio=demo_files / "speech.wav"), tmp_path)
    with pytest.raises(MemoZooError, match="line 2 'soon happy': expected START END LABEL"):
        emotion_option(SCHEDULE, None, "0 1 happy\nsoon happy", model.labels)
    with pytest.raises(MemoZooError, match="'joyful' is not one of: angry, disgusted"):
        emotion_option(ONE_LABEL, "joyful", None, model.labels)
    with pytest.raises(MemoZooError, match="overlap"):
        run_job(model, options, JobRequest(image=demo_files / "portrait.png", audio=demo_files / "speech.wav",
                                           emotion=emotion_option(SCHEDULE, None, "0 1 happy\n0.5 2 sad",
                                                                  model.labels)), tmp_path)


def test_server_paths_are_hidden_from_the_page():
    from memo_zoo.demo.workspace import Workspace

    workspace = Workspace.create()
    try:
        upload = workspace.uploads / "0a1b2c" / "speech.wav"
        assert workspace.public(f"{upload}: the audio is silent") == "speech.wav: the audio is silent"
        assert str(workspace.root) not in workspace.public(f"{workspace.root}/x")
    finally:
        workspace.remove()
    assert not workspace.root.exists()


# ---- the default model: the experiment's own training -------------------------------------------


def _experiment_recipe(folder: Path) -> Path:
    document = make_recipe(steps=1, detector={"kind": "fixed", "label": "neutral"})
    document["name"] = "tiny-experiment"
    document["task"] = {"kind": "experiment", "train": {"steps": 5}}
    document["data"] = {"dataset": {"kind": "talking_world", "identities": 2, "test_identities": 1}}
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_default_model_is_the_experiments_training_trained_first_only_when_missing(tmp_path, monkeypatch):
    import memo_zoo.runner
    from memo_zoo.demo import model_source
    from memo_zoo.demo.options import DemoOptions
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.loader import load_recipe

    registry = load_registry(disabled=())
    recipe_path = _experiment_recipe(tmp_path)
    loaded = load_recipe(recipe_path, registry)
    folder, steps = model_source.default_training(loaded.recipe, tmp_path)
    # The folder the experiment task trains into (keyed by model, data, seed and task.train) ...
    from memo_zoo.tasks.experiment import training_key

    assert folder == tmp_path / "experiments" / f"train-{training_key(loaded.recipe, loaded.recipe.task)}"
    assert steps == 5
    # ... which the overrides of the train-only run leave where it is: same key, same weights.
    trimmed = load_recipe(recipe_path, registry, model_source.TRAIN_ONLY)
    assert model_source.default_training(trimmed.recipe, tmp_path) == (folder, steps)

    trained: list[list[str]] = []

    def train(training, registry, workdir=None, **_):
        # Stands in for the minutes of a real training: what the trainer leaves when it finishes.
        trained.append(training.recipe.metrics)
        save_training_checkpoint(make_model(), folder, step=steps)

    monkeypatch.setattr(memo_zoo.runner, "run_recipe", train)
    options = DemoOptions(recipe=recipe_path, workdir=tmp_path)
    first = model_source.ensure_trained(loaded, recipe_path, registry, options)
    assert trained == [[]] and first.parent == folder  # trained once, without the metrics
    again = model_source.ensure_trained(loaded, recipe_path, registry, options)
    assert again == first and len(trained) == 1  # found: not trained again

    sweep = load_recipe(recipe_path, registry, ["sweep={a: {seed: 1}, b: {seed: 2}}"])
    with pytest.raises(MemoZooError, match="sweep of 2 variants"):
        model_source.ensure_trained(sweep, recipe_path, registry, options)

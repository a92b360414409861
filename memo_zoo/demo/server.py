"""``serve(options, registry)``: load the model, then serve the page until Ctrl-C or SIGTERM.

The order matters for safety. The workspace is made and Gradio's folders pointed into it before
Gradio builds its app (it reads them from the environment), and the launch names every limit
explicitly rather than trusting defaults: the address (127.0.0.1 unless --host), no share link,
the upload limit, no extra allowed path, the blocked paths, login when --auth is given, and no
server-side rendering (which would start a Node server on another port). When the server stops,
however it stops, the workspace with every upload and output is removed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from memo_zoo.demo.model_source import load_demo_model
from memo_zoo.demo.options import DemoOptions
from memo_zoo.demo.workspace import Workspace


def serve(options: DemoOptions, registry: Any) -> int:
    # The model first: training or a refused checkpoint must not leave an empty server behind.
    model = load_demo_model(options, registry)
    workspace = Workspace.create()
    try:
        workspace.apply_environment()
        from memo_zoo.demo.app import build_app  # imports gradio, after its environment is set

        app = build_app(model, options, workspace)
        app.launch(server_name=options.host, server_port=options.port, share=False,
                   auth=[options.auth] if options.auth else None, auth_message="memo-zoo demo: log in",
                   max_file_size=options.max_upload_bytes, allowed_paths=[],
                   blocked_paths=workspace.blocked_paths(options.workdir), ssr_mode=False, inbrowser=False,
                   show_error=False, prevent_thread_lock=True, quiet=True)
        print(f"memo-zoo demo on http://{_url_host(options.host)}:{options.port} ({model.source}); uploads and "
              f"outputs in {workspace.root} (removed when the server stops); Ctrl-C to stop", file=sys.stderr,
              flush=True)
        try:
            while True:
                time.sleep(1.0)
        finally:
            app.close()
    finally:
        workspace.remove()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

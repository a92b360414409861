"""Issue 16, item 9, as a user meets it in a shell: closed pipes, options after overrides, plugins
that exit while imported, misspelt names in MEMO_ZOO_DISABLE_PLUGINS."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.cli_helpers import memo_zoo
from tests.fake_plugins import write_plugin_dist


def _spawn(*args: str, cwd, stdout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memo_zoo", *args], cwd=cwd, stdout=stdout,
                            stderr=subprocess.PIPE, env=dict(os.environ))


def test_a_reader_gone_before_any_output_ends_quietly_with_141(tmp_path, repo_root):
    # The reading end is closed before the command starts, so its first write meets a closed
    # pipe whatever the timing (`memo-zoo validate --print R | true`).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _spawn("validate", "--print", str(repo_root / "recipes" / "smoke.yaml"), cwd=tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def test_head_1_of_validate_print_has_no_traceback(tmp_path, repo_root):
    # `memo-zoo validate --print recipes/*.yaml | head -1`: the reader takes one line and leaves.
    # Whether the rest was still to be written when it left depends on timing (141) or not (0).
    recipes = sorted(str(p) for p in (repo_root / "recipes").glob("*.yaml"))
    proc = _spawn("validate", "--print", *recipes, cwd=tmp_path, stdout=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert first.startswith(b"ok: ")
    assert proc.returncode in (0, 141), err
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def test_a_broken_pipe_that_is_not_stdout_keeps_its_traceback(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_plugin_dist(site, "piper", """
        from memo_zoo.plugin import CommandSpec, hookimpl
        def run(args):
            print("started")
            raise BrokenPipeError(32, "Broken pipe (a subprocess's stdin)")
        @hookimpl
        def cli_commands():
            return [CommandSpec("pipe-to-child", "writes to a child that died", lambda parser: None, run)]
    """)
    out = memo_zoo("pipe-to-child", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "a subprocess's stdin" in out.stderr


def test_validate_takes_options_between_recipe_files(tmp_path, repo_root):
    smoke, sweep = repo_root / "recipes" / "smoke.yaml", repo_root / "recipes" / "smoke_sweep.yaml"
    out = memo_zoo("validate", str(smoke), "--set", "seed=3", str(sweep), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == 2


def test_a_plugin_calling_sys_exit_on_import_does_not_end_the_command(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_plugin_dist(site, "quitter", "import sys\nsys.exit(4)\n", dist_name="quitter-dist")
    out = memo_zoo("ls", "scheduler", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "flow_euler" in out.stdout
    assert "plugin 'quitter'" in out.stderr and "quitter-dist" in out.stderr
    assert "MEMO_ZOO_DISABLE_PLUGINS=quitter" in out.stderr
    disabled = memo_zoo("ls", "scheduler", cwd=tmp_path,
                        env={"PYTHONPATH": str(site), "MEMO_ZOO_DISABLE_PLUGINS": "quitter"})
    assert disabled.returncode == 0 and "quitter" not in disabled.stderr


def test_a_misspelt_disabled_plugin_is_named_and_a_disabled_kind_is_explained(tmp_path, repo_root):
    out = memo_zoo("validate", str(repo_root / "recipes" / "smoke.yaml"), cwd=tmp_path,
                   env={"MEMO_ZOO_DISABLE_PLUGINS": "builtin_temporal,builtin_temporl"})
    assert out.returncode == 2
    assert "warning: MEMO_ZOO_DISABLE_PLUGINS names no installed plugin: builtin_temporl" in out.stderr
    assert ("model.temporal: unknown kind 'linear_memory'; kind 'linear_memory' is provided by plugin "
            "'builtin_temporal', which MEMO_ZOO_DISABLE_PLUGINS disables") in out.stderr
    assert "Traceback" not in out.stderr

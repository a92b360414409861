"""``memo-zoo report RUN_ID [RUN_ID ...] [--out DIR] [--tracking-uri URI] [--no-log]``: rebuild a comparison report.

A core command: the report is the core's (``memo_zoo.eval.report``), whatever metrics it shows.
Reads the run (an ablation's parent run, or a single experiment run) and its variants from
MLflow, writes ``report.md``, ``report.html`` and the plots into ``--out``, and logs them to the
run again unless ``--no-log``. More run ids join their variants to the first's comparison (an
ablation run a variant at a time with ``--variant``, or again with ``seed=1``: a variant in several
runs becomes its seeds' mean and spread); the report is logged to the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memo_zoo.plugin import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="MLflow run id (an ablation's parent run, or one experiment run)")
    parser.add_argument("more", nargs="*", metavar="RUN_ID",
                        help="more runs whose variants join the comparison (variants run one at a time, other seeds)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the report (default: reports/RUN_ID)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: $MEMO_ZOO_TRACKING_URI, else sqlite:///mlflow.db here)")
    parser.add_argument("--no-log", action="store_true", help="only write the files; do not log them to the run")


def _run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from memo_zoo.settings import get_settings
    from memo_zoo.tracking.tracker import TrackedRun, _mlflow_environment, check_reachable
    from memo_zoo.tracking.uri import resolve_tracking_uri
    from memo_zoo.eval.report import find_run, report_run

    _mlflow_environment()
    uri = resolve_tracking_uri(args.tracking_uri, get_settings().tracking_uri, Path.cwd())
    check_reachable(uri)  # a server that is not there: one line now, not MLflow's minutes of retries
    client = MlflowClient(tracking_uri=uri)
    # Every id checked before anything is read or written: an unknown one fails naming the store.
    run, *_ = [find_run(client, run_id) for run_id in (args.run_id, *args.more)]
    target = None if args.no_log else TrackedRun(client, run.info.run_id, run.info.experiment_id)
    files = report_run(client, args.run_id, args.out or Path("reports") / args.run_id, log_to=target,
                       also=args.more)
    print(f"report: {files.markdown} and {files.html} ({len(files.plots)} plots)", file=sys.stderr)
    print(files.markdown)
    return 0


REPORT = CommandSpec(
    name="report",
    help="rebuild the comparison report (tables, plots, Markdown + HTML) of an experiment run from MLflow",
    description="Read RUN_ID (an ablation's parent run or one experiment run) and its variants from MLflow and "
                "write report.md, report.html and the plots; logged to the run again unless --no-log. More run ids "
                "join their variants to the comparison (a variant in several runs: mean and spread over its seeds).",
    configure=_configure,
    run=_run,
    example="memo-zoo report 3f2c9a1b0d8e4c6f 9d1e0a7b2c4f6e8a",
)

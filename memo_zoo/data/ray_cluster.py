"""The Ray cluster the data pipeline runs on (issue 21): an existing one, or a private one it starts.

``ray_cluster(address, ...)`` is a context manager yielding the imported ``ray`` module, connected:

- to the cluster at ``address`` (``host:port`` of the head's GCS, ``ray://host:port`` of a Ray
  Client server, or ``auto``: the cluster ``ray start`` left on this machine), else at the
  ``RAY_ADDRESS`` environment variable; the head is first asked, with a short timeout, whether it
  answers at all, so a wrong address fails in seconds with its origin named instead of Ray's long
  retry loop. A loopback address (another process's private cluster) is joined on the loopback.
  Leaving disconnects; the cluster goes on;
- else to a cluster it starts on this machine and stops on leaving. That cluster is safe by
  default: every server of it listens on 127.0.0.1 only, there is no dashboard (and so no job
  server, which lives in it), and it offers ``num_cpus`` / ``num_gpus`` (default: the machine's);
- or, when this process is already connected (a notebook's or a test's ``ray.init()``), to that
  cluster, left as it is on leaving.

Ray is the optional extra ``memo-zoo[ray]``; nothing here imports it before it is asked for, so
``import memo_zoo`` never needs it.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from typing import Any, Iterator

from memo_zoo.errors import MemoZooError

INSTALL_HINT = "pip install 'memo-zoo[ray]'"
ADDRESS_VARIABLE = "RAY_ADDRESS"
LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = (LOOPBACK, "localhost", "::1")


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a ``MemoZooError`` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 (the pipeline's operators; ray alone lacks its dependencies)
    except ImportError as error:
        raise MemoZooError(f"engine: ray needs Ray Data, which is not installed ({error}); "
                           f"install it with: {INSTALL_HINT}") from None
    return ray


def _head(address: str, origin: str) -> tuple[str, int] | None:
    """(host, port) of a head address to probe; None for ``auto`` / ``local``, which Ray resolves."""
    if address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise MemoZooError(f"Ray address {address!r} ({origin}) is not host:port, ray://host:port or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str, origin: str, timeout: float) -> None:
    """Fail in seconds, naming ``address`` and ``origin``, when the head does not answer (instead of
    Ray's long retry loop)."""
    head = _head(address, origin)
    if head is None:
        return
    try:
        with socket.create_connection(head, timeout=timeout):
            pass
    except OSError as error:
        raise MemoZooError(f"cannot reach the Ray cluster at {address} ({origin}): {error}. Is its head "
                           f"running (`ray start --head`), and is this the address it printed?") from None


@contextmanager
def _loopback_node(ray: Any) -> Iterator[None]:
    """While starting a local cluster, let it keep 127.0.0.1 as its node address.

    Ray swaps a loopback node address for the machine's routable one unless it believes it is a
    one-machine install (``ENABLE_RAY_CLUSTER``, false on macOS / Windows); with the routable
    address every server (GCS, raylet, object manager, workers) listens on all interfaces. With
    127.0.0.1 they listen on the loopback only (tests/e2e/test_preprocess_ray.py checks the sockets).
    """
    from ray._private import ray_constants

    had = hasattr(ray_constants, "ENABLE_RAY_CLUSTER")
    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if had:
            ray_constants.ENABLE_RAY_CLUSTER = before
        else:
            del ray_constants.ENABLE_RAY_CLUSTER


def start_local_cluster(ray: Any, num_cpus: int | None, num_gpus: int | None) -> None:
    """Start a private one-machine cluster: loopback only, no dashboard, no job server."""
    with _loopback_node(ray):
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                 logging_level=logging.WARNING)


@contextmanager
def ray_cluster(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None,
                connect_timeout: float = 10.0, field: str = "address") -> Iterator[Any]:
    """Connect as the module docstring says; ``field`` names where ``address`` came from in errors."""
    ray = import_ray()
    origin = field
    if not address and os.environ.get(ADDRESS_VARIABLE):
        address, origin = os.environ[ADDRESS_VARIABLE], f"the {ADDRESS_VARIABLE} environment variable"
    if address and (num_cpus is not None or num_gpus is not None):
        raise MemoZooError(f"num_cpus / num_gpus size a local cluster the run starts; the cluster at {address} "
                           f"({origin}) offers its own. Leave them out, or leave out the address")
    if address:
        check_reachable(address, origin, connect_timeout)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address and _head(address, origin) is not None and _head(address, origin) != _head(current, "ray"):
            raise MemoZooError(f"this process is already connected to the Ray cluster at {current}, not to "
                               f"{address} ({origin})")
        yield ray  # someone else's connection: theirs to close
        return
    if address:
        head = _head(address, origin)
        try:
            if head is not None and head[0] in LOOPBACK_NAMES:
                # A head listening on the loopback (a private cluster) is on this machine, and so is
                # this process's node: Ray would otherwise look for both at the routable address.
                with _loopback_node(ray):
                    ray.init(address=address, _node_ip_address=LOOPBACK, logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise MemoZooError(f"cannot connect to the Ray cluster at {address} ({origin}): {error}") from None
    else:
        start_local_cluster(ray, num_cpus, num_gpus)
    try:
        yield ray
    finally:
        ray.shutdown()  # disconnects; stops the cluster only when it was started here

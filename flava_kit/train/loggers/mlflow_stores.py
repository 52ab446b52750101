"""Which MLflow tracking stores the ``mlflow`` logger can write to, checked when the logger is built
(``flava-kit validate``, and before step 1) instead of found by MLflow's first call to the store."""

from __future__ import annotations

import socket
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from flava_kit.train.loggers.trackers import setting_error

CONNECT_TIMEOUT_S = 2.0  # a server that does not accept a connection in this time is not there
EXAMPLE = "'sqlite:///mlflow.db'"


def check_store(uri: str, label: str = "", parameter: str | None = "tracking_uri") -> None:
    """Raise a ``FlavaKitError`` saying why MLflow cannot track to ``uri``, if it cannot.

    Refused: a scheme the installed MLflow has no store for, a file store (``./mlruns``,
    ``file:...``), a ``sqlite:`` file whose directory cannot be created, an ``http(s)`` server that
    does not accept a connection within 2 s. Other stores (databases, Databricks) are MLflow's to
    check. ``label`` names where ``uri`` came from when not the recipe (``MLFLOW_TRACKING_URI``);
    ``parameter`` is the logger setting the error points at.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    from mlflow.utils.uri import get_uri_scheme

    def refuse(problem: str) -> None:
        raise setting_error(f"{label + ' ' if label else ''}{uri!r} {problem}", parameter)

    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException:
        schemes = ", ".join(sorted(s for s in getattr(_tracking_store_registry, "_registry", {}) if s))
        refuse(f"is not a store MLflow {mlflow.__version__} can track to (its schemes: {schemes}); e.g. {EXAMPLE}")
    scheme = get_uri_scheme(uri)
    if scheme in ("", "file"):
        # Not only MLflow 3's "maintenance mode" (MLFLOW_ALLOW_FILE_STORE): a file store keeps each metric
        # as a file named by its key, so ``train/<objective>`` (the loss) beside ``train/<objective>/<metric>``
        # (a file and a directory of one name) fails at the first checkpoint under every MLflow.
        refuse(f"is a file store (the classic ./mlruns), which cannot hold flava_kit's metrics (it keeps 'train/itm' "
               f"and 'train/itm/accuracy' as a file and a directory of one name); use a database store such as "
               f"{EXAMPLE} (`mlflow migrate-filestore` moves an existing ./mlruns into one)")  # fmt: skip
    elif scheme == "sqlite":
        problem = _sqlite_problem(uri)
        if problem:
            refuse(problem)
    elif scheme in ("http", "https"):
        problem = _server_problem(uri, scheme)
        if problem:
            refuse(problem)


def _sqlite_problem(uri: str) -> str | None:
    """Why the sqlite file of ``uri`` cannot be created (MLflow creates its directory), or None."""
    path = urllib.parse.unquote(urllib.parse.urlparse(uri).path)[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs -> /abs
    if not path or path == ":memory:":
        return None
    database = Path(path).absolute()
    if database.is_dir():
        return f"cannot create the sqlite file {database}: it is a directory"
    existing = next(p for p in database.parents if p.exists())
    if not existing.is_dir():
        return f"cannot create the sqlite file {database}: {existing} is a file, not a directory"
    try:  # the one check that holds for root and read-only mounts alike; leaves nothing behind
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as exc:
        return f"cannot create the sqlite file {database} (nor a directory in {existing}: {exc.strerror or exc})"
    return None


def _server_problem(uri: str, scheme: str) -> str | None:
    """Why no tracking server can answer at ``uri``, or None; MLflow would retry for minutes before saying so."""
    parsed = urllib.parse.urlparse(uri)
    try:
        host, port = parsed.hostname, parsed.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number
        return f"is not a server address: {exc}"
    if not host:
        return "names no server host"
    if urllib.request.getproxies().get(scheme) and not urllib.request.proxy_bypass(host):
        return None  # reached through a proxy, which a direct connection says nothing about
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return (f"has no server: nothing answers at {host}:{port} within {CONNECT_TIMEOUT_S:g} s ({exc.strerror or exc}); "
                f"start one with `mlflow server --host {host} --port {port} --backend-store-uri {EXAMPLE[1:-1]}`, "
                f"or track to a local store such as {EXAMPLE}")  # fmt: skip
    return None

"""Two ways to talk to an MLflow tracking server, with the same six operations.

``RestBackend`` (http/https tracking URIs) speaks MLflow's REST API with ``requests`` and its own
short timeouts and no retries: the mirror thread has its own backoff, and importing ``mlflow`` (seconds
of CPU) into a training process only to send JSON would slow training. ``ClientBackend`` wraps
``mlflow.MlflowClient`` for every other tracking URI (``sqlite:``, ``file:``, ``databricks``...).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from typing import Any
from urllib.parse import quote, urlsplit

API = "/api/2.0/mlflow/"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"


class MlflowUnavailable(ConnectionError):
    """The server did not answer usefully (connection refused, timeout, 5xx): an outage, retried later."""


class MlflowRejected(ValueError):
    """The server refused a request (4xx): retrying the same request will not help."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


def json_number(value: float) -> float | str:
    """A float as protobuf-JSON (what MLflow's own client sends): NaN and infinities as strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


class RemoteRun:
    def __init__(self, run_id: str, experiment_id: str, artifact_uri: str):
        self.run_id, self.experiment_id, self.artifact_uri = run_id, experiment_id, artifact_uri

    def as_dict(self) -> dict[str, str]:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "artifact_uri": self.artifact_uri}


class RestBackend:
    def __init__(self, tracking_uri: str, timeout: float):
        import requests

        self.host = tracking_uri.rstrip("/")
        self.timeout = (min(timeout, 5.0), timeout)  # (connect, read)
        self.session = requests.Session()
        self._requests = requests
        # the authentication and TLS settings MLflow's own client reads
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self.session.auth = (user, password)
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self.session.verify = False
        elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self.session.verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except self._requests.RequestException as exc:
            raise MlflowUnavailable(f"{method} {url}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise MlflowUnavailable(f"{method} {url}: HTTP {resp.status_code} {resp.text[:200]}")
        if resp.status_code >= 400:
            code = ""
            try:
                body = resp.json()
                code, text = body.get("error_code", ""), body.get("message", resp.text)
            except ValueError:
                text = resp.text
            raise MlflowRejected(f"{method} {url}: HTTP {resp.status_code} {code} {text[:300]}", code)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            return {}

    def _api(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        return self._request(method, self.host + API + endpoint, **kwargs)

    def experiment_id(self, name: str) -> str:
        for _ in range(2):
            try:
                exp = self._api("GET", "experiments/get-by-name", params={"experiment_name": name})["experiment"]
            except MlflowRejected as exc:
                if exc.code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            else:
                if exp.get("lifecycle_stage") == "deleted":
                    raise MlflowRejected(f"MLflow experiment {name!r} is deleted; restore it in MLflow "
                                         "or use another experiment name", "DELETED")
                return str(exp["experiment_id"])
            try:
                return str(self._api("POST", "experiments/create", json={"name": name})["experiment_id"])
            except MlflowRejected as exc:
                if exc.code != "RESOURCE_ALREADY_EXISTS":  # created by someone else meanwhile: read it
                    raise
        raise MlflowRejected(f"MLflow experiment {name!r} could neither be read nor created")

    def find_run(self, experiment_id: str, tag: str, value: str) -> RemoteRun | None:
        body = {"experiment_ids": [experiment_id], "filter": f"tags.`{tag}` = '{value}'",
                "run_view_type": "ACTIVE_ONLY", "max_results": 1}
        runs = self._api("POST", "runs/search", json=body).get("runs") or []
        if not runs:
            return None
        info = runs[0]["info"]
        return RemoteRun(info["run_id"], str(info["experiment_id"]), info.get("artifact_uri", ""))

    def run_exists(self, run_id: str) -> bool:
        """False if the run is gone or deleted (e.g. the server's database was replaced)."""
        try:
            info = self._api("GET", "runs/get", params={"run_id": run_id})["run"]["info"]
        except MlflowRejected as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return info.get("lifecycle_stage") != "deleted"

    def create_run(self, experiment_id: str, name: str, start_ms: int, tags: dict[str, str]) -> RemoteRun:
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        info = self._api("POST", "runs/create", json=body)["run"]["info"]
        return RemoteRun(info["run_id"], str(info["experiment_id"]), info.get("artifact_uri", ""))

    def log_batch(self, run_id: str, metrics: list[dict[str, Any]], params: list[dict[str, str]],
                  tags: list[dict[str, str]]) -> None:
        self._api("POST", "runs/log-batch", json={"run_id": run_id, "metrics": metrics, "params": params,
                                                   "tags": tags})

    def set_status(self, run_id: str, status: str, end_ms: int | None) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_ms is not None:
            body["end_time"] = end_ms
        self._api("POST", "runs/update", json=body)

    def upload(self, remote: RemoteRun, local_path: str, artifact_path: str) -> None:
        """Upload one file as ``artifact_path`` (a relative path inside the run's artifacts)."""
        uri = remote.artifact_uri
        if uri.startswith("mlflow-artifacts:"):
            parts = urlsplit(uri)
            host = f"{urlsplit(self.host).scheme}://{parts.netloc}" if parts.netloc else self.host
            url = host + ARTIFACTS_API + quote(parts.path.lstrip("/") + "/" + artifact_path)
            with open(local_path, "rb") as f:
                self._request("PUT", url, data=f)
            return
        # the server hands out a store the client writes itself (s3://, a shared path...): MLflow's
        # artifact repositories know them all
        _upload_with_repository(uri, local_path, artifact_path, self.host)


class ClientBackend:
    """Any tracking URI MLflow's client understands (imports mlflow: only for non-HTTP URIs)."""

    def __init__(self, tracking_uri: str, timeout: float):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    @staticmethod
    def _wrap(exc: Exception) -> Exception:
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS",
                    "INVALID_STATE", "BAD_REQUEST", "PERMISSION_DENIED"):
            return MlflowRejected(str(exc), code)
        return MlflowUnavailable(str(exc))

    def experiment_id(self, name: str) -> str:
        try:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                try:
                    return str(self.client.create_experiment(name))
                except Exception:
                    exp = self.client.get_experiment_by_name(name)
                    if exp is None:
                        raise
            if exp.lifecycle_stage == "deleted":
                raise MlflowRejected(f"MLflow experiment {name!r} is deleted; restore it in MLflow "
                                     "or use another experiment name", "DELETED")
            return str(exp.experiment_id)
        except MlflowRejected:
            raise
        except Exception as exc:
            raise self._wrap(exc) from exc

    def find_run(self, experiment_id: str, tag: str, value: str) -> RemoteRun | None:
        try:
            runs = self.client.search_runs([experiment_id], f"tags.`{tag}` = '{value}'", max_results=1)
        except Exception as exc:
            raise self._wrap(exc) from exc
        if not runs:
            return None
        info = runs[0].info
        return RemoteRun(info.run_id, str(info.experiment_id), info.artifact_uri or "")

    def run_exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except Exception as exc:
            wrapped = self._wrap(exc)
            if isinstance(wrapped, MlflowRejected) and wrapped.code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise wrapped from exc
        return run.info.lifecycle_stage != "deleted"

    def create_run(self, experiment_id: str, name: str, start_ms: int, tags: dict[str, str]) -> RemoteRun:
        try:
            run = self.client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name)
        except Exception as exc:
            raise self._wrap(exc) from exc
        return RemoteRun(run.info.run_id, str(run.info.experiment_id), run.info.artifact_uri or "")

    def log_batch(self, run_id: str, metrics: list[dict[str, Any]], params: list[dict[str, str]],
                  tags: list[dict[str, str]]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        def num(v: float | str) -> float:
            return float(v.replace("Infinity", "inf")) if isinstance(v, str) else v

        try:
            self.client.log_batch(
                run_id,
                metrics=[Metric(m["key"], num(m["value"]), m["timestamp"], m["step"]) for m in metrics],
                params=[Param(p["key"], p["value"]) for p in params],
                tags=[RunTag(t["key"], t["value"]) for t in tags], synchronous=True)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def set_status(self, run_id: str, status: str, end_ms: int | None) -> None:
        from mlflow.entities import RunStatus

        try:
            # the store call, not MlflowClient.set_terminated: that one prints "View run ..." to
            # stdout, into the user's output and `trackhooks sync --json`
            self.client._tracking_client.store.update_run_info(
                run_id, run_status=RunStatus.from_string(status), end_time=end_ms, run_name=None)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def upload(self, remote: RemoteRun, local_path: str, artifact_path: str) -> None:
        try:
            _upload_with_repository(remote.artifact_uri, local_path, artifact_path, self.tracking_uri)
        except Exception as exc:
            raise self._wrap(exc) from exc


def _upload_with_repository(artifact_uri: str, local_path: str, artifact_path: str,
                            tracking_uri: str | None = None) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    folder, name = os.path.split(artifact_path)
    # log_artifact names the upload after the local file: give it the artifact's name
    with tempfile.TemporaryDirectory(prefix="trackhooks-mlflow-") as tmp:
        staged = os.path.join(tmp, name)
        try:
            os.link(local_path, staged)
        except OSError:
            shutil.copyfile(local_path, staged)
        repo.log_artifact(staged, folder or None)

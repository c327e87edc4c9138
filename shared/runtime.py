"""The one model-runtime interface: services ask it to run a named model on a batch, whatever runs it.

Two implementations, chosen by settings (KFASHION_RUNTIME__BACKEND): in-process ONNX Runtime (CPU, or the
CUDA provider when onnxruntime-gpu and a GPU are present) and NVIDIA Triton through `tritonclient` (HTTP
or gRPC). Nothing outside this module imports onnxruntime or tritonclient for serving.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from shared.errors import ApiError, ErrorCode
from shared.manifest import Manifest, ModelEntry, load_manifest
from shared.settings import RuntimeSettings
from shared.work import run_nicer

log = logging.getLogger("kfashion.runtime")

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def onnx_session(path: Path | bytes, threads: int = 0, device: str = "cpu") -> Any:
    """An ONNX Runtime session on the CPU, or on CUDA when asked for and available (CPU otherwise)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Idle worker threads must not spin: a service holds several sessions (and OpenCV its own pool), and
    # on 2 cores one session's spinning threads slowed the next session's run by 2-3x (docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    elif device == "cuda":
        log.warning("CUDA asked for but this onnxruntime has no CUDA provider; running on the CPU")
    return ort.InferenceSession(str(path) if isinstance(path, Path) else path, options, providers=providers)


class ModelRuntime(ABC):
    """Runs the models of one manifest. Load once (`load`), then `infer` from any thread."""

    backend = "abstract"

    def __init__(
        self, models_dir: Path, settings: RuntimeSettings, registry: CollectorRegistry | None = None
    ):
        self.models_dir = Path(models_dir)
        self.settings = settings
        self.manifest: Manifest = load_manifest(self.models_dir)
        self.loaded: list[str] = []
        self._ready = threading.Event()
        self.error: str | None = None
        self._seconds = Histogram(
            "kfashion_model_inference_seconds",
            "time of one model call (one batch)",
            ["model", "backend"],
            registry=registry,
        )
        self._batch = Histogram(
            "kfashion_model_batch_size",
            "inputs per model call",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def healthy(self) -> bool:
        return self.problem() is None

    def problem(self) -> dict[str, Any] | None:
        """Why calls would fail now (None: they would not): what /readyz reports. A remote runtime adds
        its server not answering."""
        return None if self.ready else {"problem": "models are not loaded yet"}

    def entry(self, model: str) -> ModelEntry:
        if model not in self.manifest.models:
            raise ApiError(ErrorCode.NOT_FOUND, f"no model {model!r} in {self.models_dir}")
        return self.manifest.models[model]

    def load(self, models: Sequence[str]) -> None:
        """Load the models and run each once (warm-up), then report ready. Errors are kept for /readyz.
        The calling thread, and the compute threads the sessions start, run at the lower priority the
        settings ask for (`nice`) when it is a thread of its own, as the services' start-up calls it (a
        command calling it on its main thread keeps its priority)."""
        if threading.current_thread() is not threading.main_thread():
            run_nicer(self.settings.nice)
        try:
            for model in models:
                self._load(model, self.entry(model))
                self._run(model, self._warm_up_input(model), None)
                self.loaded.append(model)
            self._ready.set()
            log.info("%s ready: %s", self.backend, ", ".join(models))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("loading models failed")
            raise

    def infer(
        self, model: str, image: np.ndarray, outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs of `model` for a batch (N, ...) of float32 inputs, in calls of at most max_batch."""
        if not self.ready or model not in self.loaded:
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE, f"model {model!r} is not loaded yet", {"model": model}
            )
        chunks = []
        step = max(1, self.settings.max_batch)
        for start in range(0, len(image), step):
            batch = np.ascontiguousarray(image[start : start + step], dtype=np.float32)
            began = time.perf_counter()
            chunks.append(self._run(model, batch, outputs))
            self._seconds.labels(model, self.backend).observe(time.perf_counter() - began)
            self._batch.labels(model).observe(len(batch))
        return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}

    def status(self) -> dict[str, Any]:
        """What is loaded, from which manifest, and the loading error if any (for /readyz and /services)."""
        return {
            "backend": self.backend,
            "ready": self.ready,
            "models": {
                name: {"version": self.manifest.models[name].version, "loaded": name in self.loaded}
                for name in self.manifest.models
            },
            "taxonomy_version": self.manifest.taxonomy_version,
            **({"error": self.error} if self.error else {}),
        }

    def _warm_up_input(self, model: str) -> np.ndarray:
        spec = self.entry(model).inputs[0]
        return np.zeros([1 if isinstance(d, str) else d for d in spec.shape], np.float32)

    def _output_names(self, model: str, outputs: Sequence[str] | None) -> list[str]:
        return list(outputs) if outputs else [o.name for o in self.entry(model).outputs]

    @abstractmethod
    def _load(self, model: str, entry: ModelEntry) -> None: ...

    @abstractmethod
    def _run(self, model: str, batch: np.ndarray, outputs: Sequence[str] | None) -> dict[str, np.ndarray]: ...


class OnnxRuntimeBackend(ModelRuntime):
    backend = "onnxruntime"

    def __init__(
        self, models_dir: Path, settings: RuntimeSettings, registry: CollectorRegistry | None = None
    ):
        super().__init__(models_dir, settings, registry)
        self._sessions: dict[str, Any] = {}

    def _load(self, model: str, entry: ModelEntry) -> None:
        path = self.models_dir / entry.file
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (listed in the manifest)")
        self._sessions[model] = onnx_session(path, self.settings.threads, self.settings.device)

    def providers(self, model: str) -> list[str]:
        return list(self._sessions[model].get_providers())

    def _run(self, model: str, batch: np.ndarray, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        names = self._output_names(model, outputs)
        input_name = self.entry(model).inputs[0].name
        return dict(zip(names, self._sessions[model].run(names, {input_name: batch}), strict=True))


class TritonBackend(ModelRuntime):
    """Models served by a Triton server whose repository holds the manifest's models under their names
    (deploy/ builds it from the models folder). The manifest still says how to prepare inputs and read
    outputs."""

    backend = "triton"

    def __init__(
        self, models_dir: Path, settings: RuntimeSettings, registry: CollectorRegistry | None = None
    ):
        super().__init__(models_dir, settings, registry)
        if settings.triton_protocol == "grpc":
            import tritonclient.grpc as client_module
        else:
            import tritonclient.http as client_module
        self._module = client_module
        # tritonclient's HTTP client (geventhttpclient) works only in the thread that made it, and the
        # services call from a pool of threads: one client per thread. The gRPC client is thread-safe.
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()

    @property
    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            http = self.settings.triton_protocol == "http"
            with self._clients_lock:
                if not http and self._clients:
                    client = self._clients[0]
                else:
                    client = self._module.InferenceServerClient(
                        self.settings.triton_url,
                        **({"network_timeout": self.settings.triton_timeout_s} if http else {}),
                    )
                    self._clients.append(client)
            self._local.client = client
        return client

    def _load(self, model: str, entry: ModelEntry) -> None:
        """Wait (up to the timeout) for the server and the model: Triton may start after the service."""
        deadline = time.monotonic() + self.settings.triton_timeout_s
        while True:
            try:
                if self._client.is_model_ready(model):
                    return
                problem = "no ready model"
            except Exception as exc:  # the server is not up yet
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"Triton at {self.settings.triton_url}, model {model!r}: {problem}")
            time.sleep(0.5)

    def problem(self) -> dict[str, Any] | None:
        if not self.ready:
            return super().problem()
        try:
            if self._client.is_server_ready():
                return None
        except Exception:  # refused, reset: the same answer as not ready
            pass
        url = self.settings.triton_url
        return {"problem": f"Triton at {url} does not answer", "service": "triton", "url": url}

    def _run(self, model: str, batch: np.ndarray, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        names = self._output_names(model, outputs)
        request = self._module.InferInput(self.entry(model).inputs[0].name, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        wanted = [self._module.InferRequestedOutput(name) for name in names]
        try:
            result = self._client.infer(model, [request], outputs=wanted)
        except Exception as exc:  # tritonclient's errors, refused or reset connections: the server's fault
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Triton at {self.settings.triton_url} failed to run {model}: {type(exc).__name__}: {exc}",
                {"service": "triton", "url": self.settings.triton_url, "model": model},
            ) from exc
        return {name: result.as_numpy(name) for name in names}

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def create_runtime(
    models_dir: Path, settings: RuntimeSettings, registry: CollectorRegistry | None = None
) -> ModelRuntime:
    backends = {"onnxruntime": OnnxRuntimeBackend, "triton": TritonBackend}
    return backends[settings.backend](models_dir, settings, registry)

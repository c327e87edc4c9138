"""One shape for every model service. A model (detector, attributes, style, and any model added later) is
an `ImageModel`: it runs on images with a pydantic request beside each image and answers a pydantic
response per image. Its `ModelSpec` (in the service's schemas.py) names its route, its request and response
types and whether one call takes many images; services/model_app.py serves any ImageModel over HTTP, and
the gateway calls it in-process or over HTTP (gateway/clients.py) with the same types, so the answer's shape
is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from shared.runtime import ModelRuntime

Region = Literal["outer", "top", "bottom", "onepiece"]  # shared.taxonomy.REGIONS, as a type
Box = tuple[float, float, float, float]  # x, y, width, height in the image's pixels

RequestT = TypeVar("RequestT", bound=BaseModel)
ResponseT = TypeVar("ResponseT", bound=BaseModel)


@dataclass(frozen=True)
class ModelSpec(Generic[RequestT, ResponseT]):
    """What a model service is, for its server and its clients alike."""

    name: str  # the service's name and the runtime model it runs
    route: str  # POST endpoint
    title: str
    summary: str
    description: str
    request: type[RequestT]  # what a call says beside the image (form fields, JSON-valued ones as JSON text)
    response: type[ResponseT]  # the answer for one image
    batched: bool  # True: multipart `files` (repeated), answered per image under `results`; False: one `file`

    @property
    def file_field(self) -> str:
        return "files" if self.batched else "file"


class ImageModel(Protocol[RequestT, ResponseT]):
    """A model a service serves. Loading and warming up are the runtime's (`runtime.load(spec.name)`)."""

    spec: ModelSpec[RequestT, ResponseT]
    runtime: ModelRuntime

    def predict(self, images: Sequence[np.ndarray], requests: Sequence[RequestT]) -> list[ResponseT]:
        """One response per RGB image, in order; all images go through the model in one call."""
        ...

    def options(self) -> dict:
        """The settings its answers depend on (the detector's thresholds), reported with batched answers."""
        ...

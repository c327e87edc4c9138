"""POST /recommend: items of other regions to wear with a photo's item or a catalog item, filtered by
preferences, and "the same but with one attribute changed". One input, or many in one call (batch
clients): each input succeeds or fails alone. The handler only; the work is in operations.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from services.recommend.operations import Recommendations
from services.recommend.schemas import TaggedRecommend
from shared.envelope import success
from shared.errors import every_input_failed


def recommendations(request: Request) -> Recommendations:
    """The app's recommender (set by services/search/app.py)."""
    return request.app.state.recommendations


router = APIRouter()


@router.post(
    "/recommend",
    tags=["recommend"],
    summary="items to wear with a photo's or a catalog item, and attribute changes; batches too",
)
async def recommend(
    spec: TaggedRecommend, work: Annotated[Recommendations, Depends(recommendations)]
) -> Response:
    work.search.ensure_ready()
    answer = await run_in_threadpool(work.recommend_all, spec)
    if error := every_input_failed(answer["results"]):
        raise error
    return JSONResponse(success(answer))

"""Tagging jobs: large inputs stored first, tagged in the background, results kept per image.

Each image is a row that goes from pending to done or failed in its own transaction, and its input
bytes wait on disk until then, so a worker killed at any moment resumes after a restart where it
stopped: nothing done is redone, nothing is lost, and there is never a second result for an image.
A job's status and counts are read from its rows, never kept apart from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx2
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from gateway.inputs import Source
from gateway.tagging import Tagged
from shared.blobs import BlobStore
from shared.db import migrate
from shared.envelope import DATE_FORMAT, success
from shared.errors import ApiError, ErrorCode
from shared.schema import tagging_job_items, tagging_jobs

log = logging.getLogger("kfashion.jobs")


PENDING, DONE, FAILED = "pending", "done", "failed"
WAITING, SENDING, DELIVERED = "waiting", "sending", "delivered"  # a callback's states (and FAILED)
CALLBACK_RETRY_S = (1.0, 4.0)  # waits between the three attempts to deliver a callback
CLAIM_LEASE_S = 60.0  # how long a worker's claim of an image holds without renewal (renewed while tagging)


class JobStore:
    def __init__(self, engine: Engine, blobs: BlobStore):
        self.engine = engine
        self.blobs = blobs
        migrate(engine)

    @staticmethod
    def _input_key(job_id: str, position: int) -> str:
        return f"jobs/{job_id}/{position:06d}"

    def create(
        self,
        sources: list[Source],
        options: dict,
        callback_url: str | None = None,
        owner: str | None = None,
    ) -> str:
        """Store every input, then the job's rows in one transaction; sources that already failed
        (a bad archive entry) are stored as failed with their reason. With `callback_url`, the job is
        POSTed there once done (JobWorker). `owner`: the API key's id that may see it (gateway/access.py)."""
        job_id = uuid.uuid4().hex
        stored: list[str] = []
        try:
            rows = []
            for position, source in enumerate(sources):
                if source.data is not None and source.error is None:
                    stored.append(self._input_key(job_id, position))
                    self.blobs.put(stored[-1], source.data)
                rows.append(
                    {
                        "job_id": job_id,
                        "position": position,
                        "name": source.name,
                        "url": source.url,
                        "status": FAILED if source.error else PENDING,
                        "result": _failed(source.name, source.error) if source.error else None,
                        "finished": None,  # set only by the worker: a job is running once one is
                    }
                )
            with self.engine.begin() as db:
                db.execute(
                    insert(tagging_jobs).values(
                        id=job_id,
                        created=_now(),
                        options=options,
                        callback_url=callback_url,
                        callback_status=WAITING if callback_url else None,
                        owner=owner,
                    )
                )
                db.execute(insert(tagging_job_items), rows)
        except BaseException:
            for key in stored:  # the rows were not written: nothing refers to these inputs
                self.blobs.delete(key)
            raise
        return job_id

    def get(self, job_id: str, owner: str | None = None) -> dict:
        """A job's summary; with `owner`, only if it belongs to that key (another's is not found)."""
        with self.engine.connect() as db:
            job = db.execute(_jobs_of(owner).where(tagging_jobs.c.id == job_id)).mappings().first()
            if job is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no tagging job {job_id}", {"job_id": job_id})
            return self._summaries(db, [job])[0]

    def newest(self, offset: int, limit: int, owner: str | None = None) -> tuple[int, list[dict]]:
        """Jobs newest first (with `owner`, that key's only), each as `get` gives it, and how many there
        are in all."""
        with self.engine.connect() as db:
            jobs_query = _jobs_of(owner)
            total = db.execute(select(func.count()).select_from(jobs_query.subquery())).scalar() or 0
            newest = jobs_query.order_by(tagging_jobs.c.created.desc(), tagging_jobs.c.id)
            jobs = db.execute(newest.offset(offset).limit(limit)).mappings().all()
            return total, self._summaries(db, jobs)

    def callback_url(self, job_id: str) -> str | None:
        """Where the job is POSTed when done, credentials included (answers show it without them)."""
        with self.engine.connect() as db:
            return db.execute(select(tagging_jobs.c.callback_url).where(tagging_jobs.c.id == job_id)).scalar()

    @staticmethod
    def _summaries(db: Connection, jobs: Sequence[RowMapping]) -> list[dict]:
        """Status and counts of jobs, read from their rows (one query for them all)."""
        ids = [job["id"] for job in jobs]
        counts: dict[str, dict[str, int]] = {job_id: {} for job_id in ids}
        last: dict[str, datetime | None] = dict.fromkeys(ids)
        rows = db.execute(
            select(
                tagging_job_items.c.job_id,
                tagging_job_items.c.status,
                func.count(),
                func.max(tagging_job_items.c.finished),
            )
            .where(tagging_job_items.c.job_id.in_(ids))
            .group_by(tagging_job_items.c.job_id, tagging_job_items.c.status)
        )
        for job_id, status, count, finished in rows:
            counts[job_id][status] = count
            if finished is not None and (last[job_id] is None or finished > last[job_id]):
                last[job_id] = finished
        summaries = []
        for job in jobs:
            these, updated = counts[job["id"]], last[job["id"]]
            pending = these.get(PENDING, 0)
            summaries.append(
                {
                    "id": job["id"],
                    "status": "done" if pending == 0 else ("running" if updated else "queued"),
                    "counts": {
                        "total": sum(these.values()),
                        "done": these.get(DONE, 0),
                        "failed": these.get(FAILED, 0),
                        "pending": pending,
                    },
                    "created": job["created"].strftime(DATE_FORMAT),
                    "updated": updated.strftime(DATE_FORMAT) if updated else None,
                    "options": job["options"],
                }
            )
            if job["callback_url"]:
                summaries[-1]["callback"] = {
                    "url": without_credentials(job["callback_url"]),
                    "status": job["callback_status"],
                    **(job["callback_detail"] or {}),
                }
        return summaries

    # ------------------------------------------------------------------ callbacks

    def callbacks_due(self) -> list[str]:
        """Jobs done whose callback waits to be sent."""
        pending = select(tagging_job_items.c.job_id).where(
            tagging_job_items.c.job_id == tagging_jobs.c.id, tagging_job_items.c.status == PENDING
        )
        query = select(tagging_jobs.c.id).where(tagging_jobs.c.callback_status == WAITING, ~pending.exists())
        with self.engine.connect() as db:
            return list(db.execute(query).scalars())

    def claim_callback(self, job_id: str) -> bool:
        """Take a waiting callback for sending; False when another worker took it first."""
        return self._move_callback(job_id, WAITING, SENDING, None)

    def end_callback(self, job_id: str, delivered: bool, detail: dict) -> None:
        self._move_callback(job_id, SENDING, DELIVERED if delivered else FAILED, detail)

    def requeue_callbacks(self) -> int:
        """Callbacks a stopped process was sending wait again (at least once: the receiver may see a job
        twice, and tells them apart by its id)."""
        with self.engine.begin() as db:
            sending = tagging_jobs.c.callback_status == SENDING
            return db.execute(update(tagging_jobs).where(sending).values(callback_status=WAITING)).rowcount

    def _move_callback(self, job_id: str, old: str, new: str, detail: dict | None) -> bool:
        with self.engine.begin() as db:
            values: dict = {"callback_status": new}
            if detail is not None:
                values["callback_detail"] = detail
            moved = db.execute(
                update(tagging_jobs)
                .where(tagging_jobs.c.id == job_id, tagging_jobs.c.callback_status == old)
                .values(**values)
            )
            return moved.rowcount == 1

    def pending(self, limit: int, exclude: set[tuple[str, int]]) -> list[dict]:
        """The oldest job's waiting images first, each with its job's options."""
        query = _waiting().limit(limit + len(exclude))
        with self.engine.connect() as db:
            rows = [dict(r) for r in db.execute(query).mappings()]
        return [r for r in rows if (r["job_id"], r["position"]) not in exclude][:limit]

    def claim(self, limit: int, worker: str, lease_s: float = CLAIM_LEASE_S) -> list[dict]:
        """Up to `limit` waiting images (oldest job first) claimed for `worker` until `lease_s` from now:
        rows another worker holds are skipped, and of two workers after the same row one wins (the claim is
        a conditional update of that row)."""
        now = _now()
        free = or_(tagging_job_items.c.claimed_until.is_(None), tagging_job_items.c.claimed_until < now)
        query = _waiting(free).limit(limit)
        claimed = []
        with self.engine.begin() as db:
            for row in db.execute(query).mappings().all():
                won = db.execute(
                    update(tagging_job_items)
                    .where(
                        tagging_job_items.c.job_id == row["job_id"],
                        tagging_job_items.c.position == row["position"],
                        tagging_job_items.c.status == PENDING,
                        free,
                    )
                    .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease_s))
                ).rowcount
                if won == 1:
                    claimed.append(dict(row))
        return claimed

    def renew(self, worker: str, keys: Sequence[tuple[str, int]], lease_s: float = CLAIM_LEASE_S) -> None:
        """Extend `worker`'s claims of the images it is still tagging."""
        until = _now() + timedelta(seconds=lease_s)
        with self.engine.begin() as db:
            for job_id, position in keys:
                db.execute(
                    update(tagging_job_items)
                    .where(
                        tagging_job_items.c.job_id == job_id,
                        tagging_job_items.c.position == position,
                        tagging_job_items.c.claimed_by == worker,
                    )
                    .values(claimed_until=until)
                )

    def release(self, worker: str, job_id: str, position: int) -> None:
        """Give an image back to waiting (a model service was down): any worker may take it again."""
        with self.engine.begin() as db:
            db.execute(
                update(tagging_job_items)
                .where(
                    tagging_job_items.c.job_id == job_id,
                    tagging_job_items.c.position == position,
                    tagging_job_items.c.claimed_by == worker,
                )
                .values(claimed_by=None, claimed_until=None)
            )

    def keep_input(self, job_id: str, position: int, data: bytes) -> None:
        self.blobs.put(self._input_key(job_id, position), data)

    def input_bytes(self, job_id: str, position: int) -> bytes | None:
        try:
            return self.blobs.get(self._input_key(job_id, position))
        except ApiError as error:
            if error.code == ErrorCode.NOT_FOUND:
                return None
            raise

    def finish(self, job_id: str, position: int, result: dict) -> bool:
        """Record an image's result once; False when it was already recorded."""
        status = FAILED if result.get("status") == "failed" else DONE
        with self.engine.begin() as db:
            changed = db.execute(
                update(tagging_job_items)
                .where(
                    tagging_job_items.c.job_id == job_id,
                    tagging_job_items.c.position == position,
                    tagging_job_items.c.status == PENDING,
                )
                .values(status=status, result=result, finished=_now())
            ).rowcount
        return changed == 1

    def results(self, job_id: str) -> list[dict]:
        query = (
            select(
                tagging_job_items.c.position,
                tagging_job_items.c.name,
                tagging_job_items.c.status,
                tagging_job_items.c.result,
            )
            .where(tagging_job_items.c.job_id == job_id)
            .order_by(tagging_job_items.c.position)
        )
        with self.engine.connect() as db:
            return [
                {"position": r.position, **(r.result or {"file": r.name, "status": PENDING})}
                for r in db.execute(query)
            ]

    def result(self, job_id: str, position: int) -> dict:
        with self.engine.connect() as db:
            row = db.execute(
                select(tagging_job_items.c.result, tagging_job_items.c.status).where(
                    tagging_job_items.c.job_id == job_id, tagging_job_items.c.position == position
                )
            ).first()
        if row is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"job {job_id} has no image {position}")
        return row.result or {"status": row.status}

    def delete(self, job_id: str, owner: str | None = None) -> None:
        self.get(job_id, owner)
        with self.engine.begin() as db:
            db.execute(delete(tagging_job_items).where(tagging_job_items.c.job_id == job_id))
            db.execute(delete(tagging_jobs).where(tagging_jobs.c.id == job_id))
        for key in list(self.blobs.keys(f"jobs/{job_id}/")):
            self.blobs.delete(key)


def copy_jobs(
    source: Engine,
    source_blobs: BlobStore,
    target: Engine,
    target_blobs: BlobStore,
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Copy the tagging jobs the target lacks (their images' rows, results and kept inputs, and where
    their callbacks stand), oldest first; returns how many were copied. Each job's inputs go before its
    rows, which go in one transaction, so a copy stopped part-way is taken up again by running it again;
    a job's id (a random uuid) says whether it is there. Pending images are tagged by the target's
    worker once it runs. `on_progress` hears each job, copied now or before."""
    here, there = JobStore(source, source_blobs), JobStore(target, target_blobs)  # both migrated
    with target.connect() as db:
        copied_before = set(db.execute(select(tagging_jobs.c.id)).scalars())
    with source.connect() as db:
        jobs = (
            db.execute(select(tagging_jobs).order_by(tagging_jobs.c.created, tagging_jobs.c.id))
            .mappings()
            .all()
        )
    copied = 0
    for job in jobs:
        if job["id"] not in copied_before:
            with source.connect() as db:
                items = (
                    db.execute(
                        select(tagging_job_items)
                        .where(tagging_job_items.c.job_id == job["id"])
                        .order_by(tagging_job_items.c.position)
                    )
                    .mappings()
                    .all()
                )
            for item in items:  # files first: a row never waits on an input the target lacks
                data = here.input_bytes(job["id"], item["position"])
                if data is not None:
                    there.keep_input(job["id"], item["position"], data)
            with target.begin() as db:
                db.execute(insert(tagging_jobs), [dict(job)])
                if items:
                    # Claims are the source's workers': the target's start with every waiting image free.
                    unclaimed = [dict(item) | {"claimed_by": None, "claimed_until": None} for item in items]
                    db.execute(insert(tagging_job_items), unclaimed)
            copied += 1
        on_progress(1)
    return copied


def _jobs_of(owner: str | None) -> Select:
    query = select(tagging_jobs)
    return query if owner is None else query.where(tagging_jobs.c.owner == owner)


def without_credentials(url: str) -> str:
    """A URL as answers show it: no user or password, no query (where tokens travel)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _waiting(*conditions: ColumnElement[bool]) -> Select:
    """The waiting images meeting `conditions`, oldest job first, each with its job's options."""
    return (
        select(
            tagging_job_items.c.job_id,
            tagging_job_items.c.position,
            tagging_job_items.c.name,
            tagging_job_items.c.url,
            tagging_jobs.c.options,
        )
        .join(tagging_jobs, tagging_jobs.c.id == tagging_job_items.c.job_id)
        .where(tagging_job_items.c.status == PENDING, *conditions)
        .order_by(tagging_jobs.c.created, tagging_job_items.c.job_id, tagging_job_items.c.position)
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _failed(name: str, error: ApiError) -> dict:
    return {"file": name, "status": FAILED, "error": error.to_dict()}


TagOne = Callable[[Source, dict], Awaitable[Tagged]]


class JobWorker:
    """Tags pending images of every job, a few at a time, until stopped; wakes up when a job arrives.
    A model service that is down leaves the image pending (tried again later), never failed."""

    def __init__(
        self,
        store: JobStore,
        tag_one: TagOne,
        concurrency: int,
        idle_s: float = 1.0,
        callback_timeout_s: float = 10.0,
        registry: CollectorRegistry | None = None,
    ):
        self.store = store
        self.tagged = Counter(
            "kfashion_job_images_tagged",
            "job images this process finished (tagged, or failed alone)",
            registry=registry or CollectorRegistry(),
        )
        self.tag_one = tag_one
        self.concurrency = concurrency
        self.idle_s = idle_s
        self.callback_timeout_s = callback_timeout_s
        self.wake = asyncio.Event()
        self.name = f"worker-{uuid.uuid4().hex[:12]}"  # whose claims are whose, across gateway processes
        self._task: asyncio.Task | None = None
        self._in_flight: set[tuple[str, int]] = set()
        self._callbacks: set[asyncio.Task] = set()
        # Callbacks can only fall due when an image finishes (or were left by a stopped process): only
        # then is the database asked, not on every turn of the loop.
        self._callbacks_may_be_due = True

    def job_added(self) -> None:
        """A new job: its images wait, and a job whose every input failed already is done (its callback
        due)."""
        self._callbacks_may_be_due = True
        self.wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        # A callback cut off here stays "sending" and is sent again at the next start.
        for task in [self._task, *self._callbacks]:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        running: set[asyncio.Task] = set()
        renewed = time.monotonic()
        await asyncio.to_thread(self.store.requeue_callbacks)
        while True:
            if self._callbacks_may_be_due:
                self._callbacks_may_be_due = False
                for job_id in await asyncio.to_thread(self.store.callbacks_due):
                    task = asyncio.create_task(self._call_back(job_id))
                    self._callbacks.add(task)
                    task.add_done_callback(self._callbacks.discard)
            if self._in_flight and time.monotonic() - renewed > CLAIM_LEASE_S / 3:
                await asyncio.to_thread(self.store.renew, self.name, list(self._in_flight))
                renewed = time.monotonic()
            room = self.concurrency - len(running)
            batch = await asyncio.to_thread(self.store.claim, room, self.name) if room > 0 else []
            for row in batch:
                self._in_flight.add((row["job_id"], row["position"]))
                task = asyncio.create_task(self._one(row))
                running.add(task)
                task.add_done_callback(running.discard)
            if batch and len(running) < self.concurrency:
                continue
            woken = asyncio.create_task(self.wake.wait())
            await asyncio.wait({woken, *running}, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            self.wake.clear()

    async def _one(self, row: dict) -> None:
        key = (row["job_id"], row["position"])
        try:
            data = await asyncio.to_thread(self.store.input_bytes, *key)
            source = Source(row["name"], data=data, url=row["url"])
            if data is None and not row["url"]:
                source.error = ApiError(ErrorCode.NOT_FOUND, f"{row['name']}: the stored input is missing")
            try:
                tagged = await self.tag_one(source, row["options"] or {})
                result = tagged.result
                if data is None and tagged.image is not None:
                    # An image fetched from its URL is kept as the job's input, as uploads are: its drawn
                    # form can then be downloaded, and the host is not asked again.
                    await asyncio.to_thread(self.store.keep_input, *key, tagged.image.data)
            except ApiError as error:
                if error.code in (ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.SERVICE_BUSY):
                    log.warning("job %s image %s waits: %s", *key, error.message)
                    await asyncio.to_thread(self.store.release, self.name, *key)
                    await asyncio.sleep(self.idle_s)
                    return
                result = _failed(row["name"], error)
            except Exception:
                log.exception("job %s image %s failed", *key)
                result = _failed(row["name"], ApiError(ErrorCode.INTERNAL_ERROR, "tagging this image failed"))
            if await asyncio.to_thread(self.store.finish, *key, result):
                self.tagged.inc()
            self._callbacks_may_be_due = True
        finally:
            self._in_flight.discard(key)

    async def _call_back(self, job_id: str) -> None:
        """POST the done job (the envelope of GET /tagging/jobs/{id}) to its callback URL: three attempts,
        a 2xx answer delivers it; the outcome is kept on the job (its `callback`)."""
        if not await asyncio.to_thread(self.store.claim_callback, job_id):
            return  # another worker has it
        try:
            await self._deliver(job_id)
        except Exception:
            log.exception("job %s: callback failed", job_id)
            await asyncio.to_thread(self.store.end_callback, job_id, False, {"error": "internal error"})

    async def _deliver(self, job_id: str) -> None:
        job = await asyncio.to_thread(self.store.get, job_id)
        job.pop("callback")
        url = await asyncio.to_thread(self.store.callback_url, job_id)
        detail: dict = {"attempts": 0}
        payload = success({"event": "job.done", "job": job})
        async with httpx2.AsyncClient(timeout=self.callback_timeout_s) as client:
            for wait in (0.0, *CALLBACK_RETRY_S):
                await asyncio.sleep(wait)
                detail["attempts"] += 1
                try:
                    answer = await client.post(url, json=payload)
                    detail.update(http_status=answer.status_code, error=None)
                    if answer.is_success:
                        break
                except httpx2.HTTPError as exc:
                    detail.update(http_status=None, error=f"{type(exc).__name__}: {exc}")
        delivered = detail.get("http_status") is not None and 200 <= detail["http_status"] < 300
        if delivered:
            detail["delivered"] = _now().strftime(DATE_FORMAT)
        else:
            log.warning("job %s: callback to %s failed: %s", job_id, url, detail)
        await asyncio.to_thread(self.store.end_callback, job_id, delivered, detail)

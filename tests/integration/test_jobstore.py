"""The job store on SQLite and on the real PostgreSQL: one result per image, counts from the rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.inputs import Source
from gateway.jobs import JobStore
from shared.blobs import LocalBlobStore
from shared.db import database_engine
from shared.errors import ApiError, ErrorCode
from tests.databases import database_url
from tests.servers import ROOT


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    engine = database_engine(database_url(request.param, tmp_path, request))
    yield JobStore(engine, LocalBlobStore(tmp_path / "blobs"))
    engine.dispose()


def test_images_finish_once_and_counts_follow_the_rows(store: JobStore, tmp_path: Path) -> None:
    bad = ApiError(ErrorCode.UNSUPPORTED_ARCHIVE_ENTRY, "a.zip/readme.txt: not an image file")
    sources = [Source("a.jpg", b"1"), Source("a.zip/readme.txt", error=bad), Source("b.jpg", b"22")]
    job_id = store.create(sources, {"top_k": 3})
    assert store.get(job_id)["counts"] == {"total": 3, "done": 0, "failed": 1, "pending": 2}
    assert store.get(job_id)["status"] == "queued"
    assert store.input_bytes(job_id, 2) == b"22" and store.input_bytes(job_id, 1) is None
    mine = [r for r in store.pending(100, set()) if r["job_id"] == job_id]
    assert [r["position"] for r in mine] == [0, 2]
    assert store.finish(job_id, 0, {"file": "a.jpg", "status": "done", "items": []})
    assert not store.finish(job_id, 0, {"file": "a.jpg", "status": "done", "items": [1]})  # once only
    assert store.get(job_id)["status"] == "running"
    assert all(r["position"] != 0 for r in store.pending(100, set()) if r["job_id"] == job_id)
    store.finish(job_id, 2, {"file": "b.jpg", "status": "failed", "error": {"code": "CORRUPT_IMAGE"}})
    job = store.get(job_id)
    assert job["status"] == "done" and job["counts"] == {"total": 3, "done": 1, "failed": 2, "pending": 0}
    results = store.results(job_id)
    assert [r["position"] for r in results] == [0, 1, 2]
    assert results[0]["items"] == [] and results[1]["error"]["code"] == "UNSUPPORTED_ARCHIVE_ENTRY"
    store.delete(job_id)
    with pytest.raises(ApiError) as raised:
        store.get(job_id)
    assert raised.value.code == ErrorCode.NOT_FOUND
    assert list(store.blobs.keys(f"jobs/{job_id}/")) == []


def test_jobs_list_newest_first_with_counts(store: JobStore) -> None:
    first = store.create([Source("a.jpg", b"1")], {})
    second = store.create([Source(f"{k}.jpg", b"x") for k in range(3)], {"top_k": 5})
    store.finish(second, 1, {"file": "1.jpg", "status": "done", "items": []})
    total, jobs = store.newest(0, 10)
    assert total == 2 and [j["id"] for j in jobs] == [second, first]
    assert jobs[0] == store.get(second) and jobs[1] == store.get(first)
    assert jobs[0]["status"] == "running" and jobs[0]["counts"] == {
        "total": 3,
        "done": 1,
        "failed": 0,
        "pending": 2,
    }
    assert store.newest(1, 10) == (2, [store.get(first)]) and store.newest(2, 10) == (2, [])


def test_a_callback_is_due_once_the_job_is_done_and_sent_once(store: JobStore) -> None:
    quiet = store.create([Source("a.jpg", b"1")], {})
    job_id = store.create([Source("a.jpg", b"1"), Source("b.jpg", b"2")], {}, "http://shop.test/hook")
    assert store.get(job_id)["callback"] == {"url": "http://shop.test/hook", "status": "waiting"}
    assert "callback" not in store.get(quiet)
    store.finish(job_id, 0, {"file": "a.jpg", "status": "done", "items": []})
    assert store.callbacks_due() == []  # b.jpg is still pending
    store.finish(job_id, 1, {"file": "b.jpg", "status": "done", "items": []})
    store.finish(quiet, 0, {"file": "a.jpg", "status": "done", "items": []})
    assert store.callbacks_due() == [job_id]
    assert store.claim_callback(job_id) and not store.claim_callback(job_id)  # one sender
    assert store.callbacks_due() == []
    assert store.requeue_callbacks() == 1 and store.callbacks_due() == [job_id]  # its process stopped
    assert store.claim_callback(job_id)
    store.end_callback(job_id, True, {"attempts": 1, "http_status": 204})
    assert store.get(job_id)["callback"] == {
        "url": "http://shop.test/hook",
        "status": "delivered",
        "attempts": 1,
        "http_status": 204,
    }
    assert store.requeue_callbacks() == 0 and store.callbacks_due() == []


def test_pending_skips_images_in_flight(store: JobStore) -> None:
    job_id = store.create([Source(f"{k}.jpg", b"x") for k in range(4)], {})
    mine = lambda rows: [r["position"] for r in rows if r["job_id"] == job_id]  # noqa: E731
    first = mine(store.pending(1000, set()))
    assert first == [0, 1, 2, 3]
    assert mine(store.pending(1000, {(job_id, 0), (job_id, 1)})) == [2, 3]
    store.delete(job_id)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_build_the_declared_schema(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from shared.db import migrate
    from shared.schema import metadata

    engine = database_engine(database_url(kind, tmp_path, request))
    migrate(engine)
    migrate(engine)  # again: nothing to do
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        version = connection.execute(sa.text("select version_num from alembic_version")).scalar()
    assert version == "0010"
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_starting_together_migrate_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A gateway and a search service start at the same moment on one new database: both must come up."""
    url = database_url(kind, tmp_path, request)
    script = (
        "import sys; from shared.db import database_engine, migrate; migrate(database_engine(sys.argv[1]))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    engine = database_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("select count(*) from alembic_version")).scalar() == 1
    engine.dispose()


def test_each_waiting_image_is_claimed_by_one_worker(store: JobStore) -> None:
    """Two gateway processes share the rows (the Kubernetes gateway runs 2 to 8): each waiting image goes to
    one of them, a claim runs out if its worker dies, and an image given back can be taken again."""
    import threading

    job_id = store.create([Source(f"{k}.jpg", b"x") for k in range(40)], {})
    other = JobStore(store.engine, store.blobs)  # another process's store on the same database
    first = [r["position"] for r in store.claim(3, "a")]
    second = [r["position"] for r in other.claim(3, "b")]
    assert (first, second) == ([0, 1, 2], [3, 4, 5])  # oldest first, none taken twice
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def take(name: str, jobs: JobStore) -> None:
        while rows := jobs.claim(3, name):
            taken[name] += [r["position"] for r in rows]

    workers = [threading.Thread(target=take, args=(n, j)) for n, j in (("a", store), ("b", other))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    claimed = first + second + taken["a"] + taken["b"]
    assert sorted(claimed) == list(range(40))  # every image once, none twice
    assert not store.claim(10, "c")  # all held
    store.release("a", job_id, first[0])  # a service was down: given back
    assert [r["position"] for r in store.claim(10, "c")] == [first[0]]
    store.renew("b", [(job_id, second[0])], lease_s=-1)  # a dead worker's claim, run out
    assert [r["position"] for r in store.claim(10, "c")] == [second[0]]
    store.finish(job_id, second[1], {"file": "x.jpg", "status": "done", "items": []})
    store.renew("b", [(job_id, p) for p in second], lease_s=-1)
    assert [r["position"] for r in store.claim(100, "c")] == [second[2]]  # done is never claimed again

"""Jobs over REST: read one, read its result, cancel it (docs/protocol.md "Jobs").

A route whose work may be long (race step, time-travel POST, REST `step` command) starts a job
in a worker and waits `job_wait_seconds`: done -> the usual answer; else `202 {"job": JobPublic}`
with `Location: /api/jobs/{id}`. The job's owner (the token that started it) may read and cancel
it; `result` is the answer the route would have given (409 while the job runs).
"""

import json
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import CallerDep, ManagerDep, get_caller, require_owner
from app.sessions.jobs import JobBoard, JobRecord
from app.sessions.manager import SessionCallError

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No owner token (Authorization: Bearer)"},
    403: {"description": "Another owner's job"},
    404: {"description": "No such job (or it ended more than job_keep_seconds ago)"},
}

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERRORS)


class JobPublic(BaseModel):
    """A job: what it works on, its state and progress (done of total units, e.g. epochs)."""

    id: str
    kind: Literal["race_step", "replay", "step"]
    target: str  # the session id (replay, step) or the race id (race_step)
    state: Literal["running", "done", "failed", "cancelled"]
    done: int
    total: int
    detail: str | None


class JobAccepted(BaseModel):
    """The 202 answer of a route whose work did not end within job_wait_seconds."""

    job: JobPublic


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": JobAccepted, "description": "Still running after job_wait_seconds: a job "
          "(Location: /api/jobs/{id}); its result is the answer this route gives when done"},
}


def accepted(record: JobRecord) -> JSONResponse:
    """202 {"job": JobPublic} with Location."""
    return JSONResponse(
        {"job": record.public}, status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/jobs/{record.id}"},
    )


def result_response(record: JobRecord, success: int = 200) -> Response:
    """An ended job's answer: its body with `success`, or its error (status, detail)."""
    assert record.end is not None
    code, body = record.end
    if code != 200:
        raise SessionCallError(code, body)
    if isinstance(body, bytes):
        return Response(body, status_code=success, media_type="application/json")
    return JSONResponse(body, status_code=success)


async def answer(board: JobBoard, record: JobRecord, success: int = 200) -> Response:
    """Wait job_wait_seconds: the answer if the job ended, else 202 with the job."""
    if await board.wait(record):
        board.forget(record)  # answered now (watchers already had its end on the websocket)
        return result_response(record, success)
    return accepted(record)


def owned_job(board: JobBoard, job_id: str, caller: Any) -> JobRecord:
    """The job, for its owner only (404, then 401 or 403)."""
    record = board.get(job_id)
    require_owner(caller, record.owner, f"job {job_id!r}")
    return record


JOB_FIELDS = tuple(JobPublic.model_fields)


@router.get("/{job_id}", response_model=JobPublic)
async def read_job(job_id: str, request: Request) -> Response:
    """The job's state and progress."""
    # The poll an owner makes twice a second while a job runs (42 race owners: 84 a second):
    # no dependencies to resolve and no model to validate and serialize again, the worker's
    # JobPublic dict is encoded as is (bench/request_cost.py; issue 9's /health bar).
    caller = await get_caller(request)
    public = owned_job(request.app.state.manager.jobs, job_id, caller).public
    body = json.dumps({key: public[key] for key in JOB_FIELDS}, separators=(",", ":"))
    return Response(body, media_type="application/json")


@router.get(
    "/{job_id}/result",
    responses={200: {"description": "The answer of the route that started the job"},
               409: {"description": "The job is still running, or was cancelled"},
               504: {"description": "The job ran longer than max_job_seconds"}},
)
async def read_job_result(job_id: str, manager: ManagerDep, caller: CallerDep) -> Response:
    """The answer the route would have given (409 while the job runs)."""
    record = owned_job(manager.jobs, job_id, caller)
    if record.running:
        public = record.public
        raise SessionCallError(
            409, f"job {job_id} is still running ({public['done']} of {public['total']}); "
            f"GET /api/jobs/{job_id} until its state is not 'running'",
            {"Retry-After": "1"},
        )
    return result_response(record)


@router.delete("/{job_id}")
async def delete_job(job_id: str, manager: ManagerDep, caller: CallerDep) -> JobPublic:
    """Cancel the job (its work stops within one slice of its worker); the job as it ended."""
    record = owned_job(manager.jobs, job_id, caller)
    await manager.jobs.cancel(record)
    return JobPublic.model_validate(record.public)


async def command_answer(
    manager: ManagerDep, session_id: str, owner: str, payload: dict[str, Any]
) -> Any:
    """A REST command (sessions.py): a `step` is a job answered as `answer` does; any other
    command's reply is returned as is."""
    record, reply = await manager.jobs.step_command(session_id, owner, payload)
    if record is None:
        return reply
    return await answer(manager.jobs, record)

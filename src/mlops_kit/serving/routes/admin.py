"""POST /admin/reload: check the registry now, behind a bearer token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.serving.answers import ErrorResponse, JSONBody, ReloadResult
from mlops_kit.serving.routes.deps import LoaderDep, SettingsDep

router = APIRouter(tags=["admin"])
bearer = HTTPBearer(auto_error=False, description="MLOPS_KIT_ADMIN_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong token"},
        403: {"model": ErrorResponse, "description": "Admin endpoints are disabled"},
        503: {"model": ErrorResponse, "description": "The registry cannot be reached"},
    },
    summary="Check the registry now and serve the new champion if the alias moved",
)
async def reload(credentials: Credentials, loader: LoaderDep, settings: SettingsDep) -> JSONBody:
    """Needs `Authorization: Bearer <MLOPS_KIT_ADMIN_TOKEN>`; disabled when no token is set."""
    token = settings.admin_token
    if not token:
        raise BadRequest(
            403, "admin endpoints are disabled: set MLOPS_KIT_ADMIN_TOKEN to enable them"
        )
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise BadRequest(
            401,
            "missing or wrong admin token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    before = loader.current
    swapped, message = await run_in_threadpool(loader.check)
    after = loader.current
    if after is None or (not swapped and loader.registry.error):
        raise BadRequest(503, message)
    return JSONBody(
        {
            "reloaded": swapped,
            "model_name": settings.model_name,
            "previous_version": before.version if before else None,
            "model_version": after.version,
            "message": message,
        }
    )

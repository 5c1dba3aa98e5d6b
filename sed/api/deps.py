"""Dependencies shared by the routers: the store, the configuration, the live feed, the signed-in user."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sed.api.auth import may, token_digest
from sed.api.limits import LoginThrottle
from sed.api.live import IncidentFeed
from sed.api.metrics import ApiMetrics
from sed.config import ServerConfig
from sed.store import Role, Store, User

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/auth/login (or `sed users token`).")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


def get_feed(request: Request) -> IncidentFeed:
    return request.app.state.feed


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


def get_login_throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[ServerConfig, Depends(get_config)]
FeedDep = Annotated[IncidentFeed, Depends(get_feed)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]


def current_user(
    store: StoreDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    """The user the bearer token belongs to; 401 without a valid, unexpired token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "not signed in: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    user = store.accounts.user_for_token(token_digest(credentials.credentials), now_ns=time.time_ns())
    if user is None:
        raise HTTPException(401, "token unknown or expired; sign in again", {"WWW-Authenticate": "Bearer"})
    return user


def current_admin(user: Annotated[User, Depends(current_user)]) -> User:
    """The signed-in user if an admin; 403 for operators."""
    if not may(user, Role.ADMIN):
        raise HTTPException(403, f"user {user.username!r} is an {user.role}; this needs an admin")
    return user


def bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str | None:
    return None if credentials is None else credentials.credentials


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(current_admin)]
BearerToken = Annotated[str | None, Depends(bearer_token)]


def remote_addr(request: Request) -> str | None:
    return None if request.client is None else request.client.host


__all__ = [
    "AdminUser",
    "BearerToken",
    "ConfigDep",
    "CurrentUser",
    "FeedDep",
    "LoginThrottleDep",
    "MetricsDep",
    "StoreDep",
    "remote_addr",
]

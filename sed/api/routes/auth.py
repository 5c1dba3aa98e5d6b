"""Signing in and out: a username and password buy a bearer token for one shift."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from sed.api.auth import authenticate, issue_token, token_digest
from sed.api.deps import BearerToken, ConfigDep, CurrentUser, LoginThrottleDep, StoreDep, remote_addr
from sed.api.limits import retry_after_header
from sed.api.params import Name, Secret
from sed.store import Role

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: Annotated[Name, Field(max_length=64)]
    password: Secret


class UserOut(BaseModel):
    username: str
    role: Role
    created_at_ns: int


class TokenOut(BaseModel):
    token: str = Field(description="Send as 'Authorization: Bearer <token>'; shown only now.")
    expires_at_ns: int | None = Field(description="UTC ns; None: until revoked.")
    user: UserOut


@router.post(
    "/login",
    response_model=TokenOut,
    summary="Exchange a username and password for a token",
    responses={
        401: {"description": "Wrong username or password."},
        429: {"description": "Too many failed logins for this user or from this address; see Retry-After."},
    },
)
def login(
    credentials: LoginIn, request: Request, store: StoreDep, config: ConfigDep, throttle: LoginThrottleDep
) -> TokenOut:
    address = remote_addr(request)
    keys = throttle.keys(username=credentials.username, remote_addr=address)
    wait_s = throttle.retry_after_s(keys)
    if wait_s is not None:
        raise HTTPException(429, "too many failed logins; wait before trying again", retry_after_header(wait_s))
    user = authenticate(store, credentials.username, credentials.password)
    now_ns = time.time_ns()
    if user is None:
        throttle.failed(keys)
        store.accounts.audit(
            username=credentials.username, action="login.failed", target="-", at_ns=now_ns, remote_addr=address
        )
        raise HTTPException(401, "wrong username or password", {"WWW-Authenticate": "Bearer"})
    throttle.succeeded(username=user.username)
    token, expires = issue_token(store, user.username, label="login", now_ns=now_ns, ttl_s=config.api.token_ttl_s)
    store.accounts.audit(username=user.username, action="login", target="-", at_ns=now_ns, remote_addr=address)
    return TokenOut(token=token, expires_at_ns=expires, user=UserOut(**vars(user)))


@router.post("/logout", status_code=204, summary="Revoke the token this request carries")
def logout(store: StoreDep, _user: CurrentUser, token: BearerToken) -> None:
    assert token is not None  # CurrentUser already refused requests without one
    store.accounts.revoke_token(token_digest(token))


@router.get("/me", response_model=UserOut, summary="Who the token belongs to")
def me(user: CurrentUser) -> UserOut:
    return UserOut(**vars(user))

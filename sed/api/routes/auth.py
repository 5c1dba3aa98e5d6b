"""Signing in and out: a username and password buy a bearer token for one shift."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from sed.api.auth import authenticate, issue_token, token_digest
from sed.api.deps import BearerToken, ConfigDep, CurrentUser, StoreDep, remote_addr
from sed.store import Role

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


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
    responses={401: {"description": "Wrong username or password."}},
)
def login(credentials: LoginIn, request: Request, store: StoreDep, config: ConfigDep) -> TokenOut:
    user = authenticate(store, credentials.username, credentials.password)
    now_ns = time.time_ns()
    if user is None:
        store.accounts.audit(
            username=credentials.username,
            action="login.failed",
            target="-",
            at_ns=now_ns,
            remote_addr=remote_addr(request),
        )
        raise HTTPException(401, "wrong username or password", {"WWW-Authenticate": "Bearer"})
    token, expires = issue_token(store, user.username, label="login", now_ns=now_ns, ttl_s=config.api.token_ttl_s)
    store.accounts.audit(
        username=user.username, action="login", target="-", at_ns=now_ns, remote_addr=remote_addr(request)
    )
    return TokenOut(token=token, expires_at_ns=expires, user=UserOut(**vars(user)))


@router.post("/logout", status_code=204, summary="Revoke the token this request carries")
def logout(store: StoreDep, _user: CurrentUser, token: BearerToken) -> None:
    assert token is not None  # CurrentUser already refused requests without one
    store.accounts.revoke_token(token_digest(token))


@router.get("/me", response_model=UserOut, summary="Who the token belongs to")
def me(user: CurrentUser) -> UserOut:
    return UserOut(**vars(user))

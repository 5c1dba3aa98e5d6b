"""User management (admins only)."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sed.api.auth import check_password_strength, hash_password
from sed.api.deps import AdminUser, StoreDep
from sed.api.params import Name, Secret, invalid
from sed.api.routes.auth import UserOut
from sed.store import ConflictError, Role

router = APIRouter(prefix="/api/users", tags=["users"])

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"


class UserIn(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: Secret
    role: Role = Role.OPERATOR


@router.get("", response_model=list[UserOut], summary="Every user (admin)")
def list_users(store: StoreDep, _admin: AdminUser) -> list[UserOut]:
    return [UserOut(**vars(u)) for u in store.accounts.list_users()]


@router.post("", response_model=UserOut, status_code=201, summary="Create a user (admin)")
def add_user(new: UserIn, store: StoreDep, admin: AdminUser) -> UserOut:
    problem = check_password_strength(new.password, username=new.username)
    if problem is not None:
        raise invalid("body", "password", msg=problem)
    now_ns = time.time_ns()
    try:
        user = store.accounts.add_user(
            new.username, password_hash=hash_password(new.password), role=new.role, now_ns=now_ns
        )
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    store.accounts.audit(
        username=admin.username, action="user.add", target=f"{new.username} ({new.role})", at_ns=now_ns
    )
    return UserOut(**vars(user))


@router.delete("/{username}", status_code=204, summary="Delete a user and revoke their tokens (admin)")
def delete_user(username: Name, store: StoreDep, admin: AdminUser) -> None:
    target = store.accounts.get_user(username)
    if target is None:
        raise HTTPException(404, f"user {username} not found")
    if target.role is Role.ADMIN and store.accounts.count_admins() == 1:
        raise HTTPException(409, f"{username} is the last admin; add another admin first")
    store.accounts.remove_user(username)
    store.accounts.audit(username=admin.username, action="user.delete", target=username, at_ns=time.time_ns())

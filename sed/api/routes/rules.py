"""Webhook rules (admins): which incidents notify which URL, and how each delivery went."""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import AfterValidator, AnyHttpUrl, BaseModel, Field, UrlConstraints

from sed import wire
from sed.api.deps import AdminUser, ConfigDep, StoreDep
from sed.api.params import Name, RowId, Secret, SiteMetres
from sed.config import MIN_SECRET_CHARS
from sed.store import Area, ConflictError, DeliveryStatus, Rule

router = APIRouter(prefix="/api/rules", tags=["rules"])

#: Longest webhook URL (the store's column), characters.
MAX_URL_CHARS = 500
#: Random bytes of a secret the server makes when the admin gives none.
GENERATED_SECRET_BYTES = 32


def _fits_the_store(url: AnyHttpUrl) -> AnyHttpUrl:
    # the limit above counts what the client sent; percent-encoding (é -> %C3%A9) can triple it
    if len(str(url)) > MAX_URL_CHARS:
        raise ValueError(f"URL is {len(str(url))} characters once encoded; at most {MAX_URL_CHARS}")
    return url


class RuleIn(BaseModel):
    name: Annotated[Name, Field(max_length=64)]
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS), AfterValidator(_fits_the_store)] = Field(
        description="Where to POST the signed JSON."
    )
    labels: list[wire.Label] = Field(
        default_factory=list,
        max_length=len(wire.Label),
        description="Only these classes (each once); empty: every class.",
    )
    min_score: float = Field(0.0, ge=0, le=1, description="Only incidents at least this confident.")
    x_min_m: SiteMetres | None = None
    x_max_m: SiteMetres | None = None
    y_min_m: SiteMetres | None = None
    y_max_m: SiteMetres | None = None
    secret: Annotated[Secret | None, Field(min_length=MIN_SECRET_CHARS, max_length=200)] = Field(
        None, description="HMAC key; omitted: the server's api.webhook_secret, or a generated one returned once."
    )


class RuleOut(BaseModel):
    rule_id: int
    name: str
    url: str
    labels: list[wire.Label]
    min_score: float
    x_min_m: float | None
    x_max_m: float | None
    y_min_m: float | None
    y_max_m: float | None
    enabled: bool
    created_at_ns: int
    has_own_secret: bool


class RuleCreated(RuleOut):
    secret: str | None = Field(description="The generated signing key, shown only in this answer.")


class RulePatch(BaseModel):
    enabled: bool


class DeliveryOut(BaseModel):
    incident_id: str
    stage: wire.IncidentStage = Field(description="The stage of the incident this delivery announces.")
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    updated_at_ns: int


def _out(rule: Rule) -> RuleOut:
    return RuleOut(
        rule_id=rule.rule_id,
        name=rule.name,
        url=rule.url,
        labels=list(rule.labels),
        min_score=rule.min_score,
        **dataclasses.asdict(rule.area),
        enabled=rule.enabled,
        created_at_ns=rule.created_at_ns,
        has_own_secret=rule.secret is not None,
    )


@router.get("", response_model=list[RuleOut], summary="Webhook rules (admin)")
def list_rules(store: StoreDep, _admin: AdminUser) -> list[RuleOut]:
    return [_out(rule) for rule in store.webhooks.list_rules()]


@router.post("", response_model=RuleCreated, status_code=201, summary="Create a webhook rule (admin)")
def add_rule(new: RuleIn, store: StoreDep, config: ConfigDep, admin: AdminUser) -> RuleCreated:
    generated = None
    if new.secret is None and config.api.webhook_secret is None:
        generated = secrets.token_urlsafe(GENERATED_SECRET_BYTES)
    now_ns = time.time_ns()
    try:
        rule = store.webhooks.add_rule(
            name=new.name,
            url=str(new.url),
            labels=tuple(dict.fromkeys(new.labels)),  # a class named twice is the same filter
            min_score=new.min_score,
            area=Area(x_min_m=new.x_min_m, x_max_m=new.x_max_m, y_min_m=new.y_min_m, y_max_m=new.y_max_m),
            secret=new.secret or generated,
            now_ns=now_ns,
        )
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    store.accounts.audit(username=admin.username, action="rule.add", target=new.name, at_ns=now_ns)
    return RuleCreated(**_out(rule).model_dump(), secret=generated)


@router.patch("/{rule_id}", response_model=RuleOut, summary="Enable or disable a rule (admin)")
def patch_rule(rule_id: RowId, patch: RulePatch, store: StoreDep, admin: AdminUser) -> RuleOut:
    if not store.webhooks.set_enabled(rule_id, patch.enabled):
        raise HTTPException(404, f"rule {rule_id} not found")
    store.accounts.audit(username=admin.username, action="rule.update", target=str(rule_id), at_ns=time.time_ns())
    rule = store.webhooks.get_rule(rule_id)
    assert rule is not None
    return _out(rule)


@router.delete("/{rule_id}", status_code=204, summary="Delete a rule and its delivery record (admin)")
def delete_rule(rule_id: RowId, store: StoreDep, admin: AdminUser) -> None:
    if not store.webhooks.delete_rule(rule_id):
        raise HTTPException(404, f"rule {rule_id} not found")
    store.accounts.audit(username=admin.username, action="rule.delete", target=str(rule_id), at_ns=time.time_ns())


@router.get("/{rule_id}/deliveries", response_model=list[DeliveryOut], summary="How each delivery went (admin)")
def list_deliveries(rule_id: RowId, store: StoreDep, _admin: AdminUser) -> list[DeliveryOut]:
    if store.webhooks.get_rule(rule_id) is None:
        raise HTTPException(404, f"rule {rule_id} not found")
    return [
        DeliveryOut(
            incident_id=d.incident_id,
            stage=d.stage,
            status=d.status,
            attempts=d.attempts,
            last_error=d.last_error,
            updated_at_ns=d.updated_at_ns,
        )
        for d in store.webhooks.deliveries(rule_id=rule_id)
    ]

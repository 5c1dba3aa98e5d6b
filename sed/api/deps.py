"""Dependencies shared by the routers: the store and the server configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sed.config import ServerConfig
from sed.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[ServerConfig, Depends(get_config)]

"""What routes need from the running server, taken from ``app.state``.

The dependencies are ``async`` on purpose: FastAPI runs plain functions in a thread pool, a
thread hop per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from herder.engine.engine import Engine
from herder.store.database import Database


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


EngineDep = Annotated[Engine, Depends(get_engine)]
DbDep = Annotated[Database, Depends(get_db)]

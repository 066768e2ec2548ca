"""The API's query parameters: their types, limits and descriptions (what the OpenAPI document
says), and the 422 for a parameter the route does not know."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, Request

from worker.read.dates import IsoDate
from worker.read.queries import MAX_DAYS, MAX_HOURS, MAX_LIMIT

StartDate = Annotated[
    IsoDate | None,
    Query(description="First UTC date of started_at, inclusive (YYYY-MM-DD); open if absent."),
]
EndDate = Annotated[
    IsoDate | None,
    Query(description="Last UTC date of started_at, inclusive (YYYY-MM-DD); open if absent."),
]
Model = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description="Only this model; unknown is an empty result."),
]
Endpoint = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Only this upstream endpoint.")
]
Before = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="The page older than this session (its id)."),
]
After = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="The page newer than this session (its id)."),
]
User = Annotated[
    str | None, Query(min_length=1, max_length=128, description="Only this user's sessions (user_id).")
]
Top = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Users and sessions to list, 1..{MAX_LIMIT}.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows to return, 1..{MAX_LIMIT}.")]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days in the window, ending on end_date.")]
WindowEnd = Annotated[
    IsoDate | None, Query(description="Last UTC date of the window (YYYY-MM-DD); today (UTC) if absent.")
]

Hours = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_HOURS,
        description=f"Instead of dates: the last N UTC hours, 1..{MAX_HOURS} (the current one so far last).",
    ),
]
SeriesHours = Annotated[
    int,
    Query(ge=1, le=MAX_HOURS, description=f"UTC hours in the series, 1..{MAX_HOURS}, the current one last."),
]


def reject_unknown_parameters(request: Request) -> None:
    """A misspelt filter (``limt=5``) is a 422, not a silently unfiltered answer."""
    route = request.scope.get("route")
    known = {field.alias for field in getattr(getattr(route, "dependant", None), "query_params", [])}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["query", name],
                    "msg": f"unknown query parameter {name!r}; known: {', '.join(sorted(known)) or 'none'}",
                    "type": "unknown_parameter",
                }
                for name in unknown
            ],
        )

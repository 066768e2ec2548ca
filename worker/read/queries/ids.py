"""Short ids: the tables show a long id as its last characters (``…3f9c2d1e``); this finds the
sessions such a tail names, so ``query session …3f9c2d1e`` opens the one it is."""

from __future__ import annotations

from worker.read.queries._base import Source, borrowed, check_text, fetch_all

# A scan of session ids (no index serves a suffix): about 20 ms per 100,000 sessions, paid only
# when the id given is not a whole one.
SESSIONS_ENDING_WITH = """
SELECT session_id FROM session_metrics
WHERE started_at IS NOT NULL AND right(session_id, %(length)s) = %(tail)s
ORDER BY session_id COLLATE "C"
LIMIT %(limit)s
"""


def sessions_ending_with(source: Source, tail: str, limit: int = 5) -> list[str]:
    """Up to ``limit`` started sessions whose id ends with ``tail``, in id order."""
    check_text("session_id", tail)
    params = {"tail": tail, "length": len(tail), "limit": limit}
    with borrowed(source) as conn:
        return [row["session_id"] for row in fetch_all(conn, SESSIONS_ENDING_WITH, params)]

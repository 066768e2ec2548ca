"""The JSON Schema of the wire contract, generated from the models.

``python -m contract.schema > contract/event.schema.json`` regenerates the shipped file; a test
fails when the two differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from contract.events import SCHEMA_VERSION, Event
from contract.fields import DEFAULT_MAX_EVENT_BYTES

SCHEMA_FILE = Path(__file__).with_name("event.schema.json")


def json_schema() -> dict[str, Any]:
    schema = TypeAdapter(Event).json_schema()
    for definition in schema["$defs"].values():
        props = definition["properties"]
        if "type" in props:  # the discriminator: the models default it, the wire requires it
            props["type"].pop("default")
            definition["required"].insert(0, "type")
        if "v" in props:
            props["v"]["description"] = f"schema version; absent means {SCHEMA_VERSION}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Agent telemetry event, wire contract v{SCHEMA_VERSION}"
    schema["description"] = (
        "One Redis stream entry has one field, 'event', holding one such UTF-8 JSON object. "
        "Unknown extra fields are ignored; occurred_at is RFC 3339 with an offset. The worker also "
        f"refuses an entry larger than its size limit (by default {DEFAULT_MAX_EVENT_BYTES} bytes)."
    )
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")

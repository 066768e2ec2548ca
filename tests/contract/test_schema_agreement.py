"""The published JSON Schema and the worker agree both ways.

Instances generated from ``contract/event.schema.json`` (hypothesis-jsonschema) must be accepted by
the worker; each mutated into a schema-invalid one must be dead-lettered. The oracle is a JSON Schema
validator (jsonschema) with the two keywords the schema borrows from ajv-formats (formatMinimum,
formatMaximum), the schema's own x-parts (usage parts within their wholes), and a date-time format
check written here from RFC 3339, not from the worker.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from contract import ContractError, decode
from contract.schema import SCHEMA_FILE
from worker.ingest.stream import Batch
from worker.ingest.triage import sort_entries

SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
_PARTS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$"
)


def _instant(text: str) -> datetime | None:
    """The UTC instant of an RFC 3339 date-time (a leap second as :59.999999), None if it is not one
    or falls outside what years 0001-9999 in UTC can hold."""
    m = _PARTS.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    off_hours, off_minutes = int(m.group(9) or 0), int(m.group(10) or 0)
    if year == 0 or off_hours > 23 or off_minutes > 59:
        return None
    leap = second == 60
    offset = timedelta(hours=off_hours, minutes=off_minutes) * (-1 if m.group(8) == "-" else 1)
    try:  # datetime() refuses a day past the month's end, hour 24, minute or second 60+
        local = datetime(year, month, day, hour, minute, 59 if leap else second)
        if leap:
            local += timedelta(microseconds=999_999)
        elif m.group(7):
            local += timedelta(microseconds=int(m.group(7)[1:7].ljust(6, "0")))
        return (local - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _bound(keyword: str) -> Any:
    def check(validator: Any, bound: str, instance: Any, schema: Any) -> Any:
        at, limit = _instant(instance) if isinstance(instance, str) else None, _instant(bound)
        if at is None or limit is None:
            return  # the format check reports it
        if (at < limit) if keyword == "formatMinimum" else (at > limit):
            yield jsonschema.ValidationError(f"{instance!r} is outside {keyword} {bound}")

    return check


def _parts(validator: Any, wholes: dict[str, list[str]], instance: Any, schema: Any) -> Any:
    """x-parts (the schema's own keyword, on TokenUsage): the parts given sum to at most their whole."""
    if not isinstance(instance, dict):
        return
    for whole, names in wholes.items():
        given = [instance[name] for name in names if isinstance(instance.get(name), int)]
        if isinstance(instance.get(whole), int) and sum(given) > instance[whole]:
            yield jsonschema.ValidationError(f"{' + '.join(names)} exceed {whole}")


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(lambda text: not isinstance(text, str) or _instant(text) is not None)
Oracle = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"formatMinimum": _bound("formatMinimum"), "formatMaximum": _bound("formatMaximum"), "x-parts": _parts},
)
ORACLE = Oracle(SCHEMA, format_checker=_FORMATS)


def _dead_lettered(payload: bytes) -> list[str]:
    """What the worker's batch sorting does with one entry: the reasons it dead-letters it for."""
    batch = Batch("s", [(b"1-0", {b"event": payload})])
    out = sort_entries(batch, limit=5)
    assert len(out.good) + len(out.letters) == 1
    return [reason for _entry, _deliveries, reason in out.letters]


def test_the_schema_itself_is_valid_and_requires_type_in_every_event() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    # Contract v1's later fields are optional: producers written before them stay valid.
    later = {"user_id", "provider", "time_to_first_token_ms", "cache_read_tokens", "cache_write_tokens",
             "reasoning_tokens"}  # fmt: skip
    for name, definition in SCHEMA["$defs"].items():
        assert not later & set(definition["required"]), name
    assert "session_id" not in SCHEMA["$defs"]["ForwardStarted"]["required"]
    assert SCHEMA["$defs"]["TokenUsage"]["x-parts"] == {
        "prompt_tokens": ["cache_read_tokens", "cache_write_tokens"],
        "completion_tokens": ["reasoning_tokens"],
    }
    for name, definition in SCHEMA["$defs"].items():
        if name != "TokenUsage":
            assert "type" in definition["required"], name
            assert "v" not in definition["required"], name  # optional, absent means 1 (README)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=from_schema(SCHEMA))
def test_every_instance_of_the_schema_is_accepted(instance: dict[str, Any]) -> None:
    assume(ORACLE.is_valid(instance))  # formatMinimum/formatMaximum: the generator ignores them
    payload = json.dumps(instance).encode()
    assert _dead_lettered(payload) == []
    event = decode(payload)
    assert event.type == instance["type"]  # type: ignore[union-attr]
    at = _instant(instance["occurred_at"])
    assert at is not None
    assert event.occurred_at == at


_DIGITS = st.integers(0, 9).map(str)


def _rfc3339(at: datetime, sep: str, frac: str, offset: int | None, z: str) -> str:
    second = 60 if at.second == 59 else at.second  # some leap seconds
    sign = "+" if (offset or 0) >= 0 else "-"
    zone = z if offset is None else f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return f"{at:%m-%d}".join([f"{at.year:04d}-", ""]) + f"{sep}{at:%H:%M}:{second:02d}{frac}{zone}"


_RFC3339_VARIANTS = st.builds(
    _rfc3339,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["T", "t"]),
    st.one_of(st.just(""), st.lists(_DIGITS, min_size=1, max_size=30).map(lambda d: "." + "".join(d))),
    st.one_of(st.none(), st.integers(-(23 * 60 + 59), 23 * 60 + 59)),
    st.sampled_from(["Z", "z"]),
)


@settings(max_examples=300, deadline=None)
@given(text=_RFC3339_VARIANTS)
def test_rfc3339_variants_are_accepted_at_their_instant(text: str) -> None:
    instance = {"type": "sync.mismatch", "event_id": "e", "occurred_at": text, "reason": "r"}
    assert ORACLE.is_valid(instance), text
    assert decode(json.dumps(instance)).occurred_at == _instant(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-10T10:00Z",  # no seconds
        "2026-02-10 10:00:00Z",
        "2026-02-10_10:00:00Z",
        "2026-02-10T10:00:00,5Z",
        "2026-02-10T10:00:00+0100",
        "2026-02-10T10:00:00",  # no offset
        "2026-02-10T10:00:00+01",
        "2026-02-10T10:00:00.Z",
        "2026-02-10T24:00:00Z",
        "2026-02-10T10:00:61Z",
        "2026-02-30T10:00:00Z",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "2026-02-10T10:00:00+24:00",
        "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
        "0001-01-01T00:30:00+01:00",  # year 0 in UTC
        "2026-02-10",
        "1700000000",
    ],
)
def test_what_is_not_rfc3339_or_out_of_range_is_refused_by_both(text: str) -> None:
    instance = {"type": "sync.mismatch", "event_id": "e", "occurred_at": text, "reason": "r"}
    assert not ORACLE.is_valid(instance)
    reasons = _dead_lettered(json.dumps(instance).encode())
    assert len(reasons) == 1 and "occurred_at" in reasons[0], reasons


def test_the_edges_of_the_range_are_accepted() -> None:
    for text in (
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01T01:00:00+01:00",
        "9999-12-31T22:59:59-01:00",
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60.5Z",
    ):
        instance = {"type": "sync.mismatch", "event_id": "e", "occurred_at": text, "reason": "r"}
        assert ORACLE.is_valid(instance), text
        assert decode(json.dumps(instance)).occurred_at == _instant(text), text


def _mutations(instance: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Schema-invalid variants of a valid instance, each breaking one rule."""
    out: list[tuple[str, dict[str, Any]]] = []
    definition = SCHEMA["$defs"][SCHEMA["discriminator"]["mapping"][instance["type"]].split("/")[-1]]
    for name in definition["required"]:
        out.append((f"without {name}", {k: v for k, v in instance.items() if k != name}))
    for name, declared in definition["properties"].items():
        prop = {**declared}
        for alt in declared.get("anyOf", []):  # nullable fields: the facets of the non-null choice
            prop.update({k: v for k, v in alt.items() if k != "type"})
        kinds = {declared.get("type")} | {alt.get("type") for alt in declared.get("anyOf", [])}
        if "integer" in kinds:
            out += [
                (f"{name}=2.5", {**instance, name: 2.5}),
                (f"{name}='7'", {**instance, name: "7"}),
                (f"{name}=true", {**instance, name: True}),
                (f"{name}=-1", {**instance, name: -1}),
            ]
        if "string" in kinds:
            out += [(f"{name}=7", {**instance, name: 7}), (f"{name}=[]", {**instance, name: []})]
            if "maxLength" in prop:
                out.append((f"{name} too long", {**instance, name: "x" * (prop["maxLength"] + 1)}))
            if "pattern" in prop:
                out.append((f"{name} with NUL", {**instance, name: "a\u0000b"}))
        if "boolean" in kinds:
            out.append((f"{name}=1", {**instance, name: 1}))
    out += [
        ("v=2", {**instance, "v": 2}),
        ("unknown type", {**instance, "type": "round.exploded"}),
        ("occurred_at without offset", {**instance, "occurred_at": "2026-02-10T10:00:00"}),
    ]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=from_schema(SCHEMA))
def test_every_schema_invalid_mutation_is_dead_lettered(instance: dict[str, Any]) -> None:
    assume(ORACLE.is_valid(instance))
    for what, mutant in _mutations(instance):
        if ORACLE.is_valid(mutant):
            continue  # e.g. -1 where the minimum is lower, or a NUL-free pattern on a nullable field
        reasons = _dead_lettered(json.dumps(mutant).encode())
        assert len(reasons) == 1, (what, mutant)
        assert reasons[0].startswith("invalid event: "), reasons
        with pytest.raises(ContractError):
            decode(json.dumps(mutant))


def test_integers_with_a_zero_fraction_are_integers_as_json_schema_says() -> None:
    base = {
        "type": "round.compressed",
        "event_id": "e",
        "occurred_at": "2026-01-01T00:00:00Z",
        "round_id": "r",
        "session_id": "s",
    }
    for number, ok in (
        ("3", True),
        ("3.0", True),
        ("3e0", True),
        ("-0.0", True),
        ("3.5", False),
        ('"3"', False),
        ("true", False),
        ("9223372036854775807", True),
        ("9223372036854775808", False),
        ("1e19", False),
    ):
        payload = json.dumps(base)[:-1] + f', "tokens_saved": {number}}}'
        assert ORACLE.is_valid(json.loads(payload)) is ok, number
        assert (_dead_lettered(payload.encode()) == []) is ok, number
        if ok:
            expected = int(json.loads(payload)["tokens_saved"])
            assert decode(payload).tokens_saved == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("parts", "named"),
    [
        ({"cache_read_tokens": 11}, ("cache_read_tokens (11)", "prompt_tokens (10)")),
        (
            {"cache_read_tokens": 6, "cache_write_tokens": 5},
            ("cache_read_tokens + cache_write_tokens (6 + 5)",),
        ),
        ({"reasoning_tokens": 21}, ("reasoning_tokens (21)", "completion_tokens (20)")),
    ],
)
def test_a_usage_part_larger_than_its_whole_is_refused_by_both(
    parts: dict[str, int], named: tuple[str, ...]
) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    for event in (
        {"type": "round.completed", "round_id": "r", "session_id": "s", "status": "success"},
        {"type": "forward.completed", "forward_id": "f", "status": "success"},
    ):
        fine = {"event_id": "e", "occurred_at": "2026-02-10T10:00:00Z", **event, "usage": usage}
        assert ORACLE.is_valid(fine) and _dead_lettered(json.dumps(fine).encode()) == []
        edge = {
            **fine,
            "usage": {**usage, **{k: 0 for k in parts}, "cache_read_tokens": 10, "reasoning_tokens": 20},
        }
        assert ORACLE.is_valid(edge) and _dead_lettered(json.dumps(edge).encode()) == []  # a whole of parts
        bad = {**fine, "usage": {**usage, **parts}}
        assert not ORACLE.is_valid(bad)
        reasons = _dead_lettered(json.dumps(bad).encode())
        assert len(reasons) == 1 and reasons[0].startswith("invalid event: usage."), reasons
        for text in named:
            assert text in reasons[0], reasons

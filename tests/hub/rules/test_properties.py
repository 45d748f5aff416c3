"""Property: evaluate() never raises, whatever the snapshot holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lerec.hub.rules import (
    Attachment,
    CaseSnapshot,
    Clip,
    Finding,
    Record,
    default_rulebook,
    evaluate,
    load_rulebook,
)

RULEBOOKS = [default_rulebook(), load_rulebook(Path(__file__).parent / "fixtures" / "other-town.yaml")]

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
tzs = st.one_of(st.none(), st.builds(timezone, offsets))
moments = st.datetimes(timezones=tzs)  # the full range, naive and aware, incl. year 1 and 9999
maybe_moment = st.none() | moments


def ids(*pools: list[str]) -> st.SearchStrategy[str]:
    known = sorted({i for pool in pools for i in pool})
    return st.sampled_from(known) | st.text(max_size=12)


def all_of(attr: str) -> list[str]:
    return [i for rb in RULEBOOKS for i in getattr(rb, attr)]


MEDIA = [m for rb in RULEBOOKS for meth in rb.record_methods.values() for m in meth.kinds]
FIELD_IDS = [f for rb in RULEBOOKS for k in rb.record_kinds.values() for f in k.fields]

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
    | moments | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

attachments = st.builds(
    Attachment, attachment_id=st.text(max_size=8), media_type=ids(MEDIA),
    metadata=st.dictionaries(st.sampled_from(["method", "made_at", "maker", "proves", "how", "x"]),
                             json_values, max_size=4),
    transcript_present=st.booleans(),
)

records = st.builds(
    Record, record_id=st.text(max_size=8), kind_id=ids(all_of("record_kinds")),
    fields=st.dictionaries(ids(FIELD_IDS), json_values, max_size=8),
    created_at=maybe_moment, attachments=st.tuples() | st.lists(attachments, max_size=3).map(tuple),
    clip_ids=st.lists(st.sampled_from(["c1", "c2", "c3"]), max_size=3).map(tuple),
)

clips = st.builds(
    Clip, segment_id=st.sampled_from(["c1", "c2", "c3", "c4"]), media_kind=ids(MEDIA),
    recorded_end=maybe_moment, uploaded_at=maybe_moment, upload_deadline=maybe_moment,
    transcript_present=st.booleans(),
)

snapshots = st.builds(
    CaseSnapshot,
    case_id=st.text(max_size=8),
    enforcement_type=ids(all_of("enforcement_types")),
    start_mode=ids(all_of("start_modes")),
    stage=ids(all_of("stages")),
    started_at=maybe_moment,
    records=st.lists(records, max_size=6).map(tuple),
    clips=st.lists(clips, max_size=4).map(tuple),
    facts=st.frozensets(ids(all_of("facts")), max_size=4),
    not_started=st.booleans(),
    execution_ended_at=maybe_moment,
    archived_at=maybe_moment,
    archive_deadline=maybe_moment,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots, now=moments, which=st.sampled_from(range(len(RULEBOOKS))))
def test_evaluate_never_raises(snapshot: CaseSnapshot, now: datetime, which: int) -> None:
    rb = RULEBOOKS[which]
    findings = evaluate(snapshot, rb, now)
    assert all(isinstance(f, Finding) and f.message for f in findings)
    for f in findings:
        assert f.article is None or f.article in rb.article_map
    assert evaluate(snapshot, rb, now) == findings  # pure: same input, same output

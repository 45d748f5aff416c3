"""Which stages a case has completed and which record kinds apply to it (pure functions).

The rule, also stated at the top of each rulebook file:

- stages are ordered as listed in the rulebook; a case *in* stage S has completed every stage
  before S; an archived case has completed them all; a case not started (不启动) has completed
  only the first stage;
- a record kind (or kind group) is *required* for a case when its ``required_when`` holds:
  ``always`` = every started case, ``never`` = optional, or a condition on start mode,
  enforcement type, case facts and outcome (started / not_started / any);
- a required record is *missing* only once its stage is completed; records of a stage still in
  progress are not yet due.
"""

from __future__ import annotations

from .model import Condition, RequiredWhen
from .rulebook import Rulebook
from .snapshot import CaseSnapshot


def condition_holds(cond: RequiredWhen, case: CaseSnapshot) -> bool:
    if cond == "never":
        return False
    if cond == "always":
        return not case.not_started
    assert isinstance(cond, Condition)
    if cond.outcome == "started" and case.not_started:
        return False
    if cond.outcome == "not_started" and not case.not_started:
        return False
    if cond.start_modes is not None and case.start_mode not in cond.start_modes:
        return False
    if cond.enforcement_types is not None and case.enforcement_type not in cond.enforcement_types:
        return False
    facts = case.facts if isinstance(case.facts, (set, frozenset)) else frozenset(case.facts or ())
    return all(f in facts for f in cond.facts)


def completed_stages(case: CaseSnapshot, rulebook: Rulebook) -> list[str] | None:
    """Stage ids the case has completed, in order; None when ``case.stage`` is unknown."""
    order = rulebook.stage_order()
    if case.not_started:
        return order[:1]
    if case.archived_at is not None:
        return order
    if not isinstance(case.stage, str) or case.stage not in order:
        return None
    return order[: order.index(case.stage)]

"""Job states: the groups and the one transition table every state change goes through."""

from __future__ import annotations

import pytest

from jobcast.jobs import states
from jobcast.jobs.states import InvalidTransition, can_transition, check_transition


def test_every_state_is_either_active_or_terminal() -> None:
    assert states.ACTIVE | states.TERMINAL == states.ALL
    assert not states.ACTIVE & states.TERMINAL
    assert {states.SUCCEEDED, states.FAILED, states.CANCELLED} == states.TERMINAL


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (states.QUEUED, states.RUNNING),
        (states.QUEUED, states.CANCELLED),
        (states.RUNNING, states.SUCCEEDED),
        (states.RUNNING, states.FAILED),
        (states.RUNNING, states.RETRYING),
        (states.RUNNING, states.CANCELLED),
        (states.RUNNING, states.RUNNING),  # a redelivery after a worker died mid-job
        (states.RETRYING, states.RUNNING),
        (states.RETRYING, states.CANCELLED),
    ],
)
def test_allowed_transitions_pass(current: str, new: str) -> None:
    assert can_transition(current, new)
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (states.QUEUED, states.SUCCEEDED),
        (states.QUEUED, states.RETRYING),
        (states.QUEUED, states.QUEUED),
        (states.RETRYING, states.SUCCEEDED),
        (states.RETRYING, states.RETRYING),
        (states.RUNNING, states.QUEUED),
        ("no-such-state", states.RUNNING),
    ],
)
def test_disallowed_transitions_raise_naming_both_states(current: str, new: str) -> None:
    assert not can_transition(current, new)
    with pytest.raises(InvalidTransition, match=f"{current}.*{new}"):
        check_transition(current, new)


@pytest.mark.parametrize("finished", sorted(states.TERMINAL))
@pytest.mark.parametrize("new", sorted(states.ALL))
def test_a_finished_job_never_changes_state_again(finished: str, new: str) -> None:
    assert not can_transition(finished, new)
    with pytest.raises(InvalidTransition):
        check_transition(finished, new)


def _reachable(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        current = todo.pop()
        for new in states.ALL - seen:
            if can_transition(current, new):
                seen.add(new)
                todo.append(new)
    return seen


@pytest.mark.parametrize("state", sorted(states.ACTIVE))
def test_every_active_state_can_be_cancelled_and_can_still_reach_every_end(state: str) -> None:
    assert can_transition(state, states.CANCELLED)
    assert _reachable(state) >= states.TERMINAL


@pytest.mark.parametrize("new", sorted(states.ALL))
def test_sources_of_lists_exactly_the_states_that_may_become_new(new: str) -> None:
    assert states.sources_of(new) == {s for s in states.ALL if can_transition(s, new)}


def test_only_a_running_job_finishes_with_success() -> None:
    assert states.sources_of(states.SUCCEEDED) == {states.RUNNING}
    assert states.sources_of(states.QUEUED) == set()


def test_every_state_has_one_distinct_event_name() -> None:
    assert set(states.EVENT_FOR_STATE) == states.ALL
    names = list(states.EVENT_FOR_STATE.values())
    assert len(set(names)) == len(names)
    assert all(name.startswith("job.") for name in names)
    assert states.EVENT_FOR_STATE[states.RUNNING] == "job.started"

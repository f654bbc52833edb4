"""Lambda admission and concurrency limits as tables, plus an exhaustive sweep of the invariants."""

from __future__ import annotations

import itertools

import pytest

from kennel.runtime.functions.admission import (
    UNRESERVED_MINIMUM,
    AccountState,
    Admission,
    FunctionState,
    Pool,
    Reason,
    admit,
    check_provisioned,
    check_reserved,
    unreserved,
)
from kennel.runtime.functions.events import Event, Result, RetryPolicy, next_delay

P = pytest.param
IDLE_ACCOUNT = AccountState(limit=1000, reserved_total=0, unreserved_provisioned=0, unreserved_on_demand=0)
ON_DEMAND = Admission(Pool.ON_DEMAND)
PROVISIONED = Admission(Pool.PROVISIONED)
SPILL = Admission(Pool.ON_DEMAND, spillover=True)
RESERVED = Admission(None, Reason.RESERVED)
ACCOUNT = Admission(None, Reason.ACCOUNT)


def fn(reserved=None, prov=0, on_demand=0, idle=0, here=0) -> FunctionState:
    return FunctionState(reserved, prov, on_demand, idle, here)


def account(reserved_total=0, unreserved_provisioned=0, unreserved_on_demand=0, limit=1000) -> AccountState:
    return AccountState(limit, reserved_total, unreserved_provisioned, unreserved_on_demand)


# fmt: off
CASES = [
    P(IDLE_ACCOUNT, fn(), ON_DEMAND, id="quiet-account"),
    P(IDLE_ACCOUNT, fn(reserved=0), RESERVED, id="reserved-zero-throttles"),
    P(IDLE_ACCOUNT, fn(reserved=0, idle=3, here=3), RESERVED, id="reserved-zero-beats-provisioned"),
    P(account(5), fn(reserved=5, on_demand=4), ON_DEMAND, id="reserved-last-slot"),
    P(account(5), fn(reserved=5, on_demand=5), RESERVED, id="reserved-full"),
    P(account(5), fn(reserved=5, on_demand=50), RESERVED, id="reserved-over-full"),
    P(account(5), fn(reserved=5, prov=2, idle=1, here=2), PROVISIONED, id="provisioned-idle-first"),
    P(account(5), fn(reserved=5, prov=2, on_demand=2, here=2), SPILL, id="spill-within-reserved"),
    P(account(5), fn(reserved=5, prov=2, on_demand=3, here=2), RESERVED, id="spill-capped"),
    P(account(2), fn(reserved=2, prov=2, here=2), RESERVED, id="all-provisioned-busy"),
    P(account(2), fn(reserved=2, prov=2), RESERVED, id="latest-starved-by-provisioned"),
    P(account(5), fn(reserved=5, prov=2, on_demand=2), ON_DEMAND, id="other-qualifier-no-spill"),
    P(account(900, unreserved_on_demand=99), fn(), ON_DEMAND, id="shared-pool-last-slot"),
    P(account(900, unreserved_on_demand=100), fn(), ACCOUNT, id="shared-pool-full"),
    P(account(900, 50, 49), fn(), ON_DEMAND, id="shared-pool-minus-provisioned"),
    P(account(900, 50, 50), fn(), ACCOUNT, id="provisioned-shrinks-shared-pool"),
    P(account(900, 50, 50), fn(prov=50, idle=1, here=50), PROVISIONED, id="provisioned-despite-full"),
    P(account(900, 50, 50), fn(prov=50, here=50), ACCOUNT, id="spill-blocked-by-account"),
    P(account(0, 10, 5), fn(prov=10, here=10), SPILL, id="spill-unreserved"),
    P(account(900, unreserved_on_demand=100), fn(reserved=10, on_demand=3), ON_DEMAND,
      id="reserved-unaffected-by-full-shared-pool"),
    P(account(limit=1, unreserved_on_demand=1), fn(), ACCOUNT, id="tiny-account"),
]
# fmt: on


@pytest.mark.parametrize(("acct", "function", "expected"), CASES)
def test_admission_table(acct: AccountState, function: FunctionState, expected: Admission) -> None:
    assert admit(acct, function) == expected


def test_admission_invariants_hold_everywhere() -> None:
    """Over a grid of states: every admission keeps each pool within its cap, every throttle is right."""
    checked = 0
    for reserved, prov_total, on_demand, idle, here in itertools.product(
        (None, 0, 1, 3, 5), (0, 1, 2, 3), range(7), (0, 1, 2), (0, 1, 2)
    ):
        if idle > here or here > prov_total or (reserved is not None and prov_total > reserved):
            continue  # states the configuration checks make impossible
        for reserved_total, unres_prov, unres_on_demand in itertools.product((0, 5, 10), (0, 3), range(8)):
            acct = AccountState(12, reserved_total, unres_prov, unres_on_demand)
            state = FunctionState(reserved, prov_total, on_demand, idle, here)
            decision = admit(acct, state)
            checked += 1
            assert decision.admitted == (decision.reason is None)
            if reserved == 0:
                assert decision.reason is Reason.RESERVED
            elif decision.pool is Pool.PROVISIONED:
                assert idle > 0
            elif decision.pool is Pool.ON_DEMAND:
                assert idle == 0
                assert decision.spillover == (here > 0)
                if reserved is not None:
                    assert on_demand + 1 <= reserved - prov_total
                else:
                    assert unres_on_demand + 1 <= 12 - reserved_total - unres_prov
            elif reserved is not None:
                assert decision.reason is Reason.RESERVED and on_demand >= reserved - prov_total
            else:
                assert (
                    decision.reason is Reason.ACCOUNT and unres_on_demand >= 12 - reserved_total - unres_prov
                )
    assert checked > 1000


MINIMUM = (
    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
    "below its minimum value of [100]."
)

BELOW = (
    "ReservedConcurrentExecutions 2 should not be lower than function's total provisioned concurrency [3]."
)


@pytest.mark.parametrize(
    ("limit", "elsewhere", "requested", "provisioned", "expected"),
    [
        P(1000, 0, 900, 0, None, id="leaves-exactly-100"),
        P(1000, 0, 901, 0, MINIMUM, id="leaves-99"),
        P(1000, 850, 50, 0, None, id="with-others-exactly"),
        P(1000, 850, 51, 0, MINIMUM, id="with-others-over"),
        P(1000, 0, 0, 0, None, id="zero-is-allowed"),
        P(100, 0, 1, 0, MINIMUM, id="small-account-cannot-reserve"),
        P(1000, 0, 2, 3, BELOW, id="below-provisioned"),
    ],
)  # fmt: skip
def test_check_reserved(limit, elsewhere, requested, provisioned, expected) -> None:
    assert check_reserved(limit, elsewhere, requested, provisioned) == expected
    assert UNRESERVED_MINIMUM == 100


@pytest.mark.parametrize(
    ("reserved", "function_elsewhere", "unreserved_elsewhere", "requested", "fragment"),
    [
        P(5, 0, 0, 5, None, id="fills-reservation"),
        P(5, 3, 0, 3, "should not be greater than the reservedConcurrentExecution", id="over-reservation"),
        P(None, 0, 0, 900, None, id="unreserved-leaves-100"),
        P(None, 0, 0, 901, "below its minimum value of [100]", id="unreserved-leaves-99"),
        P(None, 0, 200, 801, "greater than account's unreserved concurrency [800]", id="over-available"),
        P(None, 2, 2, 2, None, id="unreserved-small"),
    ],
)  # fmt: skip
def test_check_provisioned(reserved, function_elsewhere, unreserved_elsewhere, requested, fragment) -> None:
    problem = check_provisioned(1000, 0, reserved, function_elsewhere, unreserved_elsewhere, requested)
    assert problem is None if fragment is None else fragment in problem


def test_unreserved() -> None:
    assert unreserved(1000, 0) == 1000 and unreserved(1000, 250) == 750


# ----- the asynchronous queue's retry schedule ---------------------------------------------------------


def event(attempts=0, requeues=0) -> Event:
    return Event("id", "f", None, b"{}", 0.0, attempts, requeues)


@pytest.mark.parametrize(
    ("attempts", "requeues", "result", "policy", "age", "expected"),
    [
        P(1, 0, Result.FUNCTION_ERROR, RetryPolicy(), 0, 60.0, id="first-retry-after-a-minute"),
        P(2, 0, Result.FUNCTION_ERROR, RetryPolicy(), 60, 120.0, id="second-retry-after-two"),
        P(3, 0, Result.FUNCTION_ERROR, RetryPolicy(), 180, None, id="two-retries-then-done"),
        P(1, 0, Result.FUNCTION_ERROR, RetryPolicy(max_retries=0), 0, None, id="no-retries"),
        P(1, 0, Result.FUNCTION_ERROR, RetryPolicy(max_retries=1), 0, 60.0, id="one-retry"),
        P(2, 0, Result.FUNCTION_ERROR, RetryPolicy(max_retries=1), 60, None, id="one-retry-used"),
        P(1, 0, Result.FUNCTION_ERROR, RetryPolicy(max_age_s=59), 0, None, id="too-old-to-retry"),
        P(0, 1, Result.THROTTLED, RetryPolicy(), 0, 1.0, id="throttle-backoff-starts-at-1s"),
        P(0, 4, Result.THROTTLED, RetryPolicy(), 10, 8.0, id="throttle-backoff-doubles"),
        P(0, 30, Result.THROTTLED, RetryPolicy(), 10, 300.0, id="throttle-backoff-capped"),
        P(0, 30, Result.THROTTLED, RetryPolicy(max_age_s=60), 10, None, id="throttled-until-max-age"),
        P(1, 0, Result.OK, RetryPolicy(), 0, None, id="success-is-final"),
        P(0, 0, Result.GONE, RetryPolicy(), 0, None, id="deleted-function"),
    ],
)  # fmt: skip
def test_async_retry_schedule(attempts, requeues, result, policy, age, expected) -> None:
    assert next_delay(event(attempts, requeues), result, policy, age) == expected

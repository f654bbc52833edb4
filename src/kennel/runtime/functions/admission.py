"""Lambda concurrency, decided by pure functions: admit or throttle one invocation, validate limits.

AWS's model (configuration-concurrency, invocation-scaling): the account has a regional limit. A
function's reserved concurrency is carved out of it, caps the function and guarantees it; whatever is
not reserved forms the shared unreserved pool, which must keep at least 100. Provisioned concurrency is
taken from the function's reserved concurrency when it has one, otherwise from the unreserved pool;
its environments are initialised ahead and serve the alias or version they were configured on first,
and requests beyond them spill over to on-demand environments within the same limits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

UNRESERVED_MINIMUM = 100

THROTTLE_MESSAGE = "Rate Exceeded."


class Reason(enum.StrEnum):
    ACCOUNT = "ConcurrentInvocationLimitExceeded"
    RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


class Pool(enum.Enum):
    PROVISIONED = "provisioned"
    ON_DEMAND = "on-demand"


@dataclass(frozen=True, slots=True)
class AccountState:
    limit: int  # the regional concurrency quota
    reserved_total: int  # reserved concurrency summed over every function
    unreserved_provisioned: int  # provisioned concurrency of functions without a reservation
    unreserved_on_demand: int  # on-demand executions in flight for functions without a reservation


@dataclass(frozen=True, slots=True)
class FunctionState:
    reserved: int | None  # the function's reserved concurrency; None when it has none
    provisioned_total: int  # provisioned concurrency configured over all its aliases and versions
    on_demand: int  # its on-demand executions in flight (all versions)
    provisioned_idle: int  # ready provisioned environments of the invoked alias/version, not busy
    provisioned_here: int  # provisioned concurrency configured on the invoked alias/version


@dataclass(frozen=True, slots=True)
class Admission:
    pool: Pool | None
    reason: Reason | None = None
    spillover: bool = False  # on-demand although the invoked alias/version has provisioned concurrency

    @property
    def admitted(self) -> bool:
        return self.pool is not None


def admit(account: AccountState, function: FunctionState) -> Admission:
    """Where one new invocation runs, or why it is throttled."""
    if function.reserved == 0:
        return Admission(None, Reason.RESERVED)
    if function.provisioned_idle > 0:
        return Admission(Pool.PROVISIONED)
    spill = function.provisioned_here > 0
    if function.reserved is not None:
        # Provisioned environments sit inside the reservation, so on-demand gets only the rest.
        if function.on_demand >= function.reserved - function.provisioned_total:
            return Admission(None, Reason.RESERVED)
        return Admission(Pool.ON_DEMAND, spillover=spill)
    shared = account.limit - account.reserved_total - account.unreserved_provisioned
    if account.unreserved_on_demand >= shared:
        return Admission(None, Reason.ACCOUNT)
    return Admission(Pool.ON_DEMAND, spillover=spill)


def unreserved(limit: int, reserved_total: int) -> int:
    """GetAccountSettings' UnreservedConcurrentExecutions."""
    return limit - reserved_total


def check_reserved(limit: int, reserved_elsewhere: int, requested: int, provisioned_total: int) -> str | None:
    """The InvalidParameterValueException message PutFunctionConcurrency answers, or None if valid."""
    if limit - reserved_elsewhere - requested < UNRESERVED_MINIMUM:
        return (
            "Specified ReservedConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
        )
    if requested < provisioned_total:
        return (
            f"ReservedConcurrentExecutions {requested} should not be lower than function's total "
            f"provisioned concurrency [{provisioned_total}]."
        )
    return None


def check_provisioned(
    limit: int,
    reserved_total: int,
    reserved: int | None,
    function_elsewhere: int,
    unreserved_elsewhere: int,
    requested: int,
) -> str | None:
    """The InvalidParameterValueException message PutProvisionedConcurrencyConfig answers, or None.

    ``function_elsewhere``: the function's provisioned concurrency on its other aliases and versions;
    ``unreserved_elsewhere``: every other provisioned concurrency drawn from the unreserved pool.
    """
    if reserved is not None:
        if function_elsewhere + requested > reserved:
            return (
                "Requested Provisioned Concurrency should not be greater than the "
                "reservedConcurrentExecution for function"
            )
        return None
    available = limit - reserved_total - unreserved_elsewhere
    if requested > available:
        return (
            "Specified ConcurrentExecutions for function is greater than account's unreserved "
            f"concurrency [{available}]."
        )
    if available - requested < UNRESERVED_MINIMUM:
        return (
            "Specified ConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
        )
    return None

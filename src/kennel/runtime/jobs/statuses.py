"""Training-job statuses as AWS reports them: the primary status follows from the secondary one,
and each secondary status comes with the message AWS prints (``fit()`` shows them)."""

from __future__ import annotations

from dataclasses import dataclass

# secondary status -> (primary status, AWS's status message)
SECONDARY = {
    "Starting": ("InProgress", "Launching requested ML instances"),
    "Pending": ("InProgress", "Waiting for training capacity on this machine"),
    "Downloading": ("InProgress", "Downloading input data"),
    "Training": ("InProgress", "Training image download completed. Training in progress."),
    "Uploading": ("InProgress", "Uploading generated training model"),
    "Completed": ("Completed", "Training job completed"),
    "Failed": ("Failed", "Training job failed"),
    "Stopping": ("Stopping", "Stopping the training job"),
    "Stopped": ("Stopped", "Training job stopped"),
    "MaxRuntimeExceeded": ("Stopped", "Job stopped because max run time was reached"),
}
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
ACTIVE = frozenset({"InProgress", "Stopping"})


class BadTransition(ValueError):
    pass


# Which secondary status may follow which (a job never goes back, and nothing follows a terminal one).
_NEXT = {
    None: {"Starting"},
    "Starting": {"Pending", "Downloading", "Failed", "Stopping", "Stopped"},
    "Pending": {"Starting", "Downloading", "Failed", "Stopping", "Stopped"},
    "Downloading": {"Training", "Failed", "Stopping", "Stopped", "MaxRuntimeExceeded"},
    "Training": {"Uploading", "Failed", "Stopping", "MaxRuntimeExceeded"},
    "Stopping": {"Uploading", "Stopped", "Failed", "MaxRuntimeExceeded"},
    "Uploading": {"Completed", "Failed", "Stopped", "MaxRuntimeExceeded"},
}


@dataclass(frozen=True)
class Transition:
    status: str
    start: float
    end: float | None
    message: str

    def wire(self) -> dict:
        item: dict = {"Status": self.status, "StartTime": self.start, "StatusMessage": self.message}
        if self.end is not None:
            item["EndTime"] = self.end
        return item


def primary(secondary: str) -> str:
    return SECONDARY[secondary][0]


def advance(
    history: list[Transition], secondary: str, now: float, message: str | None = None
) -> list[Transition]:
    """The history with ``secondary`` appended (the previous one ended now); a repeat only updates
    the message. Raises :class:`BadTransition` for a move AWS never makes."""
    current = history[-1].status if history else None
    if current == secondary:
        last = history[-1]
        return [*history[:-1], Transition(last.status, last.start, last.end, message or last.message)]
    if secondary not in _NEXT.get(current, set()):
        raise BadTransition(f"a training job cannot go from {current} to {secondary}")
    closed = (
        [*history[:-1], Transition(history[-1].status, history[-1].start, now, history[-1].message)]
        if history
        else []
    )
    text = message or SECONDARY[secondary][1]
    end = now if secondary in TERMINAL or secondary == "MaxRuntimeExceeded" else None
    return [*closed, Transition(secondary, now, end, text)]

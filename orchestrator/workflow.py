"""The step-list authoring API (DESIGN §4.1): steps are plain functions, `>>` composes them.

    @step("Reserve address")
    def reserve(prefix: str) -> State:
        return {"address": allocate(prefix)}

    @workflow("Provision a node", initial_input_form=NodeForm)
    def create_node() -> StepList:
        return init >> reserve >> done

The engine (orchestrator.runner) owns persistence; nothing here touches the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.targets import Target

State = dict[str, Any]


class StepKind:
    STEP = "step"
    RETRY = "retry"
    INPUT = "input"
    CALLBACK = "callback"
    ABORT = "abort"
    DONE = "done"


@dataclasses.dataclass(frozen=True)
class Step:
    """One named unit of work; `kind` tells the runner how to treat it."""

    name: str
    func: Callable[..., Any] | None = None
    kind: str = StepKind.STEP
    assignee: str = "SYSTEM"
    predicate: Callable[[State], bool] | None = None
    callback_timeout: int | None = None
    # Seconds the step may run; None: ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS.
    time_limit: float | None = None

    def __rshift__(self, other: Step | StepList) -> StepList:
        return StepList([self]) >> other

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Steps stay callable as plain functions (handy in unit tests)."""
        if self.func is None:
            return None
        return self.func(*args, **kwargs)


class StepList:
    """An ordered, immutable list of steps; `a >> b` returns a new list."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)

    def __rshift__(self, other: Step | StepList) -> StepList:
        if isinstance(other, StepList):
            return StepList(self.steps + other.steps)
        if isinstance(other, Step):
            return StepList((*self.steps, other))
        raise TypeError(f"cannot add {type(other).__name__} to a StepList; use a @step")

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.steps]

    def __repr__(self) -> str:
        return "StepList(" + " >> ".join(self.names) + ")"


def _make_decorator(name: str, kind: str, **options: Any) -> Callable[[Callable], Step]:
    if not isinstance(name, str) or not name.strip():
        raise TypeError("a step needs a name: use @step('Name')")
    time_limit = options.get("time_limit")
    if time_limit is not None and (
        isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or time_limit <= 0
    ):
        raise ValueError(f"step {name!r}: time_limit must be a positive number of seconds")

    def decorator(func: Callable) -> Step:
        return Step(name=name, func=func, kind=kind, **options)

    return decorator


def step(name: str, time_limit: float | None = None) -> Callable[[Callable], Step]:
    """A step: parameters filled from the state by name, the returned dict merged into it.
    Past `time_limit` seconds (default: ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS) it fails."""
    return _make_decorator(name, StepKind.STEP, time_limit=time_limit)


def retrystep(name: str, time_limit: float | None = None) -> Callable[[Callable], Step]:
    """A step whose failures put the process in `waiting` and retry it with backoff."""
    return _make_decorator(name, StepKind.RETRY, time_limit=time_limit)


def inputstep(name: str, assignee: str = "SYSTEM") -> Callable[[Callable], Step]:
    """A step returning a form: the process is `suspended` until valid input arrives."""
    return _make_decorator(name, StepKind.INPUT, assignee=assignee)


def conditional(predicate: Callable[[State], bool]) -> Callable[[Step], Step]:
    """Run the step only when `predicate(state)` holds; otherwise log it as `skipped`."""

    def wrap(target: Step) -> Step:
        return dataclasses.replace(target, predicate=predicate)

    return wrap


def callback_step(
    name: str, action_step: Step, validate_step: Step, timeout: int | None = None
) -> StepList:
    """Start something external and wait for it to call back.

    `action_step` receives `callback_route` in the state; the process then waits as
    `awaiting_callback` until that route is called, puts the body in `callback_result`
    and runs `validate_step`. With `timeout` (seconds) an unanswered callback fails.
    """
    action = Step(
        name=name,
        func=action_step.func,
        kind=StepKind.CALLBACK,
        callback_timeout=timeout,
        time_limit=action_step.time_limit,
    )
    return StepList([action, validate_step])


def _noop() -> None:
    return None


init = Step(name="Start", func=_noop)
done = Step(name="Done", kind=StepKind.DONE)
abort = Step(name="Abort", kind=StepKind.ABORT)
begin = StepList()


@dataclasses.dataclass
class WorkflowSpec:
    """What `@workflow` makes of a function returning a StepList."""

    description: str
    build: Callable[[], StepList]
    initial_input_form: Any = None
    target: Target = Target.SYSTEM
    run_predicate: Callable[..., str | None] | None = None
    _steps: StepList | None = dataclasses.field(default=None, repr=False)

    @property
    def steps(self) -> StepList:
        if self._steps is None:
            steps = self.build()
            if not isinstance(steps, StepList):
                raise TypeError(f"workflow {self.build.__name__} must return a StepList")
            self._steps = steps
        return self._steps


def workflow(
    description: str,
    initial_input_form: Any = None,
    target: Target = Target.SYSTEM,
    run_predicate: Callable[..., str | None] | None = None,
) -> Callable[[Callable[[], StepList]], WorkflowSpec]:
    """Declare a workflow. `run_predicate(workflow_name)` returns a refusal reason or None."""

    def decorator(func: Callable[[], StepList]) -> WorkflowSpec:
        return WorkflowSpec(
            description=description,
            build=func,
            initial_input_form=initial_input_form,
            target=Target(target),
            run_predicate=run_predicate,
        )

    return decorator


__all__ = [
    "State",
    "Step",
    "StepKind",
    "StepList",
    "WorkflowSpec",
    "abort",
    "begin",
    "callback_step",
    "conditional",
    "done",
    "init",
    "inputstep",
    "retrystep",
    "step",
    "workflow",
]

"""`@flow`: a function that is a workflow. Its runs are processes, its task calls are their
step log (DESIGN §4.5); it registers in the catalogue like a step-list workflow."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from orchestrator.flows.engine import FlowTurn, current_turn
from orchestrator.flows.options import (
    NOT_SET,
    check_hooks,
    check_retries,
    check_run_name,
    check_timeout,
    retry_delays,
)
from orchestrator.flows.parameters import Parameters
from orchestrator.flows.runners import CeleryTaskRunner, ThreadPoolTaskRunner
from orchestrator.targets import Target
from orchestrator.workflow import StepList

_OPTIONS = (
    "name", "version", "flow_run_name", "retries", "retry_delay_seconds", "task_runner",
    "description", "timeout_seconds", "validate_parameters", "log_prints", "on_completion",
    "on_failure", "on_cancellation", "on_crashed", "on_running",
)


class Flow:
    """A flow definition; the engine runs it through `execute_turn` (see runner.ProcessRun)."""

    # What the engine reads of a workflow object (like WorkflowSpec's).
    target = Target.SYSTEM
    run_predicate = None
    steps = StepList()

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        task_runner: ThreadPoolTaskRunner | CeleryTaskRunner | None = None,
        description: str | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        log_prints: bool | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_cancellation: Iterable[Callable[..., Any]] | None = None,
        on_crashed: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@flow decorates a function")
        self.fn = fn
        functools.update_wrapper(self, fn)
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name = str(name or fn.__name__.replace("_", "-"))
        if not self.name.strip() or "/" in self.name or len(self.name) > 255:
            raise ValueError(f"flow name {self.name!r} must be 1-255 characters, without '/'")
        self.version = version
        self.flow_run_name = check_run_name(flow_run_name, "flow_run_name")
        self.retries = check_retries(retries)
        retry_delays(retry_delay_seconds, self.retries)
        self.retry_delay_seconds = retry_delay_seconds
        if task_runner is not None and not isinstance(task_runner, ThreadPoolTaskRunner
                                                          | CeleryTaskRunner):
            raise TypeError("task_runner must be a ThreadPoolTaskRunner or a CeleryTaskRunner")
        self.task_runner = task_runner or ThreadPoolTaskRunner()
        self.description = description or inspect.getdoc(fn) or ""
        self.timeout_seconds = check_timeout(timeout_seconds)
        self.validate_parameters = bool(validate_parameters)
        self.log_prints = log_prints
        self.on_completion = check_hooks(on_completion, "on_completion")
        self.on_failure = check_hooks(on_failure, "on_failure")
        self.on_cancellation = check_hooks(on_cancellation, "on_cancellation")
        self.on_crashed = check_hooks(on_crashed, "on_crashed")
        self.on_running = check_hooks(on_running, "on_running")
        self.parameters = Parameters(fn, self.name, self.validate_parameters)
        self._options = {option: getattr(self, option) for option in _OPTIONS}
        self._options.update(
            on_completion=on_completion, on_failure=on_failure, on_cancellation=on_cancellation,
            on_crashed=on_crashed, on_running=on_running, task_runner=task_runner,
        )
        self._form: Any = None

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"

    @property
    def max_workers(self) -> int:
        return self.task_runner.max_workers or settings.ORCHESTRATOR_FLOW_MAX_WORKERS

    @property
    def initial_input_form(self) -> Any:
        """The parameters as an input form (the start page, the API's JSON Schema); None
        for a flow without parameters."""
        if self._form is None and self.parameters.names:
            self._form = self.parameters.form()
        return self._form

    def parameters_from_state(self, state: dict[str, Any],
                              secrets: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments from a process state (and its secrets), checked and coerced."""
        names = self.parameters.names
        values = {name: state[name] for name in names if name in state}
        values.update({name: value for name, value in secrets.items() if name in names})
        return self.parameters.validate(values)

    def with_options(self, **changes: Any) -> Flow:
        unknown = sorted(set(changes) - set(_OPTIONS))
        if unknown:
            raise TypeError(f"with_options: unknown option(s) {', '.join(unknown)}")
        options = {**self._options, **{k: v for k, v in changes.items() if v is not NOT_SET}}
        return Flow(self.fn, **options)

    def execute_turn(self, run: Any) -> None:
        """Called by the runner with the claimed process (`runner.ProcessRun`)."""
        FlowTurn(run, self).execute()

    def to_definition(self, **fields: Any):
        """This flow as a catalogue entry (a module's `WORKFLOWS` may list the flow itself)."""
        from orchestrator.catalogue import WorkflowDefinition

        fields.setdefault("description", self.description.split("\n\n")[0])
        return WorkflowDefinition(
            name=fields.pop("name", self.name), module=self.fn.__module__,
            function=self.fn.__name__, **fields,
        )

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        from orchestrator.flows import children

        if current_turn() is not None:
            return children.call_subflow(self, args, kwargs, return_state)
        return children.run_here(self, args, kwargs, return_state)


def flow(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """`@flow` or `@flow(name=..., retries=..., ...)` (Prefect's options, DESIGN §4.5)."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)

"""Where submitted task runs run (DESIGN §4.5): in a thread pool inside the flow's worker
(`ThreadPoolTaskRunner`, the default), or as Celery tasks on other workers
(`@flow(task_runner=CeleryTaskRunner())`).

A task run sent to Celery keeps the thread pool's guarantees. The worker that takes it
writes the task run's row in the transaction of the task body, and only if the turn of the
flow run that sent it still holds the run's lease (the same check the flow's own worker
makes), so a task run whose row exists ran exactly once, and a later turn of the flow (after
a dead worker or a failure) replays it instead of sending it again. A named lock per task
call (`orchestrator.lock`) keeps two deliveries of one call from running it together, and a
delivery that finds the call's final row does nothing: so the flow's worker sends a call
again when no final row came and nobody holds its lock (the worker that took it died, or
the message was lost) without risking a second run.

The flow's worker waits for the rows, not for Celery results (there is no result backend):
one thread per flow run polls the step log for the calls it sent.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import dataclasses
import importlib
import threading
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection

from orchestrator.flows.states import Completed, Failed, State
from orchestrator.models import Process, ProcessStep, StepStatus

if TYPE_CHECKING:
    from orchestrator.flows.engine import FlowTurn, TaskCall
    from orchestrator.flows.tasks import Task

LOCK_NAMESPACE = "flow-task-run"
FIRST_POLL_SECONDS, LAST_POLL_SECONDS = 0.02, 0.5


class ThreadPoolTaskRunner:
    """Submitted task runs run in a pool of threads inside the worker (the default)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers


class CeleryTaskRunner:
    """Submitted task runs run as Celery tasks, on whichever worker takes them from `queue`
    (default: the queue of the flow's workflow type, `core`, `user` or `internal`)."""

    def __init__(self, queue: str | None = None, max_workers: int | None = None) -> None:
        if queue is not None and (not isinstance(queue, str) or not queue.strip()):
            raise TypeError("CeleryTaskRunner(queue=...) takes a queue name")
        self.queue = queue
        self.max_workers = max_workers  # threads for the sends that wait for futures


class TaskRunFailed(Exception):
    """A task run on another worker failed with an exception that is not a built-in one;
    its message is the recorded error (`ClassName: message`)."""


# --- finding the task on the other worker -----------------------------------------------------


def find_task(module: str, qualname: str, name: str) -> Task:
    """The task `module.qualname` (renamed to `name` if the call used another name)."""
    from orchestrator.flows.tasks import Task

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, Task):
        raise TypeError(
            f"{module}.{qualname} is not a @task defined at module level: a task run on the "
            "CeleryTaskRunner is found by its module and name on the worker that runs it"
        )
    return found if found.name == name else found.with_options(name=name)


def task_address(task: Task) -> dict[str, str]:
    """How another worker finds `task`; refuses one it would not find as it is here."""
    address = {"module": task.fn.__module__, "qualname": task.fn.__qualname__,
                "name": task.name}
    found = find_task(**address)
    if found._options != task._options:
        raise TypeError(
            f"task {task.name!r} was given options of its own (with_options): a worker "
            "running it on the CeleryTaskRunner knows only the module-level @task's options "
            "(name= aside); define the variant as a module-level task"
        )
    return address


def arguments(task: Task, parameters: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """The call's arguments from the JSON sent, coerced to the task's type hints."""
    import inspect
    import typing

    from orchestrator.injection import CoercionError, coerce

    try:
        hints = typing.get_type_hints(task.fn)
    except NameError:
        hints = {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, parameter in task.signature.parameters.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if name in hints:
            try:
                value = coerce(value, hints[name], name)
            except CoercionError:
                pass
        if parameter.kind == inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif parameter.kind == inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif parameter.kind == inspect.Parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    return tuple(args), kwargs


# --- the step log: what became of the calls sent ----------------------------------------------


def final_rows(process_id: Any, first_attempts: dict[str, int]
               ) -> dict[str, tuple[str, dict[str, Any]]]:
    """The final row (status, state) of each call sent (key: its first attempt in this turn)
    that has one: its success, or a failed attempt after which it was not retried. Rows of
    the attempts of earlier turns (a failure the flow was retried after) do not count."""
    rows = ProcessStep.objects.filter(process_id=process_id, task_key__in=list(first_attempts),
                                      replayed=False).order_by("id")
    last: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, status, state, attempt in rows.values_list("task_key", "status", "state",
                                                        "attempt"):
        if attempt >= first_attempts[key]:
            last[key] = (status, state or {})
    return {key: row for key, row in last.items()
            if row[0] == StepStatus.SUCCESS
            or (row[0] == StepStatus.FAILED and "retry_in" not in row[1])}


def rebuilt_error(text: str) -> Exception:
    """The failure of a task run on another worker, as an exception here: a built-in
    exception (so `ConnectionError` still makes the flow `api_unavailable`) or
    TaskRunFailed."""
    from orchestrator.flows.engine import TaskRunTimeout

    name, _, message = text.partition(": ")
    kind = TaskRunTimeout if name == TaskRunTimeout.__name__ else getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind is not Exception:
        try:
            return kind(message)
        except TypeError:  # an exception class that wants other arguments
            pass
    return TaskRunFailed(text)


def lock_for(process_id: Any, key: str, timeout: float | None = None) -> Any:
    """The lock of one task call (`timeout` None: ORCHESTRATOR_LOCK_TIMEOUT_SECONDS)."""
    from orchestrator.lock import registry

    name = f"{process_id}/{key}"
    if len(name) > 200:
        import hashlib

        name = f"{process_id}/{hashlib.sha256(key.encode()).hexdigest()}"
    if timeout is None:
        timeout = settings.ORCHESTRATOR_LOCK_TIMEOUT_SECONDS
    return registry.get(name=name, namespace=LOCK_NAMESPACE, timeout=timeout)


# --- the flow's side --------------------------------------------------------------------------


@dataclasses.dataclass
class Sent:
    future: concurrent.futures.Future
    call: TaskCall
    payload: dict[str, Any]
    sent_at: float
    # Seconds without a final row before looking whether anybody runs it: from
    # ORCHESTRATOR_REQUEUE_AFTER_SECONDS, doubled at each look (a long queue of messages
    # is not flooded with copies).
    patience: float = 0.0


class CeleryTaskRuns:
    """The task runs one turn of a flow run sent to Celery, and the thread that waits for
    their rows."""

    def __init__(self, turn: FlowTurn, runner: CeleryTaskRunner) -> None:
        self.turn = turn
        self.queue = runner.queue or turn.process.workflow.type
        self.sent: dict[str, Sent] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closing = False
        self.thread: threading.Thread | None = None

    def submit(self, call: TaskCall) -> concurrent.futures.Future:
        """Send the call (once the futures it takes are resolved); a future of its state."""
        from orchestrator.flows.futures import TaskFuture

        future: concurrent.futures.Future = concurrent.futures.Future()
        waits = call.wait_for or any(
            isinstance(value, TaskFuture) or isinstance(value, list | tuple | dict)
            for value in (*call.args, *call.kwargs.values()))
        if waits:
            self.turn.thread_pool().submit(self.send, call, future)
        else:
            self.send(call, future)
        return future

    def send(self, call: TaskCall, future: concurrent.futures.Future) -> None:
        from orchestrator.injection import to_json

        try:
            call.resolve_inputs()
            self.turn.check_can_start()
            try:
                parameters = to_json(call.parameters)
            except (TypeError, ValueError) as error:
                raise TypeError(f"the arguments of task {call.task.name!r} cannot be sent to "
                                f"another worker as JSON: {error}") from None
            payload = {"process": str(self.turn.pk), "owner": self.turn.owner, "key": call.key,
                       "attempt": self.turn.failed_attempts.get(call.key, 0) + 1,
                       "parameters": parameters, **task_address(call.task)}
        except BaseException as error:  # noqa: BLE001 - the future's outcome
            future.set_exception(error)
            return
        with self.lock:
            self.sent[call.key] = Sent(future, call, payload, time.monotonic())
            if self.thread is None:
                self.thread = threading.Thread(target=self.wait_for_rows, daemon=True,
                                               name=f"flow-{self.turn.pk}-celery")
                self.thread.start()
        self.enqueue(payload)
        self.wake.set()

    def enqueue(self, payload: dict[str, Any]) -> None:
        from orchestrator.tasks import run_flow_task_run

        run_flow_task_run.apply_async(args=[payload], queue=self.queue)

    def wait_for_rows(self) -> None:
        """Until closed: resolve the futures of calls whose final row is written; send again
        a call nobody runs; give up all when the turn lost the run's lease."""
        pause = FIRST_POLL_SECONDS
        try:
            while True:
                with self.lock:
                    sent = dict(self.sent)
                    if not sent and self.closing:
                        return
                if sent:
                    found = self.settle(sent)
                    pause = FIRST_POLL_SECONDS if found else min(pause * 1.5, LAST_POLL_SECONDS)
                self.wake.wait(pause if sent else LAST_POLL_SECONDS)
                self.wake.clear()
        finally:
            connection.close()

    def settle(self, sent: dict[str, Sent]) -> bool:
        from orchestrator.flows.engine import RunInterrupted

        turn = self.turn
        if not Process.objects.filter(pk=turn.pk, lease_owner=turn.owner).exists():
            for key, item in sent.items():
                self.resolve(key, item, error=RunInterrupted(str(turn.pk)))
            return True
        rows = final_rows(turn.pk, {key: item.payload["attempt"] for key, item in sent.items()})
        for key, (status, state) in rows.items():
            item = sent[key]
            if status == StepStatus.SUCCESS:
                self.resolve(key, item, Completed(turn.decode(item.call, state.get("result"))))
            else:
                self.resolve(key, item, Failed(rebuilt_error(state.get("error", ""))))
        now = time.monotonic()
        for key, item in sent.items():
            patience = item.patience or settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS
            if key not in rows and now - item.sent_at > patience:
                item.patience = patience * 2
                self.send_again(item)
        return bool(rows)

    def resolve(self, key: str, item: Sent, state: State | None = None,
                error: BaseException | None = None) -> None:
        with self.lock:
            self.sent.pop(key, None)
        if item.future.done():  # cancelled: the flow ended without it
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(state)

    def send_again(self, item: Sent) -> None:
        """No final row yet: if nobody holds the call's lock, nobody runs it (its worker died,
        or the message was lost): send it again. Otherwise look again later."""
        from orchestrator.lock import LockTimeout

        item.sent_at = time.monotonic()
        try:
            with lock_for(self.turn.pk, item.call.key, timeout=0):
                pass
        except LockTimeout:
            return
        self.enqueue(item.payload)

    def close(self) -> None:
        """After the turn settled its futures: what is left was cancelled; stop waiting."""
        with self.lock:
            self.sent.clear()
            self.closing = True
            thread = self.thread
        self.wake.set()
        if thread is not None:
            thread.join()


# --- the other worker's side ------------------------------------------------------------------


def run_sent(payload: dict[str, Any]) -> None:
    """What the Celery task runs: the task call, unless the turn that sent it is over or the
    call already ended (another delivery of it ran it: this one waits for that one's end)."""
    from orchestrator.lock import LockTimeout

    process_id, owner, key = payload["process"], payload["owner"], payload["key"]
    process = Process.objects.select_related("workflow").filter(
        pk=process_id, lease_owner=owner).first()
    if process is None:
        return  # the flow run's turn ended: a later turn sends the call again if needed
    try:
        with lock_for(process_id, key):
            if not final_rows(process_id, {key: payload["attempt"]}):
                run_call(process, owner, payload)
    except LockTimeout:
        return


def run_call(process: Process, owner: str, payload: dict[str, Any]) -> None:
    from orchestrator import registry, runlog
    from orchestrator.aio import run_sync
    from orchestrator.flows.engine import CallRun, FlowTurn, RunStop, TaskCall, _turn
    from orchestrator.redaction import redacting
    from orchestrator.runner import ProcessRun, RunWatch

    key = payload["key"]
    flow = registry.get_definition(process.workflow.name).load()
    run = ProcessRun(process, owner, RunWatch())
    turn = FlowTurn(run, flow)
    turn.progressed = True  # rows only check the lease; the flow's worker renews it
    attempts = ProcessStep.objects.filter(process_id=process.pk, task_key=key,
                                          status=StepStatus.FAILED).values_list("attempt",
                                                                                flat=True)
    turn.failed_attempts[key] = max(attempts, default=0)
    task = find_task(payload["module"], payload["qualname"], payload["name"])
    args, kwargs = arguments(task, payload["parameters"])
    token = _turn.set(turn)
    try:
        with redacting(run.redact), runlog.capturing(process.pk, run.redact):
            work = CallRun(TaskCall(turn, task, args, kwargs, key=key))
            if task.isasync:
                run_sync(work.run_async())
            else:
                work.run()
            turn.settle_futures(raise_failures=False)
    except RunStop:
        pass  # the flow run's lease is gone: nothing of this run committed
    finally:
        turn.close()
        _turn.reset(token)

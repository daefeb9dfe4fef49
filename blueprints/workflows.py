"""The engine workflows behind an Execute and a Tear down: each is one tracked run whose
children are the steps' processes (registered by the app itself, always present)."""

from __future__ import annotations

from orchestrator.catalogue import WorkflowDefinition, WorkflowType
from orchestrator.workflow import State, StepList, done, init, step, workflow


@step("Start the steps that are ready")
def start_ready_steps(execution_id: str, process_id: str) -> State:
    from blueprints.runs import start_ready_steps as start

    return {"steps_started": start(execution_id, process_id)}


@workflow("Execute a blueprint: start the steps that need nothing; every further step "
          "starts as soon as the steps it depends on are done")
def blueprint_execution() -> StepList:
    return init >> start_ready_steps >> done


@step("Terminate the resources nothing depends on")
def start_ready_terminations(execution_id: str, process_id: str) -> State:
    from blueprints.runs import start_ready_terminations as start

    return {"terminations_started": start(execution_id, process_id)}


@workflow("Tear down an execution's resources in reverse dependency order")
def blueprint_teardown() -> StepList:
    return init >> start_ready_terminations >> done


WORKFLOWS = [
    WorkflowDefinition(name="blueprint_execution", module=__name__,
                       function="blueprint_execution", type=WorkflowType.INTERNAL),
    WorkflowDefinition(name="blueprint_teardown", module=__name__,
                       function="blueprint_teardown", type=WorkflowType.INTERNAL),
]

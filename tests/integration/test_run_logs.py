"""Run logs and structured logs on a real worker: its INFO lines are kept with the process
whatever the worker's `--loglevel`, and every line it writes of a run names the run."""

from __future__ import annotations

import pytest

from orchestrator import services
from orchestrator.models import Process, ProcessLog
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_keeps_the_run_log_and_tags_its_own_lines(synced, start_worker, tmp_path):
    output = tmp_path / "worker.log"
    start_worker(pool="threads", concurrency=2, loglevel="WARNING", output=output)
    process = services.start_process(workflow_name="flow-logs", input_pages=[{"word": "ping"}])
    wait_for(lambda: Process.objects.get(pk=process.pk).status == "completed", timeout=60)
    stored = list(ProcessLog.objects.filter(process=process).values_list(
        "step", "level", "message"))
    assert stored == [
        ("flow-logs", 20, "flow body prints"),
        ("chatty-0", 20, "printing ping"),
        ("chatty-0", 30, "warning about ping"),
    ]
    # The worker's own output: WARNING and above (its --loglevel), each naming its run.
    text = wait_for(lambda: "warning about ping" in output.read_text() and output.read_text())
    line = next(line for line in text.splitlines() if "warning about ping" in line)
    assert line.endswith(
        f"WARNING tests.flows process={process.pk} step=chatty-0 attempt=1 warning about ping"
    ), line
    assert "printing ping" not in text

"""Run logs (orchestrator.runlog): what a run logs and prints is kept with its process,
tagged with its step or task, redacted, bounded; worker log lines name their run."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings

from orchestrator import services
from orchestrator.models import Process, ProcessLog, WorkerPing
from orchestrator.redaction import MARK, Redactor
from orchestrator.runlog import JsonFormatter, RunContextFilter, capturing
from tests.helpers import fixed, run, start

pytestmark = pytest.mark.django_db(transaction=True)


def lines(process, **filters) -> list[tuple]:
    return list(ProcessLog.objects.filter(process=process, **filters).values_list(
        "step", "task_key", "attempt", "level", "logger", "message"))


def test_log_records_and_prints_are_kept_tagged_with_their_task(synced):
    process = run(start("flow-logs", {"word": "hi"}))
    assert process.status == "completed", process.failed_reason
    assert lines(process) == [
        ("flow-logs", "", 1, logging.INFO, "orchestrator.flows.prints", "flow body prints"),
        ("chatty-0", "chatty#0", 1, logging.INFO, "orchestrator.flows.prints", "printing hi"),
        ("chatty-0", "chatty#0", 1, logging.WARNING, "tests.flows", "warning about hi"),
    ]


def test_a_failed_attempt_s_lines_are_kept_though_its_work_rolled_back(synced):
    process = start("flow-deploy", {"site": "ams1", "token": "tok-3141592"})
    process = run(process)
    assert process.status == "completed", process.failed_reason
    # The first attempt's database write rolled back; its log line is there, tagged attempt 1.
    assert list(WorkerPing.objects.filter(marker__startswith=f"{process.pk}:deploy")
                .values_list("marker", flat=True)) == [f"{process.pk}:deploy:2"]
    deploy = lines(process, task_key="deploy#0")
    assert [(step, attempt, message) for step, _, attempt, _, _, message in deploy] == [
        ("deploy-ams1", 1, f"deploying ams1 (attempt 1) with token {MARK}"),
        ("deploy-ams1", 2, f"deploying ams1 (attempt 2) with token {MARK}"),
    ]
    # Below the run log level (INFO): not kept. An async task's lines are tagged too.
    assert not ProcessLog.objects.filter(process=process, message__contains="debug detail")
    assert lines(process, task_key="announce#0") == [
        ("announce-0", "announce#0", 1, logging.INFO, "tests.flows", "announcing ams1")]
    assert not ProcessLog.objects.filter(message__contains="tok-3141592").exists()


def test_a_failed_step_keeps_its_redacted_log_line(synced):
    process = run(start("wf_secret_failure", {"username": "ann", "password": "hunter2-secret"}))
    assert process.status == "failed"
    assert lines(process) == [(
        "Log in and fail", "", 1, logging.WARNING, "tests.workflows",
        f"logging in as ann with {MARK}",
    )]


def test_the_log_is_bounded_and_says_where_it_was_cut(synced, settings):
    settings.ORCHESTRATOR_RUN_LOG_MAX_LINES = 5
    settings.ORCHESTRATOR_RUN_LOG_MAX_CHARS = 100
    process = run(start("flow-deploy", {"site": "x" * 150, "lines": 10}))
    assert process.status == "completed", process.failed_reason
    stored = lines(process)
    assert len(stored) == 6
    assert stored[0][5] == "deploying " + "x" * 90 + "… [72 more characters not kept]"
    assert [line[5] for line in stored[1:5]] == [f"progress line {i}" for i in range(4)]
    assert stored[5][3:] == (logging.WARNING, "orchestrator.runlog",
                             "Run log truncated: more than 5 lines; the rest are only in the "
                             "worker's own log output.")
    # A later turn of the same process adds nothing more.
    with capturing(process.pk, Redactor()):
        logging.getLogger("tests").warning("one more")
    assert len(lines(process)) == 6


def worker_output(formatter: logging.Formatter, *runs: tuple[str, dict]) -> tuple[list, list]:
    """What a handler configured as settings.LOGGING's console writes while the flows run
    (a line logged outside any run first), and the processes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("tests").info("outside any run")
        processes = [run(start(name, page)) for name, page in runs]
    finally:
        root.removeHandler(handler)
    return stream.getvalue().splitlines(), processes


def test_worker_log_lines_name_their_process_and_step(synced):
    """Structured logs: the console format of settings.LOGGING with its run context filter."""
    plain = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    output, [process] = worker_output(plain, ("flow-deploy", {"site": "lon 2"}))
    assert any(line.endswith("INFO tests outside any run") for line in output), output
    pk = process.pk
    expected = [
        f"INFO tests.flows process={pk} step=flow-deploy attempt=1 deploying lon 2 in 0 lines",
        f'INFO tests.flows process={pk} step="deploy-lon 2" attempt=2 deploying lon 2 '
        "(attempt 2) with token none",
    ]
    for text in expected:
        assert any(line.endswith(text) for line in output), (text, output)


def test_log_format_json_gives_one_object_per_line_with_the_run(synced):
    output, [process, failed] = worker_output(
        JsonFormatter(), ("flow-deploy", {"site": "lon 2"}),
        ("wf_secret_failure", {"username": "ann", "password": "hunter2-secret"}))
    entries = [json.loads(line) for line in output]
    assert {"level": "INFO", "logger": "tests", "message": "outside any run"}.items() \
        <= entries[0].items() and "process_id" not in entries[0]
    attempt = next(entry for entry in entries if entry["message"].startswith(
        "deploying lon 2 (attempt 2)"))
    assert (attempt["process_id"], attempt["step"], attempt["attempt"]) == (
        str(process.pk), "deploy-lon 2", 2)
    warning = next(entry for entry in entries if entry.get("process_id") == str(failed.pk))
    assert (warning["level"], warning["step"]) == ("WARNING", "Log in and fail")
    assert warning["message"] == f"logging in as ann with {MARK}"  # redacted (console filter)


# --- the API ---------------------------------------------------------------------------------


def test_the_api_lists_a_run_log_and_follows_it_with_a_cursor(viewer, nobody, api):
    process = run(start("flow-deploy", {"site": "ams1", "lines": 2}))
    url = f"/api/processes/{process.pk}/logs/"
    response = api(viewer).get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 6
    first = body["results"][0]
    assert set(first) == {"id", "created_at", "level", "step", "task_key", "attempt", "logger",
                          "message"}
    assert (first["level"], first["step"], first["message"]) == (
        "INFO", "flow-deploy", "deploying ams1 in 2 lines")
    ids = [line["id"] for line in body["results"]]
    assert ids == sorted(ids)
    after = api(viewer).get(url, {"after": ids[2]}).json()
    assert [line["id"] for line in after["results"]] == ids[3:]
    attempt_two = api(viewer).get(url, {"task_key": "deploy#0", "level": "INFO"}).json()
    assert [line["attempt"] for line in attempt_two["results"]] == [1, 2]
    assert api(viewer).get(url, {"level": "WARNING"}).json()["count"] == 0
    later = api(viewer).get(url, {"since": "2999-01-01T00:00:00Z"}).json()
    assert later["count"] == 0
    # Who may not view the process does not learn it exists.
    assert api(nobody).get(url).status_code == 404
    assert api().get(url).status_code == 401


@pytest.mark.parametrize("query, field", [
    ({"after": "x"}, "after"), ({"after": "-1"}, "after"), ({"after": "1.5"}, "after"),
    ({"level": "LOUD"}, "level"), ({"since": "yesterday"}, "since"),
    ({"limit": "0"}, "limit"),
])
def test_bad_run_log_filters_are_a_400_naming_them(viewer, api, query, field):
    process = start("flow-deploy", {})
    response = api(viewer).get(f"/api/processes/{process.pk}/logs/", query)
    assert response.status_code == 400, response.content
    assert field in response.json()


# --- the process page --------------------------------------------------------------------------


def test_the_process_page_shows_a_flow_s_task_runs_children_and_log(viewer, client):
    parent = run(start("flow-parent", {"values": [1, 2]}))
    assert parent.status == "completed", parent.failed_reason
    process = run(start("flow-deploy", {"site": "ams1", "token": "tok-2718281"}))
    client.force_login(viewer)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert "<h2>Task runs</h2>" in page
    log = page[page.index('id="run-log"'):]
    assert "7 lines" not in log and "4 lines" in log  # 1 flow line, 2 attempts, 1 async task
    assert f"deploying ams1 (attempt 2) with token {MARK}" in log
    assert '<span class="tag">attempt 2</span>' in log
    assert "tok-2718281" not in page
    fragment = client.get(f"/processes/{parent.pk}/fragment/").content.decode()
    assert "<h2>Child runs</h2>" in fragment
    children = Process.objects.filter(parent=parent).order_by("started_at")
    assert [child.run_name for child in children] == ["child-1", "child-2"]
    assert all(f'href="/processes/{child.pk}/">child-' in fragment for child in children)


def test_the_page_marks_replayed_task_runs_and_cache_hits(viewer, client):
    process = run(start("flow-counted", {"tasks": 2, "fail_at": 1}))
    assert process.status == "failed"
    with fixed(process):
        services.resume_process(process=process)
        process = run(process)
    assert process.status == "completed", process.failed_reason
    run(start("flow-cached", {"value": 77}))
    cached = run(start("flow-cached", {"value": 77}))
    client.force_login(viewer)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    replayed = page[page.index("counted#0"):]
    assert '<span class="tag">replayed</span>' in replayed
    assert "recorded result returned again, the task did not run" in replayed
    assert '<span class="tag">cache hit</span>' in client.get(
        f"/processes/{cached.pk}/").content.decode()


def test_a_step_list_page_says_steps_and_when_nothing_was_logged(viewer, client):
    process = start("wf_counted", {"steps": 1})
    client.force_login(viewer)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert "<h2>Steps</h2>" in page and "Child runs" not in page
    assert "Nothing logged yet. What the steps log (INFO and above)" in page
    assert 'class="run-name"' not in page  # its default name: the heading says it already
    process = run(process)
    assert process.status == "completed"
    assert "Nothing was logged (at INFO or above)." in client.get(
        f"/processes/{process.pk}/").content.decode()


def test_a_flow_parked_for_its_children_says_so_not_that_it_retries(viewer, client):
    process = start("flow-parent", {"values": [1]})
    Process.objects.filter(pk=process.pk).update(
        status="waiting", waiting_on_children=True, retry_at=process.started_at)
    client.force_login(viewer)
    fragment = client.get(f"/processes/{process.pk}/fragment/").content.decode()
    assert "Waiting for its child runs (below) to end" in fragment
    assert "Retrying automatically" not in fragment


def test_a_run_log_that_cannot_be_stored_never_fails_the_run(synced, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("database says no")

    monkeypatch.setattr(ProcessLog.objects, "bulk_create", refuse)
    process = run(start("flow-deploy", {"site": "ams1"}))
    assert process.status == "completed", process.failed_reason
    assert "could not store run log lines of process" in caplog.text

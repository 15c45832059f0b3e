"""Airflow DAG for the nightly North Star build: freshness -> build (with its data tests) -> test,
and a notification task when the build raises an alert.

Exit codes (README "Exit codes") decide what Airflow does, task by task:

- 0: success;
- 3 (data not there yet, engine failure) and 4 (another build holds the lock): retried;
- 1 (fix a file), 2 (fix the command), 7 (a data test failed: fix the data): failed at once, no
  retries: running it again cannot help;
- 5 (build --fail-on: the scorecard is published, a guardrail is breached or the North Star is
  red): the build task ends *skipped* (``skip_on_exit_code``), which triggers ``notify_owners``
  (trigger rule ``all_skipped``) and lets ``test`` run (``none_failed``).

The shell commands live in COMMANDS, read by tests/test_scheduler_examples.py, which runs exactly
these strings with bash and checks the exit codes and where ROUTE sends them (Airflow itself is
too heavy for CI). Set NORTHSTAR_PROJECT (the project directory, with its .venv) and
NORTHSTAR_TARGET (default prod) in the worker's environment or below.
"""

from __future__ import annotations

import os

RETRYABLE_EXIT_CODES = frozenset({3, 4})
EXIT_ALERT = 5

# One northstar command per task; JSON logs so the alert events can be routed.
_NORTHSTAR = 'cd "$NORTHSTAR_PROJECT" && mkdir -p logs && "${NORTHSTAR_BIN:-.venv/bin/northstar}"'
COMMANDS = {
    "freshness": f'{_NORTHSTAR} freshness --format json',
    # The JSON log goes to the task log and to logs/northstar.jsonl; the exit code is northstar's.
    "build": (f'{_NORTHSTAR} build --fail-on breach --fail-on red --log-format json 2>&1'
              ' | tee -a logs/northstar.jsonl; exit "${PIPESTATUS[0]}"'),
    "test": f'{_NORTHSTAR} test --format json',
    # Replace with your channel (Slack, e-mail...): each alert line names metric, period, value,
    # threshold and owner.
    "notify_owners": 'cd "$NORTHSTAR_PROJECT" && grep \'"event": "alert"\' logs/northstar.jsonl | tail -n 20',
}
ENV = {"NORTHSTAR_PROJECT": os.environ.get("NORTHSTAR_PROJECT", "/srv/analytics"),
       "NORTHSTAR_TARGET": os.environ.get("NORTHSTAR_TARGET", "prod")}


def route(task: str, exit_code: int) -> str:
    """What Airflow does with a task's exit code: success, retry, fail (no retries) or alert."""
    if exit_code == 0:
        return "success"
    if task == "build" and exit_code == EXIT_ALERT:
        return "alert"
    return "retry" if exit_code in RETRYABLE_EXIT_CODES else "fail"


try:  # the module is importable without Airflow, so the commands can be tested anywhere
    import pendulum
    from airflow import DAG
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.utils.trigger_rule import TriggerRule

    try:
        from airflow.providers.standard.operators.bash import BashOperator  # Airflow 3
    except ImportError:  # Airflow 2
        from airflow.operators.bash import BashOperator
except ImportError:
    DAG = None

if DAG is not None:

    class NorthstarOperator(BashOperator):
        """A BashOperator whose failures are retried only on the retryable exit codes."""

        def execute(self, context):  # type: ignore[no-untyped-def]
            try:
                return super().execute(context)
            except AirflowSkipException:
                raise
            except AirflowException as error:
                process = getattr(self.subprocess_hook, "sub_process", None)
                code = process.returncode if process is not None else None
                if code is None or route(self.task_id, code) == "retry":
                    raise
                raise AirflowFailException(f"northstar exited {code}: not retryable (README 'Exit codes')") from error

    with DAG(
        dag_id="northstar_nightly",
        schedule="30 2 * * *",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # the project's lock allows one build at a time anyway (exit 4)
        default_args={"retries": 3, "retry_delay": pendulum.duration(minutes=20), "env": ENV, "append_env": True},
        tags=["northstar"],
    ) as dag:
        freshness = NorthstarOperator(task_id="freshness", bash_command=COMMANDS["freshness"])
        build = NorthstarOperator(task_id="build", bash_command=COMMANDS["build"], skip_on_exit_code=EXIT_ALERT)
        test = NorthstarOperator(task_id="test", bash_command=COMMANDS["test"], trigger_rule=TriggerRule.NONE_FAILED)
        notify_owners = BashOperator(
            task_id="notify_owners",
            trigger_rule=TriggerRule.ALL_SKIPPED,  # only when build exited 5
            retries=0,
            bash_command=COMMANDS["notify_owners"],
        )
        freshness >> build >> [test, notify_owners]

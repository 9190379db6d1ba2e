"""``CompensateOperator``: when a process fails for good, undo the effects its run made, newest first.

A DAG run's effects are the idempotency keys its tasks completed. Tasks that can undo theirs declare how
(``compensate=`` on ``@task.idempotent``, ``IdempotentPythonOperator`` and ``IdempotentHttpOperator``). The
compensating task is a teardown downstream of every other task, added last with ``compensation()``::

    @dag(...)
    def claims_payment():
        pay = IdempotentHttpOperator(..., compensate=HttpCompensation(endpoint="/refunds", data=...))
        ...
        compensation()

It waits until every task is done (retries included), then looks at the run: when a task failed or a person
rejected an approval, it undoes each effect exactly once, in the reverse order of completion; otherwise it
skips. The grid shows it as the run's teardown; the run's own state still comes from the process's tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule

from airflow_integrity.compat import AirflowFailException, AirflowSkipException
from airflow_integrity.operators._idempotency import NOTHING_TO_UNDO, holder_of
from airflow_integrity.store.ledger.defaults import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.compensation import Effect

__all__ = ["NOTHING_TO_UNDO", "CompensateOperator", "compensation"]

FAILED_STATES = frozenset({"failed", "upstream_failed"})


class CompensateOperator(BaseOperator):
    """Undo, exactly once each and newest first, the effects a DAG run made, when its process failed for good.

    Add it with :func:`compensation` as the last statement of the DAG: a teardown downstream of every other
    task. Each undo runs under the key ``<key>/compensation`` (a retry or a concurrent duplicate replays it
    instead of undoing twice; a killed attempt is taken over with a higher fencing token) and is audited as
    ``compensation.started`` / ``completed`` / ``failed``. An effect whose task declares no compensation is
    reported as ``compensation.not_declared`` and left for a person (one declared ``NOTHING_TO_UNDO`` is left
    as it is, silently). When an undo fails, the effects older than
    it are left as they are (an undo may depend on the newer ones being undone first) and the task fails; its
    retries start again from the newest effect not yet undone. After the last retry the failure is for good: the
    task stays failed, ``compensation.failed`` says ``"final": true``, and a person resolves it (fix the cause,
    clear the task).

    Args:
        business_key: Business key of the compensation's audit events (templated; default: each effect's own).
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        lease_seconds: How long a compensation's claim stays live without a heartbeat.
        kwargs: Arguments of ``BaseOperator`` (``retries`` defaults to 3).
    """

    template_fields: Sequence[str] = ("business_key",)
    ui_color = "#f6e3d4"

    def __init__(
        self,
        *,
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 3)
        super().__init__(**kwargs)
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id
        self.lease_seconds = lease_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        """Skip when the process did not fail; else undo its run's effects, newest first."""
        from airflow_integrity.hooks.compensation import effects_of_run

        dag, ti = context["dag"], context["ti"]
        self._check_wiring(dag)
        reasons = self._failure_reasons(context)
        if not reasons:
            raise AirflowSkipException("The process did not fail: nothing to compensate.")
        self.log.info("The process failed (%s): undoing its effects, newest first.", "; ".join(reasons))
        effects = effects_of_run(ti.dag_id, ti.run_id, integrity_conn_id=self.integrity_conn_id)
        undone: list[str] = []
        replayed: list[str] = []
        undeclared: list[str] = []
        kept: list[str] = []
        for effect in effects:
            task = dag.task_dict.get(effect.task_id) if effect.task_id else None
            if isinstance(task, CompensateOperator):
                continue  # a compensation this task (or another compensating one) completed
            undo = declared_undo(task)
            if undo == NOTHING_TO_UNDO:
                kept.append(effect.entry.key)
                continue
            if undo is None:
                undeclared.append(self._not_declared(context, effect, task))
                continue
            self._refuse_if_shared(context, effect)
            outcome = self._undo(context, task, effect)
            (replayed if outcome.replayed else undone).append(effect.entry.key)
        summary = {
            "reasons": reasons,
            "undone": undone,
            "replayed": replayed,
            "nothing_to_undo": kept,
            "not_declared": undeclared,
        }
        self.log.info("Compensation done: %s", summary)
        if undeclared:
            raise AirflowFailException(
                f"Undone what could be: {summary}. These effects declare no way to undo them and are left for "
                f"a person: {', '.join(undeclared)} (see compensation.not_declared in the trail). Once handled, "
                "mark this task successful."
            )
        return summary

    def _refuse_if_shared(self, context: Context, effect: Effect) -> None:
        """Stop before undoing an effect another DAG run relied on (it replayed the stored result)."""
        from airflow_integrity.hooks.compensation import record_about, runs_relying_on
        from airflow_integrity.hooks.integrity import IntegrityCheckHook

        others = runs_relying_on(effect, integrity_conn_id=self.integrity_conn_id)
        if not others:
            return
        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        record_about(hook, effect, "blocked", {"relied_on_by": others}, task_instance=context["ti"])
        raise AirflowFailException(
            f"Effect {effect.entry.key!r} (namespace {effect.entry.namespace!r}) was also used by "
            f"{', '.join(others)}, which replayed its result: undoing it would undo theirs too. Nothing older is "
            "undone either. A person decides: undo it by hand and mark this task successful, or clear this task "
            "once those runs are undone."
        )

    # -- when ---------------------------------------------------------------------------------------

    def _check_wiring(self, dag: Any) -> None:
        missing = sorted(
            t.task_id
            for t in dag.tasks
            if t.task_id != self.task_id and not t.is_teardown and t.task_id not in self.upstream_task_ids
        )
        if missing:
            raise AirflowFailException(
                f"Task {self.task_id!r} must run after every task of DAG {dag.dag_id!r} so that it sees every "
                f"effect; these are not upstream of it: {', '.join(missing)}. Call compensation() as the last "
                "statement of the DAG, after every task is defined."
            )

    def _failure_reasons(self, context: Context) -> list[str]:
        """Why the process failed for good: failed tasks, rejected approvals (empty: it did not fail)."""
        dag, ti = context["dag"], context["ti"]
        # Teardowns and checks of the process (an error budget's measurement) are not steps of the process.
        ignored = {t.task_id for t in dag.tasks if t.is_teardown or getattr(t, "measures_the_process", False)}
        mapped = {t.task_id for t in dag.tasks if hasattr(t, "partial_kwargs")}
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        reasons = [
            f"task {name} {state}"
            for name, state in sorted(states.items())
            if state in FAILED_STATES and _task_of(name, mapped) not in ignored
        ]
        # A rejected approval skips what follows it and returns nothing: its signature in the trail says it.
        from airflow_integrity.hooks.compensation import rejections_in_run

        rejected = rejections_in_run(ti.dag_id, ti.run_id, integrity_conn_id=self.integrity_conn_id)
        reasons.extend(f"approval {who} rejected" for who in rejected)
        return reasons

    # -- how ----------------------------------------------------------------------------------------

    def _undo(self, context: Context, task: Any, effect: Effect) -> Any:
        from airflow_integrity.hooks.compensation import compensate

        ti = context["ti"]
        named = effect.as_dict()
        return compensate(
            effect,
            lambda result, claim: task.undo_effect(context, result, named, claim),
            holder=holder_of(context),
            business_key=self.business_key or self._business_key_of(context, task, effect),
            integrity_conn_id=self.integrity_conn_id,
            task_instance=ti,
            lease_seconds=self.lease_seconds,
            final_attempt=ti.try_number > (ti.max_tries or 0),
        )

    def _business_key_of(self, context: Context, task: Any, effect: Effect) -> str:
        """The business key the effect's own events carried: its task's ``business_key`` rendered for this run,
        else the effect's key."""
        template = getattr(task, "business_key", None)
        if not isinstance(template, str) or not template:
            return effect.entry.key
        try:
            rendered = task.render_template(template, context)
        except Exception:
            self.log.warning("business_key of task %r could not be rendered here; using the key", task.task_id)
            return effect.entry.key
        return rendered if isinstance(rendered, str) and rendered else effect.entry.key

    def _not_declared(self, context: Context, effect: Effect, task: Any) -> str:
        from airflow_integrity.hooks.compensation import record_about
        from airflow_integrity.hooks.integrity import IntegrityCheckHook

        where = "is no longer in the DAG" if task is None else "declares no compensate="
        self.log.warning(
            "Effect %r cannot be undone here: its task %s %s.", effect.entry.key, effect.task_id, where
        )
        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        reason = f"task {effect.task_id} {where}"
        record_about(hook, effect, "not_declared", {"reason": reason}, task_instance=context["ti"])
        return effect.entry.key


def _task_of(name: str, mapped: Iterable[str]) -> str:
    """The task of a task-state name: ``<task>_<map index>`` for a task among ``mapped``, else the name itself."""
    for task_id in mapped:
        if name.startswith(task_id + "_") and name[len(task_id) + 1 :].isdigit():
            return task_id
    return name


def declared_undo(task: Any) -> Any:
    """What a task declares to undo its effect (a mapped task declares it in its partial arguments)."""
    if task is None:
        return None
    if hasattr(task, "partial_kwargs"):
        return task.partial_kwargs.get("compensate")
    return getattr(task, "compensate", None)


def compensation(task_id: str = "compensate", **kwargs: Any) -> CompensateOperator:
    """Add the DAG's compensating task: a teardown downstream of every task defined so far (call it last).

    Args:
        task_id: Its task id.
        kwargs: Arguments of ``CompensateOperator``.
    """
    task = CompensateOperator(task_id=task_id, **kwargs)
    if not task.has_dag():
        raise RuntimeError("compensation() adds a task to a DAG: call it inside a `with DAG(...)` or @dag body.")
    for other in task.dag.tasks:
        if other is task or other.is_teardown:
            continue
        undo = declared_undo(other)
        if hasattr(other, "partial_kwargs") and undo not in (None, NOTHING_TO_UNDO):
            raise ValueError(
                f"Task {other.task_id!r} is mapped: compensate= is not supported on mapped tasks yet. Undo its "
                "effects in a task of your own, or give each effect a task of its own."
            )
        other >> task
    task.as_teardown()
    # Runs once everything is done whatever the DAG's own setup tasks did: a failed setup is a failed process too.
    task.trigger_rule = TriggerRule.ALL_DONE
    return task

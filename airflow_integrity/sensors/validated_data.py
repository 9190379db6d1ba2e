"""``ValidatedDataSensor``: wait until a file, table or HTTP endpoint holds data that passes a suite."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_integrity.hooks.source_arguments import SOURCE_TEMPLATE_FIELDS, DataSourceArguments, check_one_source
from airflow_integrity.settings import default_deferrable
from airflow_integrity.validation.suite_refs import check_suite_reference, is_gx_object

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.data_sources import DataSource


class ValidatedDataSensor(DataSourceArguments, BaseSensorOperator):
    """Wait until the data at a source passes a Great Expectations suite.

    Each check loads the data; when there is some, it is validated (stored and audited like any validation,
    so a failing check leaves a ``validation.failed`` event). The sensor succeeds on the first passing check
    and returns ``{"summary": ...}``; on timeout it fails with the last check's failures in the message.
    With ``deferrable=True`` the checks run in the triggerer
    (:class:`~airflow_integrity.triggers.validated_data.ValidatedDataTrigger`) and the suite must be
    JSON-serialisable (a path, a suite name, a suite dict or a list of expectation dicts; a GX suite object is
    converted).

    Args:
        suite: Any suite reference.
        path, sql, table, endpoint, ...: The source, with its connection and options: the arguments of
            :class:`~airflow_integrity.hooks.data_sources.DataSourceArguments`.
        expectation_parameters: Values of ``$PARAMETER`` arguments in the suite (templated).
        context_dir: GX project root, for suites given by name.
        allow_empty: Accept data without rows as data (by default an empty source is "not yet").
        business_key: Business key of the audit events (templated).
        integrity_conn_id: The integrity store connection.
        deferrable: Wait in the triggerer; defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = (
        "suite",
        *SOURCE_TEMPLATE_FIELDS,
        "expectation_parameters",
        "context_dir",
        "business_key",
    )
    template_fields_renderers = {"sql": "sql", "expectation_parameters": "json"}

    def __init__(
        self,
        *,
        suite: Any,
        expectation_parameters: Mapping[str, Any] | None = None,
        context_dir: str | None = None,
        allow_empty: bool = False,
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable is None:
            deferrable = default_deferrable()
        check_one_source(self.named_sources(), owner=f"ValidatedDataSensor {self.task_id!r}", error=ValueError)
        if not (isinstance(suite, str) and "{{" in suite):
            check_suite_reference(suite, context_dir=context_dir)
        self.suite = suite
        self.expectation_parameters = expectation_parameters
        self.context_dir = context_dir
        self.allow_empty = allow_empty
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id
        self.deferrable = deferrable
        self._last_failure: str | None = None

    def _source(self) -> DataSource:
        from airflow_integrity.hooks.validation import fail_on_bad_input

        source = fail_on_bad_input(self.data_source)
        assert source is not None  # __init__ requires one source
        return source

    def _options(self) -> dict[str, Any]:
        return {
            "expectation_parameters": self.expectation_parameters,
            "context_dir": self.context_dir,
            "allow_empty": self.allow_empty,
        }

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check on the worker."""
        from airflow_integrity.compat import AirflowFailException
        from airflow_integrity.triggers.validated_data import ERROR, PASSED, check_once

        outcome = check_once(
            self._source(),
            self.suite,
            integrity_conn_id=self.integrity_conn_id,
            business_key=self.business_key,
            **self._options(),
        )
        if outcome["status"] == PASSED:
            return PokeReturnValue(is_done=True, xcom_value={"summary": outcome["summary"]})
        if outcome["status"] == ERROR:
            raise AirflowFailException(outcome["message"])
        self._last_failure = outcome["reason"]
        self.log.info("Data not valid yet: %s", self._last_failure)
        return False

    def execute(self, context: Context) -> Any:
        """Poke on the worker, or defer to the trigger; a timeout names the last failure."""
        from airflow_integrity.compat import AirflowSensorTimeout

        if self.deferrable:
            self._defer(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(f"{exc} Last check: {self._last_failure or 'no data yet'}") from exc

    def _defer(self, context: Context) -> None:
        from airflow_integrity.identity import task_instance_identity
        from airflow_integrity.triggers.validated_data import ValidatedDataTrigger

        identity = task_instance_identity(context["ti"])
        identity["dag_version_id"] = identity.pop("dag_version")
        identity.pop("bundle_version", None)
        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(
            trigger=ValidatedDataTrigger(
                source=self._source().serialize(),
                suite=_serialisable_suite(self.suite),
                poke_interval=float(self.poke_interval),
                timeout_at=time.time() + timeout if timeout else None,
                integrity_conn_id=self.integrity_conn_id,
                task_identity=identity,
                business_key=self.business_key,
                options=self._options(),
            ),
            method_name="execute_complete",
            # The trigger reports its own timeout with the last failure; this is only a safety net.
            timeout=timedelta(seconds=timeout + 2 * float(self.poke_interval) + 60) if timeout else None,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired."""
        from airflow_integrity.compat import AirflowFailException, AirflowSensorTimeout

        status = event.get("status")
        if status == "success":
            return {"summary": event["summary"]}
        if status == "timeout":
            raise AirflowSensorTimeout(
                f"Sensor {self.task_id!r} timed out after {event.get('checks')} checks; the data never passed. "
                f"Last check: {event.get('last_failure')}"
            )
        raise AirflowFailException(f"Sensor {self.task_id!r} cannot validate: {event.get('message', event)}")


def _serialisable_suite(suite: Any) -> Any:
    if isinstance(suite, os.PathLike):
        return os.fspath(suite)
    if is_gx_object(suite) and hasattr(suite, "to_json_dict"):
        return suite.to_json_dict()
    if isinstance(suite, list):
        return [item.configuration.to_json_dict() if is_gx_object(item) else item for item in suite]
    return suite

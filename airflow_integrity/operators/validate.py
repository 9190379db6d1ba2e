"""``ValidateDataOperator``: check the data one task hands to the next against a Great Expectations suite."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_integrity.hooks.source_arguments import SOURCE_TEMPLATE_FIELDS, DataSourceArguments, check_one_source
from airflow_integrity.hooks.validation_policy import check_policy
from airflow_integrity.validation.quarantine import check_quarantine_arguments
from airflow_integrity.validation.suite_refs import check_suite_reference

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.validation import Handoff

SAMPLE_MODES = ("values", "hashed", "none")
# Where the rows go when quarantine_path is not given (read when the task runs).
DEFAULT_QUARANTINE = "[integrity] quarantine_dir"


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def check_handoff_arguments(
    on_failure: str,
    *,
    quarantine_path: Any,
    quarantine_format: str | None,
    max_unexpected_fraction: float,
    samples: str,
) -> None:
    """Check the policy, quarantine and sample arguments of a validating task when the DAG is parsed.

    Raises:
        ValueError: Naming the argument: an unknown policy, format or samples mode, a fraction outside [0, 1],
            or a quarantine location that names a file instead of a folder.
    """
    location = DEFAULT_QUARANTINE if quarantine_path is None else quarantine_path
    check_policy(on_failure, quarantine_path=location, max_unexpected_fraction=max_unexpected_fraction)
    check_quarantine_arguments(quarantine_path, quarantine_format)
    if samples not in SAMPLE_MODES:
        raise ValueError(
            f"samples={samples!r} is not one of {', '.join(map(repr, SAMPLE_MODES))}; use 'hashed' for personal "
            "or otherwise sensitive data."
        )


POLICY_ARGUMENTS = (
    "on_failure",
    "quarantine_path",
    "quarantine_format",
    "allow_quarantine_path_from_conf",
    "max_unexpected_fraction",
    "quarantine_warnings",
    "samples",
)


class HandoffPolicyArguments:
    """What a validating task (``ValidateDataOperator``, ``@task.validated``) does when the data fails: the
    policy, the quarantine and the samples, checked when the DAG is parsed and kept as attributes."""

    on_failure: str
    quarantine_path: Any
    quarantine_format: str | None
    allow_quarantine_path_from_conf: bool
    max_unexpected_fraction: float
    quarantine_warnings: bool
    samples: str

    def keep_policy_arguments(self, arguments: Mapping[str, Any]) -> None:
        """Check the :data:`POLICY_ARGUMENTS` (each must be in ``arguments``) and keep them as attributes; call
        it once the task is built (it reads the DAG's params)."""
        check_handoff_arguments(
            arguments["on_failure"],
            quarantine_path=arguments["quarantine_path"],
            quarantine_format=arguments["quarantine_format"],
            max_unexpected_fraction=arguments["max_unexpected_fraction"],
            samples=arguments["samples"],
        )
        for name in POLICY_ARGUMENTS:
            setattr(self, name, arguments[name])
        # The location as written in the DAG (rendering replaces the attribute), and the DAG code's own params:
        # what a run's conf may not change (see quarantine_location).
        self._quarantine_path_template = self.quarantine_path
        self._dag_code_params = dag_code_params(self) if self.on_failure == "quarantine" else {}

    def apply_policy(self, hook: Any, run: Any, location: Any, business_key: str | None) -> Handoff:
        """Apply the policy to a validation's ``run`` (see :func:`airflow_integrity.hooks.validation.enforce`);
        ``location`` is the quarantine folder :func:`quarantine_location` allowed."""
        from airflow_integrity.hooks.validation import enforce

        return enforce(
            hook,
            run,
            on_failure=self.on_failure,
            quarantine_path=location,
            quarantine_format=self.quarantine_format,
            max_unexpected_fraction=self.max_unexpected_fraction,
            quarantine_warnings=self.quarantine_warnings,
            business_key=business_key,
        )


def quarantine_location(task: Any, rendered: Any, context: Mapping[str, Any]) -> Any:
    """The quarantine folder of a running validating task: ``rendered`` (its rendered ``quarantine_path``), once
    it is clear that whoever triggered the run did not choose it.

    A ``quarantine_path`` template that reads ``dag_run.conf``, or reads a param the run's conf set to a value
    other than the DAG's own, is refused unless the task was built with ``allow_quarantine_path_from_conf=True``:
    otherwise anyone allowed to trigger the DAG could send the rejected rows anywhere. Params at their DAG-code
    values (what Airflow's trigger form sends back unchanged) are DAG code.

    Args:
        task: The operator (its ``_quarantine_path_template`` is ``quarantine_path`` as written in the DAG).
        rendered: The rendered ``quarantine_path``.
        context: The task's context (``params``, ``dag_run``).

    Raises:
        AirflowFailException: The location comes from the run's conf, or names a file; naming the argument and
            the fix.
    """
    from airflow_integrity.compat import AirflowFailException

    template = getattr(task, "_quarantine_path_template", None)
    if isinstance(template, str) and not getattr(task, "allow_quarantine_path_from_conf", False):
        source = _conf_source(task, template, context)
        if source:
            raise AirflowFailException(
                f"quarantine_path={template!r} of task {task.task_id!r} takes the quarantine location from "
                f"the run's conf ({source}), which whoever triggers the DAG chooses: they could send the rejected "
                "rows anywhere. Set the folder in DAG code (a fixed path or ObjectStoragePath), or leave "
                f"quarantine_path unset to use {DEFAULT_QUARANTINE}; if the people who trigger this DAG may "
                "choose where its rejected rows go, pass allow_quarantine_path_from_conf=True."
            )
    try:
        check_quarantine_arguments(rendered, getattr(task, "quarantine_format", None))
    except ValueError as exc:
        raise AirflowFailException(f"Task {task.task_id!r}: {exc}") from None
    return rendered


def _conf_source(task: Any, template: str, context: Mapping[str, Any]) -> str | None:
    """How the run's conf chose what ``template`` renders to, or ``None`` when it did not."""
    names, reads_conf = _template_inputs(task, template)
    if reads_conf:
        return "it reads dag_run.conf"
    conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
    params = dict(context.get("params") or {})
    defaults = getattr(task, "_dag_code_params", {})
    changed = sorted(
        str(k) for k in (params if names is None else names) if k in conf and params.get(k) != defaults.get(k)
    )
    if not changed:
        return None
    return f"the run's conf set param{'s' if len(changed) > 1 else ''} {', '.join(map(repr, changed))}"


def _template_inputs(task: Any, template: str) -> tuple[set[str] | None, bool]:
    """The params a template reads (``None``: it reads them in a way that names none) and whether it reads the
    run's conf (``dag_run.conf``, or ``dag_run`` handed on whole)."""
    from jinja2 import Environment, TemplateSyntaxError, nodes

    try:
        tree = task.get_template_env().parse(template)
    except (AttributeError, TemplateSyntaxError):
        tree = Environment().parse(template)
    names: set[str] = set()
    dynamic = reads_conf = False
    looked_into: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in ("params", "dag_run"):
            continue
        looked_into.add(id(target))
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if target.name == "dag_run":
            reads_conf = reads_conf or key in (None, "conf")
        elif key is None:
            dynamic = True
        else:
            names.add(str(key))
    for call in tree.find_all(nodes.Call):  # params.get("x"), params.items(), ...
        method = call.node
        if isinstance(method, nodes.Getattr) and getattr(method.node, "name", None) == "params":
            dynamic = True
    for name in tree.find_all(nodes.Name):
        if id(name) not in looked_into and name.name in ("params", "dag_run"):
            dynamic = dynamic or name.name == "params"
            reads_conf = reads_conf or name.name == "dag_run"
    return (None if dynamic else names), reads_conf


def dag_code_params(task: Any) -> dict[str, Any]:
    """The values of the params of ``task`` and its DAG as the DAG's code sets them; call it in ``__init__``.

    Read when the DAG file is parsed, because Airflow writes a run's conf into the same ``Param`` objects when
    it builds the run's context.
    """
    from airflow.sdk.definitions.param import Param

    from airflow_integrity.compat import is_arg_set as param_is_set

    values: dict[str, Any] = {}
    dag = task.get_dag() if hasattr(task, "get_dag") else None
    for params in (getattr(dag, "params", None), getattr(task, "params", None)):
        for name, param in (params or {}).items():
            value = param.value if isinstance(param, Param) else param
            values[str(name)] = copy.deepcopy(value) if param_is_set(value) else None
    return values


class ValidateDataOperator(DataSourceArguments, HandoffPolicyArguments, BaseOperator):
    """Validate data with a Great Expectations suite; fail, warn or quarantine when it does not pass.

    Exactly one source: ``data`` (an upstream task's return value, e.g. ``register.output``: a DataFrame,
    list of records, dict of columns or JSON), ``path`` (CSV, Parquet, JSON, JSON lines; local or object
    storage), ``sql`` / ``table`` with ``conn_id`` (any Airflow SQL connection; evaluated in the database
    unless rows are needed for quarantine), or ``endpoint`` with ``http_conn_id`` (the JSON body's records).

    The full GX result is stored in the integrity store and the validation is recorded in the audit trail
    (``validation.passed`` / ``validation.warned`` / ``validation.failed``). Expectations of severity
    ``warning`` never fail the task.

    Return value (XCom): ``{"summary": {...}}``, where the summary (JSON) holds ``success``, ``status``, GX's
    statistics, each failed expectation with its unexpected count and a few samples, the data's
    ``fingerprint`` and the ``result_id`` of the stored full result. With ``on_failure="quarantine"`` it also
    holds ``"quarantine"`` (counts and file) and ``"data"``: the good rows, which is what downstream tasks
    should consume (``validate.output["data"]``). ``return_data=True`` adds ``"data"`` (all rows) under the
    other policies. ``"data"`` is what came in, unchanged, selected by position (never rebuilt from the frame
    GX checks): the original records of a list of records, the rows of a DataFrame, the values of a dict of
    columns; JSON text of the same form holding each selected record's own text for JSON text, JSON / JSON-lines
    files and endpoints; one record of cell text per row for a CSV file; the driver's values for SQL; the
    stored values for Parquet. A ``Decimal`` that Airflow's XCom would turn into another number fails the task.

    Args:
        suite: Suite reference: a GX ``ExpectationSuite``, a list of expectations (GX objects or dicts), a
            suite dict in GX's JSON format, a path to a suite ``.json`` file, or a suite name with
            ``context_dir``. Checked cheaply when the DAG is parsed.
        data: The data itself (templated; an ``XComArg`` is resolved).
        path, sql, table, endpoint, ...: The source, with its connection and options: the arguments of
            :class:`~airflow_integrity.hooks.data_sources.DataSourceArguments`.
        expectation_parameters: Values of ``{"$PARAMETER": ...}`` arguments in the suite (templated).
        context_dir: GX project root, for suites given by name.
        on_failure: ``fail`` (default), ``warn`` or ``quarantine``.
        quarantine_path: The quarantine folder, local or object storage (a path, URI or ``ObjectStoragePath``),
            fixed in DAG code (templated, but refused when the run's conf chooses it: see
            ``allow_quarantine_path_from_conf``). Default: ``[integrity] quarantine_dir`` (``quarantine`` under
            ``AIRFLOW_HOME`` when not set). Each validation writes a new file there, named after DAG, task, run,
            map index, try and result; an existing file is never overwritten.
        quarantine_format: ``csv`` (default), ``parquet`` (needs pyarrow) or ``jsonl``.
        allow_quarantine_path_from_conf: Accept a ``quarantine_path`` that the run's conf chooses (through
            ``params`` or ``dag_run.conf``): only when whoever may trigger the DAG may decide where its rejected
            rows go.
        max_unexpected_fraction: With ``quarantine``, the task fails when more than this fraction of the rows
            is bad (default 0.1).
        quarantine_warnings: Also quarantine rows rejected only by ``warning`` expectations.
        return_data: Also return the validated rows under ``fail`` / ``warn`` (an SQL source is then fetched
            rather than only checked in the database).
        allow_empty: Accept data without rows.
        samples: What the summary (XCom) shows of failing values: ``values`` (a few, clipped), ``hashed``
            (HMAC-SHA256 fingerprints keyed with the store's secret salt; for personal data) or ``none``.
        business_key: Business key of the audit events (templated), e.g. ``"intake-{{ ds }}"``.
        integrity_conn_id: The integrity store connection (default ``[integrity] conn_id``).
    """

    template_fields: Sequence[str] = (
        "suite",
        "data",
        *SOURCE_TEMPLATE_FIELDS,
        "expectation_parameters",
        "context_dir",
        "quarantine_path",
        "business_key",
    )
    template_fields_renderers = {"sql": "sql", "expectation_parameters": "json", "request_data": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        suite: Any,
        data: Any = None,
        expectation_parameters: Mapping[str, Any] | None = None,
        context_dir: str | None = None,
        on_failure: str = "fail",
        quarantine_path: Any = None,
        quarantine_format: str | None = None,
        allow_quarantine_path_from_conf: bool = False,
        max_unexpected_fraction: float = 0.1,
        quarantine_warnings: bool = False,
        return_data: bool = False,
        allow_empty: bool = False,
        samples: str = "values",
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_policy_arguments(locals())
        check_one_source(
            {"data": data, **self.named_sources()},
            owner=f"ValidateDataOperator {self.task_id!r}",
            error=ValueError,
        )
        if not _templated(suite) and not _templated(context_dir):
            check_suite_reference(suite, context_dir=context_dir)
        self.suite = suite
        self.data = data
        self.expectation_parameters = expectation_parameters
        self.context_dir = context_dir
        self.return_data = return_data
        self.allow_empty = allow_empty
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id
        self._lineage: dict[str, Any] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, record, apply ``on_failure``; return the summary (and the good rows for quarantine)."""
        from airflow_integrity.hooks.integrity import IntegrityCheckHook
        from airflow_integrity.hooks.validation import fail_on_bad_input

        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        location = None
        if self.on_failure == "quarantine":  # before anything runs: a location the run's conf chose is refused
            location = quarantine_location(self, self.quarantine_path, context)
        source = fail_on_bad_input(self.data_source)
        run = fail_on_bad_input(
            lambda: hook.validate_data(
                self.data,
                self.suite,
                source=source,
                label=f"data given to task {self.task_id!r}",
                on_failure=self.on_failure,
                collect_unexpected_rows=self.on_failure == "quarantine",
                keep_rows=self.return_data,  # an SQL source is then fetched, not only checked in the database
                business_key=self.business_key,
                expectation_parameters=self.expectation_parameters,
                context_dir=self.context_dir,
                allow_empty=self.allow_empty,
                samples=self.samples,
            )
        )
        self._lineage = {
            "summary": run.summary,
            "source": source.serialize() if source is not None else None,
            "expectations": [
                {"index": e.index, "type": e.type, "severity": e.severity, "column": ", ".join(e.columns) or None}
                for e in run.outcome.suite.expectations
            ],
        }
        handoff = self.apply_policy(hook, run, location, self.business_key)
        result: dict[str, Any] = {"summary": run.summary}
        if handoff.quarantine is not None:
            result["quarantine"] = handoff.quarantine
            result["data"] = handoff.good
        elif self.return_data and run.outcome.rows is not None:
            result["data"] = run.outcome.rows.hand_on()
        if "data" in result:
            self._check_xcom(result["data"])
        return result

    def _check_xcom(self, rows: Any) -> None:
        """Refuse to hand on a value that Airflow's XCom would change (a ``Decimal`` a float cannot hold)."""
        from airflow_integrity.compat import AirflowFailException
        from airflow_integrity.hooks.validation import xcom_change

        changed = xcom_change(rows)
        if changed is not None:
            raise AirflowFailException(
                f"Task {self.task_id!r} cannot hand its rows on unchanged: {changed} (Airflow's XCom stores a "
                f"Decimal with a fraction as a float). Hand the column on as text, e.g. CAST({changed.column} AS "
                "TEXT) in sql=, or pass return_data=False and let downstream tasks read the source."
            )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the validated dataset with a ``dataQualityAssertions`` facet (``None`` without
        the OpenLineage provider, or before a validation ran)."""
        from airflow_integrity.lineage import dataset_identity, operator_lineage

        if self._lineage is None:
            return None
        namespace, name = dataset_identity(self._lineage["source"], fallback_name=f"{self.dag_id}.{self.task_id}")
        return operator_lineage(self._lineage["summary"], namespace, name, self._lineage["expectations"])

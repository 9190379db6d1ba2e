import { type FormEvent, useState } from "react";

import type { Params } from "../api";
import { Badge, Choice, Column, DetailPanel, Facts, Field, JsonBlock, Mono, Pager, Problem, Table } from "../components";
import { short, when } from "../format";
import { useApi, usePages } from "../hooks";
import type { Json, Validation, ValidationDetail as Detail, ValidationPage } from "../types";
import type { Navigate } from "./Events";

export const Outcome = ({ v }: { v: Validation }) => (
  <span style={{ display: "inline-flex", gap: 4 }}>
    <Badge tone={v.status === "passed" ? "ok" : v.status === "warned" ? "warn" : "bad"}>{v.status}</Badge>
    {v.quarantined ? <Badge tone="warn">quarantined</Badge> : null}
  </span>
);

const columns: Column<Validation>[] = [
  { header: "Validated", cell: (v) => when(v.created_at), sort: (v) => v.created_at },
  { header: "Outcome", cell: (v) => <Outcome v={v} />, sort: (v) => `${v.status}${v.quarantined ? "q" : ""}` },
  { header: "Suite", cell: (v) => v.suite, sort: (v) => v.suite },
  { header: "DAG", cell: (v) => v.dag_id, sort: (v) => v.dag_id },
  { header: "Run", cell: (v) => <Mono>{v.run_id}</Mono>, sort: (v) => v.run_id },
  {
    header: "Task",
    cell: (v) => `${v.task_id ?? ""}${v.map_index !== null && v.map_index >= 0 ? `[${v.map_index}]` : ""}`,
    sort: (v) => v.task_id,
  },
  { header: "Try", cell: (v) => v.try_number, sort: (v) => v.try_number },
  { header: "Rows", cell: (v) => v.rows, sort: (v) => v.rows },
  {
    header: "Failed / evaluated",
    cell: (v) => `${v.unsuccessful_expectations ?? "?"} / ${v.evaluated_expectations ?? "?"}`,
    sort: (v) => v.unsuccessful_expectations,
  },
];

const failureColumns: Column<Json>[] = [
  { header: "Expectation", cell: (f) => <Mono>{String(f.type ?? "")}</Mono>, sort: (f) => String(f.type ?? ""), wrap: true },
  { header: "Column", cell: (f) => String(f.column ?? (f.columns as string[] | undefined)?.join(", ") ?? "") },
  { header: "Severity", cell: (f) => String(f.severity ?? "") },
  { header: "Unexpected", cell: (f) => (f.unexpected_count ?? "") as string, sort: (f) => Number(f.unexpected_count ?? 0) },
  {
    header: "Samples",
    wrap: true,
    cell: (f) =>
      f.samples ? (
        <Mono>
          {JSON.stringify(f.samples)}
          {f.samples_omitted ? ` (+${f.samples_omitted} more)` : ""}
        </Mono>
      ) : (
        <span className="aic-muted">{f.error ? String(f.error) : "not kept (samples setting)"}</span>
      ),
  },
];

/** One validation: each failed expectation with its count and samples, then the full stored GX result. */
export const ValidationDetail = ({ id, onClose }: { id: string; onClose: () => void }) => {
  const result = useApi<Detail>(`validations/${encodeURIComponent(id)}`);
  const [full, setFull] = useState(false);
  return (
    <DetailPanel label="Validation" title={`Validation ${result.data?.suite ?? ""}`} badge={result.data ? <Outcome v={result.data} /> : null} onClose={onClose} loaded={result}>
      {(v) => (
        <>
          <Facts
            items={[
              ["Result id", <Mono>{v.result_id}</Mono>],
              ["Validated", when(v.created_at)],
              ["Task instance", `${v.dag_id ?? ""} / ${v.run_id ?? ""} / ${v.task_id ?? ""} try ${v.try_number ?? "?"}`],
              ["Rows", v.rows],
              ["Expectations", `${v.unsuccessful_expectations ?? 0} failed of ${v.evaluated_expectations ?? 0}`],
              ["Suite fingerprint", <Mono title={v.suite_fingerprint}>{short(v.suite_fingerprint, 24)}</Mono>],
              ["Data fingerprint", <Mono title={v.data_fingerprint ?? ""}>{short(v.data_fingerprint, 24)}</Mono>],
            ]}
          />
          <h3>Failed expectations</h3>
          <Table
            label="Failed expectations"
            columns={failureColumns}
            rows={v.failures}
            rowKey={(f) => `${f.index ?? ""}${f.type ?? ""}${f.column ?? ""}`}
            empty="Every expectation passed."
          />
          <button className="aic-btn" type="button" onClick={() => setFull(!full)} style={{ marginTop: 8 }}>
            {full ? "Hide" : "Show"} the full Great Expectations result
          </button>
          {full ? <JsonBlock value={v.full_result} /> : null}
        </>
      )}
    </DetailPanel>
  );
};

type ListProps = { filters: Params; selected: string | null; onOpen: (id: string) => void };

export const ValidationList = ({ filters, selected, onOpen }: ListProps) => {
  const page = usePages<ValidationPage>("validations", filters);
  const rows = page.data?.validations ?? [];
  return (
    <>
      <Problem error={page.error} />
      <Table
        label="Validations"
        columns={columns}
        rows={rows}
        rowKey={(v) => v.result_id}
        selected={selected}
        onOpen={(v) => onOpen(v.result_id)}
        empty={page.loading ? "Loading…" : "No validations match."}
      />
      <Pager pageNumber={page.pageNumber} count={rows.length} newer={page.newer} older={page.older} />
    </>
  );
};

const NAMES = ["dag_id", "run_id", "task_id"] as const;

/** Every stored validation the user may read, by DAG, run, task and outcome. */
export const Validations = ({ search, navigate }: { search: URLSearchParams; navigate: Navigate }) => {
  const [draft, setDraft] = useState<Record<string, string>>(() =>
    Object.fromEntries([...NAMES, "status"].map((name) => [name, search.get(name) ?? ""])),
  );
  const applied: Params = Object.fromEntries([...NAMES, "status"].map((name) => [name, search.get(name)]));
  const selected = search.get("result");
  const apply = (submit: FormEvent) => {
    submit.preventDefault();
    navigate({ ...draft, result: undefined });
  };
  return (
    <>
      <form className="aic-filters" onSubmit={apply} aria-label="Filter validations">
        {NAMES.map((name) => (
          <Field
            key={name}
            label={name.replace("_id", "")}
            value={draft[name] ?? ""}
            onChange={(value) => setDraft({ ...draft, [name]: value })}
          />
        ))}
        <Choice
          label="outcome"
          value={draft.status ?? ""}
          options={["passed", "warned", "failed"]}
          onChange={(value) => setDraft({ ...draft, status: value })}
        />
        <button className="aic-btn aic-btn-primary" type="submit">
          Filter
        </button>
      </form>
      <div className={selected ? "aic-split" : undefined}>
        <div>
          <ValidationList filters={applied} selected={selected} onOpen={(id) => navigate({ result: id })} />
        </div>
        {selected ? <ValidationDetail key={selected} id={selected} onClose={() => navigate({ result: undefined })} /> : null}
      </div>
    </>
  );
};

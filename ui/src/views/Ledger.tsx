import { type FormEvent, useEffect, useState } from "react";

import { postJson, segment, type Params } from "../api";
import { Badge, Choice, Column, DetailPanel, Facts, Field, Mono, Pager, Problem, Table } from "../components";
import { bytes, short, when } from "../format";
import { useApi, usePages } from "../hooks";
import type { HistoryItem, Json, LedgerKey, LedgerKeyDetail, LedgerPage, ReleaseResponse } from "../types";
import type { Navigate } from "./Events";

const STATES = ["in_progress", "completed", "failed", "released"];

const stateTone = (state: string) =>
  state === "completed" ? "ok" : state === "failed" ? "bad" : state === "released" ? "warn" : "info";

export const State = ({ state }: { state: string }) => <Badge tone={stateTone(state)}>{state}</Badge>;

/** Who holds (or last held) a key: DAG, run, task, try, host. */
export const holderText = (holder: Json | null | undefined): string => {
  if (!holder) return "";
  const task = holder.task_id
    ? `${holder.task_id}${typeof holder.map_index === "number" && holder.map_index >= 0 ? `[${holder.map_index}]` : ""}`
    : "";
  const parts = [holder.dag_id, holder.run_id, task, holder.try_number ? `try ${holder.try_number}` : "", holder.host]
    .filter((part) => part !== undefined && part !== null && part !== "")
    .map(String);
  return parts.length ? parts.join(" · ") : JSON.stringify(holder);
};

const columns: Column<LedgerKey>[] = [
  { header: "Key", cell: (k) => <Mono>{k.key}</Mono>, sort: (k) => k.key },
  { header: "Namespace", cell: (k) => k.namespace, sort: (k) => k.namespace },
  { header: "State", cell: (k) => <State state={k.state} />, sort: (k) => k.state },
  { header: "Holder", cell: (k) => holderText(k.holder), sort: (k) => holderText(k.holder) },
  { header: "Lease expires", cell: (k) => when(k.lease_expires_at), sort: (k) => k.lease_expires_at },
  { header: "Fencing", cell: (k) => k.fencing_token, sort: (k) => k.fencing_token },
  { header: "Fingerprint", cell: (k) => <Mono title={k.fingerprint}>{short(k.fingerprint)}</Mono> },
  {
    header: "Result",
    cell: (k) => (k.result_sha256 ? <Mono title={k.result_sha256}>{`${bytes(k.result_size)} · ${short(k.result_sha256, 8)}`}</Mono> : ""),
    sort: (k) => k.result_size,
  },
  { header: "Updated", cell: (k) => when(k.updated_at), sort: (k) => k.updated_at },
];

const historyColumns: Column<HistoryItem>[] = [
  { header: "Seq", cell: (h) => h.seq, sort: (h) => h.seq },
  { header: "At", cell: (h) => when(h.at), sort: (h) => h.at },
  { header: "Event", cell: (h) => <Badge tone={stateTone(h.state ?? "")}>{h.event}</Badge> },
  { header: "State", cell: (h) => `${h.previous_state ?? "—"} → ${h.state ?? "—"}` },
  { header: "Fencing", cell: (h) => h.fencing_token },
  { header: "Holder", cell: (h) => holderText(h.holder) },
  { header: "Person / reason", cell: (h) => [h.person, h.reason, h.error].filter(Boolean).join(" — "), wrap: true },
];

const Release = ({ entry, onDone }: { entry: LedgerKey; onDone: (released: ReleaseResponse) => void }) => {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Error>();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setProblem(undefined);
    postJson<ReleaseResponse>("ledger/release", { namespace: entry.namespace, key: entry.key, reason: reason.trim() }).then(
      (response) => {
        setBusy(false);
        onDone(response);
      },
      (error: Error) => {
        setProblem(error);
        setBusy(false);
      },
    );
  };
  return (
    <form onSubmit={submit} aria-label="Release this key">
      <h3>Release</h3>
      <p className="aic-muted" style={{ margin: "0 0 6px" }}>
        The next claim of this key runs the effect again. The release is recorded in the key's history and in the
        trail with your name and this reason.
      </p>
      <label className="aic-field">
        Reason (required)
        <textarea value={reason} onChange={(change) => setReason(change.target.value)} maxLength={2000} />
      </label>
      <div className="aic-head" style={{ marginTop: 6 }}>
        <button className="aic-btn aic-btn-primary" type="submit" disabled={busy || !reason.trim()}>
          {busy ? "Releasing…" : "Release key"}
        </button>
      </div>
      <Problem error={problem} />
    </form>
  );
};

/** One key: where it stands, who holds it, its whole history, and its release. */
type DetailProps = { namespace: string; name: string; onClose: () => void; onChanged?: () => void };

export const KeyDetail = ({ namespace, name, onClose, onChanged }: DetailProps) => {
  const entry = useApi<LedgerKeyDetail>(`ledger/namespaces/${segment(namespace)}/keys/${segment(name)}`);
  const [released, setReleased] = useState<ReleaseResponse>();
  return (
    <DetailPanel label={`Key ${name}`} title={<Mono>{name}</Mono>} badge={entry.data ? <State state={entry.data.state} /> : null} onClose={onClose} loaded={entry}>
      {(k) => (
        <>
          <Facts
            items={[
              ["Namespace", k.namespace],
              ["DAG", k.dag_id],
              ["Holder", holderText(k.holder)],
              ["Origin", holderText(k.origin)],
              ["Lease expires", k.lease_expires_at ? `${when(k.lease_expires_at)} (${k.lease_seconds} s leases)` : null],
              ["Fencing token", k.fencing_token],
              ["Attempts", k.attempts],
              ["Fingerprint", <Mono>{k.fingerprint}</Mono>],
              ["Result", k.result_sha256 ? <Mono>{`${bytes(k.result_size)} · sha256 ${k.result_sha256}`}</Mono> : null],
              ["Error", k.error],
              ["Last change", `${k.last_event}${k.last_person ? ` by ${k.last_person}` : ""}${k.last_reason ? `: ${k.last_reason}` : ""}`],
              ["Created / completed", `${when(k.created_at)} / ${when(k.completed_at) || "—"}`],
            ]}
          />
          <h3>History</h3>
          <Table label="Key history" columns={historyColumns} rows={k.history} rowKey={(h) => String(h.seq)} empty="No history." />
          {released ? (
            <div className="aic-note aic-tone-ok" role="status">
              Released by {released.released_by} at {when(released.released_at)} (was {released.previous_state}):{" "}
              {released.reason}
            </div>
          ) : null}
          {k.state !== "released" ? (
            <Release
              entry={k}
              onDone={(response) => {
                setReleased(response);
                entry.reload();
                onChanged?.();
              }}
            />
          ) : null}
        </>
      )}
    </DetailPanel>
  );
};

type ListProps = { filters: Params; selected: string | null; onOpen: (k: LedgerKey) => void; round?: number };

/** A page of keys; read again whenever ``round`` changes (after a release). */
export const KeyList = ({ filters, selected, onOpen, round = 0 }: ListProps) => {
  const page = usePages<LedgerPage>("ledger/keys", filters);
  const { reload } = page;
  useEffect(() => {
    if (round > 0) reload();
  }, [round, reload]);
  const rows = page.data?.keys ?? [];
  return (
    <>
      <Problem error={page.error} />
      <Table
        label="Idempotency keys"
        columns={columns}
        rows={rows}
        rowKey={(k) => `${k.namespace}\u0000${k.key}`}
        selected={selected}
        onOpen={onOpen}
        empty={page.loading ? "Loading…" : "No keys match."}
      />
      <Pager pageNumber={page.pageNumber} count={rows.length} newer={page.newer} older={page.older} />
    </>
  );
};

/** The idempotency ledger: keys by namespace and state, and a person's release of one. */
export const Ledger = ({ search, navigate }: { search: URLSearchParams; navigate: Navigate }) => {
  const namespaces = useApi<string[]>("ledger/namespaces");
  const [dag, setDag] = useState(search.get("dag_id") ?? "");
  const filters: Params = { namespace: search.get("namespace"), state: search.get("state"), dag_id: search.get("dag_id") };
  const open = search.get("key");
  const [round, setRound] = useState(0);
  const openNamespace = search.get("key_namespace") ?? "default";
  return (
    <>
      <form
        className="aic-filters"
        aria-label="Filter keys"
        onSubmit={(submit) => {
          submit.preventDefault();
          navigate({ dag_id: dag });
        }}
      >
        <Choice
          label="namespace"
          value={search.get("namespace") ?? ""}
          options={namespaces.data ?? []}
          onChange={(value) => navigate({ namespace: value })}
        />
        <Choice label="state" value={search.get("state") ?? ""} options={STATES} onChange={(value) => navigate({ state: value })} />
        <Field label="DAG" value={dag} onChange={setDag} />
        <button className="aic-btn aic-btn-primary" type="submit">
          Filter
        </button>
      </form>
      <Problem error={namespaces.error} />
      <div className={open ? "aic-split" : undefined}>
        <div>
          <KeyList
            round={round}
            filters={filters}
            selected={open ? `${openNamespace}\u0000${open}` : null}
            onOpen={(k) => navigate({ key: k.key, key_namespace: k.namespace })}
          />
        </div>
        {open ? (
          <KeyDetail
            key={`${openNamespace}/${open}`}
            namespace={openNamespace}
            name={open}
            onClose={() => navigate({ key: undefined, key_namespace: undefined })}
            onChanged={() => setRound(round + 1)}
          />
        ) : null}
      </div>
    </>
  );
};

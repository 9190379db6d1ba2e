import { type FormEvent, useState } from "react";

import type { Params } from "../api";
import { Column, DetailPanel, EventType, Facts, Field, JsonBlock, Mono, Pager, Problem, Table, Yes } from "../components";
import { when } from "../format";
import { useApi, usePages } from "../hooks";
import type { AuditEvent, EventDetail as Detail, EventPage } from "../types";

export type Navigate = (changes: Params, replaceAll?: boolean) => void;

export const FILTERS = ["business_key", "dag_id", "run_id", "task_id", "event_type", "actor"] as const;

const columns = (openStory?: (key: string) => void): Column<AuditEvent>[] => [
  { header: "Seq", cell: (e) => e.seq, sort: (e) => e.seq },
  { header: "Recorded", cell: (e) => <span title={e.recorded_at ?? ""}>{when(e.recorded_at)}</span>, sort: (e) => e.recorded_at },
  { header: "Event", cell: (e) => <EventType type={e.event_type} />, sort: (e) => e.event_type },
  { header: "DAG", cell: (e) => e.dag_id, sort: (e) => e.dag_id },
  { header: "Run", cell: (e) => <Mono>{e.run_id}</Mono>, sort: (e) => e.run_id },
  { header: "Task", cell: (e) => e.task_id, sort: (e) => e.task_id },
  { header: "Try", cell: (e) => e.try_number, sort: (e) => e.try_number },
  {
    header: "Business key",
    sort: (e) => e.business_key,
    cell: (e) =>
      e.business_key && openStory ? (
        <button
          type="button"
          className="aic-link"
          title="Everything that happened to this key"
          onClick={(click) => {
            click.stopPropagation();
            openStory(e.business_key!);
          }}
        >
          {e.business_key}
        </button>
      ) : (
        e.business_key
      ),
  },
  { header: "Actor", cell: (e) => e.actor, sort: (e) => e.actor },
];

type ListProps = {
  filters: Params;
  selected: number | null;
  onOpen: (seq: number) => void;
  openStory?: (key: string) => void;
  /** Columns not worth showing where every row has the same value (a run's tab: DAG and run). */
  hide?: string[];
};

/** A page of the trail, newest first, with the filters given. */
export const EventList = ({ filters, selected, onOpen, openStory, hide = [] }: ListProps) => {
  const page = usePages<EventPage>("events", filters);
  const events = page.data?.events ?? [];
  return (
    <>
      <Problem error={page.error} />
      <Table
        label="Audit events"
        columns={columns(openStory).filter((column) => !hide.includes(column.header))}
        rows={events}
        rowKey={(e) => String(e.seq)}
        selected={selected === null ? null : String(selected)}
        onOpen={(e) => onOpen(e.seq)}
        empty={page.loading ? "Loading…" : "No events match."}
      />
      <Pager
        pageNumber={page.pageNumber}
        count={events.length}
        newer={page.newer}
        older={page.older}
        extra={
          <>
            {page.data ? <span>· chain head seq {page.data.head_seq}</span> : null}
            <button className="aic-btn" type="button" onClick={page.first}>
              Newest
            </button>
            <button className="aic-btn" type="button" onClick={page.reload}>
              Refresh
            </button>
          </>
        }
      />
    </>
  );
};

/** One event with what it takes to check it by hand: body, hashes, link and checkpoint cover. */
export const EventDetail = ({ seq, onClose }: { seq: number; onClose: () => void }) => {
  const event = useApi<Detail>(`events/${seq}`);
  return (
    <DetailPanel label={`Event ${seq}`} title={`Event ${seq}`} badge={event.data ? <EventType type={event.data.event_type} /> : null} onClose={onClose} loaded={event}>
      {(e) => (
        <>
          <Facts
            items={[
              ["Chained", <Yes value={e.chained} yes="in the hash chain" no="not chained" />],
              ["Hash", <Yes value={e.hash_matches} yes="matches its body" no="does NOT match its body" />],
              ["Link", <Yes value={e.links_to_previous} yes={`links to seq ${seq - 1}`} no="broken link" />],
              ["Checkpoint", <Yes value={e.covered_by_checkpoint} yes="covered by a signed checkpoint" no="after the last checkpoint" />],
              ["Recorded", when(e.recorded_at)],
              ["Actor", e.actor],
              ["DAG / run", e.dag_id ? `${e.dag_id} / ${e.run_id ?? ""}` : null],
              ["Task / try", e.task_id ? `${e.task_id}${e.map_index !== null && e.map_index >= 0 ? `[${e.map_index}]` : ""} / ${e.try_number ?? ""}` : null],
              ["Business key", e.business_key],
              ["DAG version", e.dag_version],
              ["Hash value", <Mono>{e.hash}</Mono>],
              ["Previous hash", <Mono>{e.prev_hash}</Mono>],
            ]}
          />
          <h3>Canonical body (what the hash covers)</h3>
          <JsonBlock value={e.body} />
        </>
      )}
    </DetailPanel>
  );
};

type TrailProps = { search: URLSearchParams; navigate: Navigate };

const toIso = (local: string): string | undefined => {
  if (!local) return undefined;
  const at = new Date(local);
  return Number.isNaN(at.getTime()) ? undefined : at.toISOString();
};

const toLocal = (iso: string | null): string => {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};

/** The trail: every event the user may read, newest first, with Airflow's Audit Log filters and more. */
export const Trail = ({ search, navigate }: TrailProps) => {
  const applied: Params = {};
  for (const name of [...FILTERS, "since", "until"]) applied[name] = search.get(name) ?? undefined;
  const [draft, setDraft] = useState<Record<string, string>>(() =>
    Object.fromEntries(FILTERS.map((name) => [name, search.get(name) ?? ""])),
  );
  const [since, setSince] = useState(toLocal(search.get("since")));
  const [until, setUntil] = useState(toLocal(search.get("until")));
  const seq = Number(search.get("seq")) || null;
  const apply = (submit: FormEvent) => {
    submit.preventDefault();
    navigate({ ...draft, since: toIso(since), until: toIso(until), seq: undefined });
  };
  const clear = () => {
    setDraft(Object.fromEntries(FILTERS.map((name) => [name, ""])));
    setSince("");
    setUntil("");
    navigate({ view: "trail" }, true);
  };
  return (
    <>
      <form className="aic-filters" onSubmit={apply} aria-label="Filter events">
        <Field label="From" type="datetime-local" value={since} onChange={setSince} width={190} />
        <Field label="To" type="datetime-local" value={until} onChange={setUntil} width={190} />
        {FILTERS.map((name) => (
          <Field
            key={name}
            label={name.replace("_id", "").replace("_", " ")}
            value={draft[name] ?? ""}
            onChange={(value) => setDraft({ ...draft, [name]: value })}
          />
        ))}
        <button className="aic-btn aic-btn-primary" type="submit">
          Filter
        </button>
        <button className="aic-btn" type="button" onClick={clear}>
          Clear
        </button>
      </form>
      <div className={seq ? "aic-split" : undefined}>
        <div>
          <EventList
            filters={applied}
            selected={seq}
            onOpen={(open) => navigate({ seq: open })}
            openStory={(key) => navigate({ view: "story", key }, true)}
          />
        </div>
        {seq ? <EventDetail key={seq} seq={seq} onClose={() => navigate({ seq: undefined })} /> : null}
      </div>
    </>
  );
};

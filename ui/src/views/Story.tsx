import { type FormEvent, useEffect, useRef, useState } from "react";

import { apiUrl, getJson, segment } from "../api";
import { EventType, Problem } from "../components";
import { gist, tone, when } from "../format";
import type { AuditEvent, EventPage } from "../types";
import type { Navigate } from "./Events";

/** Every page of a key's story, oldest first, read as the reviewer asks for more. */
const useStory = (key: string) => {
  const [state, setState] = useState<{ key: string; events: AuditEvent[]; next: string | null; error?: Error }>({
    key,
    events: [],
    next: null,
  });
  const [loading, setLoading] = useState(false);
  const current = useRef(key);
  current.current = key;
  const load = (cursor: string | null, previous: AuditEvent[]) => {
    setLoading(true);
    getJson<EventPage>(`stories/${segment(key)}`, { cursor, limit: 200 }).then(
      (page) => {
        if (current.current !== key) return; // another key was opened meanwhile
        setState({ key, events: [...previous, ...page.events], next: page.next_cursor });
        setLoading(false);
      },
      (error: Error) => {
        if (current.current !== key) return;
        setState({ key, events: previous, next: null, error });
        setLoading(false);
      },
    );
  };
  useEffect(() => {
    setState({ key, events: [], next: null });
    if (key) load(null, []);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  const mine = state.key === key ? state : { events: [], next: null, error: undefined };
  return {
    events: mine.events,
    error: mine.error,
    loading,
    more: mine.next ? () => load(mine.next, mine.events) : undefined,
  };
};

/** "Everything that happened to claim-42": a timeline across DAGs and runs, downloadable as the CLI exports it. */
export const Story = ({ search, navigate }: { search: URLSearchParams; navigate: Navigate }) => {
  const key = search.get("key") ?? "";
  const [draft, setDraft] = useState(key);
  useEffect(() => setDraft(key), [key]);
  const story = useStory(key);
  const open = (submit: FormEvent) => {
    submit.preventDefault();
    navigate({ view: "story", key: draft.trim() }, true);
  };
  return (
    <>
      <form className="aic-filters" onSubmit={open} aria-label="Open a business key's story">
        <label className="aic-field">
          Business key
          <input value={draft} onChange={(change) => setDraft(change.target.value)} style={{ width: 260 }} />
        </label>
        <button className="aic-btn aic-btn-primary" type="submit" disabled={!draft.trim()}>
          Open story
        </button>
        {key ? (
          <>
            <a className="aic-btn" href={apiUrl(`stories/${segment(key)}/export`, { format: "csv" })} download>
              Download CSV
            </a>
            <a className="aic-btn" href={apiUrl(`stories/${segment(key)}/export`, { format: "jsonl" })} download>
              Download JSONL
            </a>
          </>
        ) : null}
      </form>
      {key ? (
        <p className="aic-muted" style={{ margin: 0 }}>
          The events recorded with <b>{key}</b> and the task states, approvals and outcomes of the runs that recorded
          it, oldest first. The downloads are the bytes <code>airflow integrity audit export --business-key</code>{" "}
          writes, starting with the chain's verification.
        </p>
      ) : (
        <p className="aic-muted">Enter a business key (a claim, a patient, an order) to see everything that happened to it.</p>
      )}
      <Problem error={story.error} />
      {key && !story.loading && story.events.length === 0 && !story.error ? (
        <p className="aic-muted">No event you may read carries this key.</p>
      ) : null}
      <ol className="aic-timeline" aria-label={`Story of ${key}`}>
        {story.events.map((event) => (
          <li key={event.seq} data-tone={tone(event.event_type)}>
            <div className="aic-head" style={{ gap: 8 }}>
              <span className="aic-muted" title={event.recorded_at ?? ""}>
                {when(event.recorded_at)}
              </span>
              <EventType type={event.event_type} />
              <span>
                {event.dag_id ?? "outside any DAG"}
                {event.task_id ? ` / ${event.task_id}` : ""}
                {event.try_number ? <span className="aic-muted"> try {event.try_number}</span> : null}
              </span>
              <button
                type="button"
                className="aic-link"
                onClick={() => navigate({ view: "trail", seq: event.seq, business_key: key }, true)}
              >
                seq {event.seq}
              </button>
            </div>
            {gist(event) ? <div>{gist(event)}</div> : null}
            <div className="aic-muted">
              {event.run_id ? <>run <span className="aic-mono">{event.run_id}</span></> : null}
              {event.run_id && event.actor ? " · " : null}
              {event.actor ? `by ${event.actor}` : null}
            </div>
          </li>
        ))}
      </ol>
      {story.more ? (
        <button className="aic-btn" type="button" onClick={story.more} disabled={story.loading}>
          Later events
        </button>
      ) : null}
    </>
  );
};

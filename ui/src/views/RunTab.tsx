import { useState } from "react";

import type { Params } from "../api";
import { EventDetail, EventList } from "./Events";
import { KeyDetail, KeyList } from "./Ledger";
import { ValidationDetail, ValidationList } from "./Validations";

export type RunProps = { dagId: string; runId: string; taskId?: string; mapIndex?: string };

type Section = "events" | "validations" | "keys";

/**
 * The tab on Airflow's DAG-run and task-instance pages: that run's (or task's) events, validations and keys,
 * so that a reviewer reaches them from the grid without leaving Airflow.
 */
export const RunTab = ({ dagId, runId, taskId, mapIndex }: RunProps) => {
  const [section, setSection] = useState<Section>("events");
  const [open, setOpen] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  const index = mapIndex !== undefined && mapIndex !== "" && mapIndex !== "-1" ? Number(mapIndex) : undefined;
  const scope: Params = { dag_id: dagId, run_id: runId, task_id: taskId };
  const show = (next: Section) => {
    setSection(next);
    setOpen(null);
  };
  const sections: [Section, string][] = [
    ["events", "Audit events"],
    ["validations", "Validations"],
    ["keys", "Idempotency keys"],
  ];
  return (
    <>
      <div className="aic-tabs" role="tablist" aria-label="Integrity of this run">
        {sections.map(([name, label]) => (
          <button key={name} type="button" role="tab" className="aic-tab" aria-selected={section === name} onClick={() => show(name)}>
            {label}
          </button>
        ))}
      </div>
      <div className={open ? "aic-split" : undefined}>
        <div>
          {section === "events" ? (
            <EventList
              filters={{ ...scope, map_index: index }}
              hide={["DAG", "Run"]}
              selected={open ? Number(open) : null}
              onOpen={(seq) => setOpen(String(seq))}
            />
          ) : null}
          {section === "validations" ? (
            <ValidationList filters={{ ...scope, map_index: index }} selected={open} onOpen={setOpen} />
          ) : null}
          {section === "keys" ? (
            <KeyList
              round={round}
              filters={{ dag_id: dagId, run_id: runId }}
              selected={open}
              onOpen={(k) => setOpen(`${k.namespace}\u0000${k.key}`)}
            />
          ) : null}
        </div>
        {open && section === "events" ? <EventDetail key={open} seq={Number(open)} onClose={() => setOpen(null)} /> : null}
        {open && section === "validations" ? <ValidationDetail key={open} id={open} onClose={() => setOpen(null)} /> : null}
        {open && section === "keys" ? (
          <KeyDetail
            onChanged={() => setRound(round + 1)}
            key={open}
            namespace={open.split("\u0000")[0]!}
            name={open.split("\u0000").slice(1).join("\u0000")}
            onClose={() => setOpen(null)}
          />
        ) : null}
      </div>
    </>
  );
};

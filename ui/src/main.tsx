// The Integrity console, loaded by the Airflow UI through the plugin's react_apps (Airflow 3.1+).
//
// The UI imports this module, then renders the function component it finds on globalThis (under the app's
// name, else ``AirflowPlugin``) with the route's dagId, runId, taskId and mapIndex. One component serves
// every destination: the navigation page (no run), the DAG-run tab and the task-instance tab.
import { useEffect } from "react";

import { useUrlState } from "./hooks";
import { installStyles } from "./styles";
import { FILTERS, Trail } from "./views/Events";
import { Ledger } from "./views/Ledger";
import { RunTab } from "./views/RunTab";
import { Story } from "./views/Story";
import { Validations } from "./views/Validations";
import { Verification } from "./views/Verification";

type Props = { dagId?: string; runId?: string; taskId?: string; mapIndex?: string };

const VIEWS = [
  ["trail", "Trail"],
  ["story", "Business-key story"],
  ["verification", "Verification"],
  ["validations", "Validations"],
  ["ledger", "Ledger"],
] as const;

/** The trail's filters as the URL holds them: its form starts over when they change (a story's link, Clear). */
const filterKey = (search: URLSearchParams): string =>
  [...FILTERS, "since", "until"].map((name) => search.get(name) ?? "").join("\u0000");

const Console = () => {
  const [search, navigate] = useUrlState();
  const view = search.get("view") ?? "trail";
  return (
    <>
      <div className="aic-head">
        <h2>Integrity</h2>
        <span className="aic-muted">the tamper-evident trail, validations and idempotency ledger</span>
      </div>
      <div className="aic-tabs" role="tablist" aria-label="Integrity views">
        {VIEWS.map(([name, label]) => (
          <button
            key={name}
            type="button"
            role="tab"
            className="aic-tab"
            aria-selected={view === name}
            onClick={() => navigate({ view: name }, true)}
          >
            {label}
          </button>
        ))}
      </div>
      {view === "trail" ? <Trail key={filterKey(search)} search={search} navigate={navigate} /> : null}
      {view === "story" ? <Story search={search} navigate={navigate} /> : null}
      {view === "verification" ? <Verification /> : null}
      {view === "validations" ? <Validations search={search} navigate={navigate} /> : null}
      {view === "ledger" ? <Ledger search={search} navigate={navigate} /> : null}
    </>
  );
};

const IntegrityConsole = ({ dagId, runId, taskId, mapIndex }: Props) => {
  useEffect(installStyles, []);
  installStyles();
  return (
    <div className="aic" data-integrity-console="">
      {dagId && runId ? (
        // Airflow reuses the tab's element for another run or task: start afresh for each.
        <RunTab key={[dagId, runId, taskId, mapIndex].join("\u0000")} dagId={dagId} runId={runId} taskId={taskId} mapIndex={mapIndex} />
      ) : (
        <Console />
      )}
    </div>
  );
};

// The UI's loader looks for the component under the app's name first (all entries are named "Integrity", see
// airflow_integrity/plugin/console.py), then as AirflowPlugin, which other plugins' bundles may overwrite.
(globalThis as Record<string, unknown>).Integrity = IntegrityConsole;
(globalThis as Record<string, unknown>).AirflowPlugin = IntegrityConsole;

import { useState } from "react";

import { postJson } from "../api";
import { Column, Facts, Loading, Mono, Pager, Problem, Table, Yes } from "../components";
import { short, when } from "../format";
import { useApi, usePages } from "../hooks";
import type { Checkpoint, CheckpointPage, VerificationRun, VerificationStatus } from "../types";

const checkpointColumns: Column<Checkpoint>[] = [
  { header: "Seq", cell: (c) => c.seq, sort: (c) => c.seq },
  { header: "Signed", cell: (c) => when(c.created_at), sort: (c) => c.created_at },
  { header: "Head hash", cell: (c) => <Mono title={c.head_hash}>{short(c.head_hash, 16)}</Mono> },
  { header: "Key", cell: (c) => `${c.key_id} (${c.algorithm})`, sort: (c) => c.key_id },
  {
    header: "Signature",
    cell: (c) => <Yes value={c.signature_valid} yes="verifies" no="does NOT verify" />,
    sort: (c) => String(c.signature_valid),
  },
];

const Outcome = ({ run }: { run: VerificationRun }) => (
  <div className={`aic-note aic-tone-${run.ok ? "ok" : "bad"}`} role="status">
    <b>{run.ok ? "The chain verifies." : `The chain is broken at seq ${run.first_bad_seq}.`}</b> {run.summary}
    {!run.ok && run.reason ? (
      <div>
        Reason: <b>{run.reason}</b>
        {run.detail ? ` — ${run.detail}` : ""}
      </div>
    ) : null}
    {run.warnings.map((warning) => (
      <div key={warning}>{warning}</div>
    ))}
  </div>
);

/** The chain at a glance, a button that verifies it now, and the signed checkpoints. */
export const Verification = () => {
  const status = useApi<VerificationStatus>("verification");
  const checkpoints = usePages<CheckpointPage>("checkpoints", { limit: 20 });
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<VerificationRun>();
  const [problem, setProblem] = useState<Error>();
  const verify = () => {
    setRunning(true);
    setProblem(undefined);
    postJson<VerificationRun>("verification").then(
      (run) => {
        setResult(run);
        setRunning(false);
        status.reload();
      },
      (error: Error) => {
        setProblem(error);
        setRunning(false);
      },
    );
  };
  const s = status.data;
  const last = s?.last_verification;
  const checkpoint = s?.last_checkpoint;
  return (
    <>
      <Problem error={status.error} />
      <Loading loading={status.loading && !s} />
      {s ? (
        <div className="aic-cards">
          <div className="aic-card">
            <div className="aic-card-label">Chain head</div>
            <div className="aic-card-value">seq {s.head_seq}</div>
            <div className="aic-muted">{s.pending} event(s) waiting to be chained</div>
          </div>
          <div className="aic-card">
            <div className="aic-card-label">Last verification</div>
            {last ? (
              <>
                <div className="aic-card-value">
                  <Yes value={last.ok} yes={`verified up to seq ${last.head_seq}`} no={`broken at seq ${last.first_bad_seq}`} />
                </div>
                <div className="aic-muted">
                  {when(last.verified_at)} {last.verified_by ? `by ${last.verified_by}` : ""}
                </div>
              </>
            ) : (
              <div className="aic-muted">never verified from the console</div>
            )}
          </div>
          <div className="aic-card">
            <div className="aic-card-label">Last signed checkpoint</div>
            {checkpoint ? (
              <>
                <div className="aic-card-value">seq {checkpoint.seq}</div>
                <div>
                  <Yes
                    value={checkpoint.signature_valid}
                    yes={`signature verifies with ${checkpoint.key_id}`}
                    no="signature does NOT verify with the configured key"
                  />
                </div>
                <div className="aic-muted">{when(checkpoint.created_at)}</div>
              </>
            ) : (
              <div className="aic-muted">no checkpoint yet</div>
            )}
          </div>
          <div className="aic-card">
            <div className="aic-card-label">Checkpoint key</div>
            <div className="aic-card-value">{s.checkpoint_key ?? "none"}</div>
            {s.checkpoint_key_error ? <div className="aic-tone-bad">{s.checkpoint_key_error}</div> : null}
          </div>
        </div>
      ) : null}
      <div className="aic-head">
        <button className="aic-btn aic-btn-primary" type="button" onClick={verify} disabled={running}>
          {running ? "Verifying…" : "Verify the chain now"}
        </button>
        <span className="aic-muted">Re-computes every hash and checks every signed checkpoint; recorded in the trail with your name.</span>
      </div>
      <Problem error={problem} />
      {result ? <Outcome run={result} /> : null}
      {last && !result ? (
        <Facts
          items={[
            ["Checked", `${last.count} events from seq ${last.verified_from}, ${last.checkpoints} checkpoint(s)`],
            ["Head hash", <Mono>{last.head_hash}</Mono>],
            ["Summary", last.summary],
          ]}
        />
      ) : null}
      <h3>Signed checkpoints</h3>
      <Problem error={checkpoints.error} />
      <Table
        label="Checkpoints"
        columns={checkpointColumns}
        rows={checkpoints.data?.checkpoints ?? []}
        rowKey={(c) => String(c.id)}
        empty={checkpoints.loading ? "Loading…" : "No checkpoint has been signed."}
      />
      <Pager
        pageNumber={checkpoints.pageNumber}
        count={checkpoints.data?.checkpoints.length ?? 0}
        newer={checkpoints.newer}
        older={checkpoints.older}
      />
    </>
  );
};

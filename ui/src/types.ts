// The JSON shapes of the integrity API (airflow_integrity/plugin/api/models.py), as far as the console reads them.

export type Json = Record<string, unknown>;

export type AuditEvent = {
  seq: number;
  event_id: string | null;
  event_type: string | null;
  recorded_at: string | null;
  actor: string | null;
  business_key: string | null;
  dag_id: string | null;
  dag_version: string | null;
  bundle_version: string | null;
  run_id: string | null;
  task_id: string | null;
  map_index: number | null;
  try_number: number | null;
  details: Json;
  prev_hash: string | null;
  hash: string | null;
  readable: boolean;
};

export type EventDetail = AuditEvent & {
  body: string;
  chained: boolean;
  hash_matches: boolean;
  links_to_previous: boolean | null;
  covered_by_checkpoint: boolean;
};

export type EventPage = { events: AuditEvent[]; next_cursor: string | null; head_seq: number };

export type VerificationRun = {
  ok: boolean;
  count: number;
  head_seq: number;
  head_hash: string;
  first_bad_seq: number | null;
  reason: string | null;
  detail: string | null;
  verified_from: number;
  checkpoints: number;
  signatures_checked: boolean;
  pending: number;
  warnings: string[];
  summary: string;
  verified_at?: string | null;
  verified_by?: string | null;
};

export type Checkpoint = {
  id: number;
  seq: number;
  head_hash: string;
  created_at: string;
  key_id: string;
  algorithm: string;
  signature_valid: boolean | null;
};

export type CheckpointPage = { checkpoints: Checkpoint[]; next_cursor: string | null };

export type VerificationStatus = {
  head_seq: number;
  pending: number;
  last_verification: VerificationRun | null;
  last_checkpoint: Checkpoint | null;
  checkpoint_key: string | null;
  checkpoint_key_error?: string | null;
};

export type Validation = {
  result_id: string;
  created_at: string;
  status: "passed" | "warned" | "failed";
  quarantined: boolean;
  success: boolean;
  suite: string;
  suite_fingerprint: string;
  data_fingerprint: string | null;
  rows: number | null;
  evaluated_expectations: number | null;
  unsuccessful_expectations: number | null;
  failures: Json[];
  dag_id: string | null;
  run_id: string | null;
  task_id: string | null;
  map_index: number | null;
  try_number: number | null;
};

export type ValidationDetail = Validation & { summary: Json; full_result: Json };

export type ValidationPage = { validations: Validation[]; next_cursor: string | null };

export type LedgerKey = {
  namespace: string;
  key: string;
  dag_id: string | null;
  state: string;
  retryable: boolean | null;
  fencing_token: number;
  attempts: number;
  fingerprint: string;
  holder: Json;
  origin: Json;
  lease_expires_at: string | null;
  lease_seconds: number;
  result_size: number | null;
  result_sha256: string | null;
  error: string | null;
  last_event: string;
  last_person: string | null;
  last_reason: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  expires_at: string | null;
};

export type HistoryItem = {
  seq: number;
  event: string;
  at: string;
  state: string | null;
  previous_state: string | null;
  fencing_token: number | null;
  fingerprint: string | null;
  holder: Json | null;
  previous_holder: Json | null;
  person: string | null;
  reason: string | null;
  error: string | null;
  result_sha256: string | null;
  result_size: number | null;
  details: Json | null;
};

export type LedgerKeyDetail = LedgerKey & { history: HistoryItem[] };

export type LedgerPage = { keys: LedgerKey[]; next_cursor: string | null };

export type ReleaseResponse = {
  namespace: string;
  key: string;
  released_by: string;
  reason: string;
  fencing_token: number;
  previous_state: string;
  released_at: string;
};

import type { AuditEvent, Json } from "./types";

/** A time as the Airflow UI shows it: local date and time to the second, the zone in the tooltip. */
export const when = (iso: string | null | undefined): string => {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
    `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`
  );
};

export const short = (hash: string | null | undefined, length = 12): string =>
  hash ? (hash.length > length ? `${hash.slice(0, length)}…` : hash) : "";

export const bytes = (size: number | null | undefined): string => {
  if (size === null || size === undefined) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
};

const text = (value: unknown): string | undefined =>
  value === undefined || value === null || value === "" ? undefined : String(value);

/** One line of what an event says, for the timeline: the facts a reviewer looks for first. */
export const gist = (event: AuditEvent): string => {
  const details: Json = event.details ?? {};
  const parts: string[] = [];
  const signature = details.signature as Json | undefined;
  if (signature) {
    parts.push(`signed by ${text(signature.printed_name) ?? "?"}: “${text(signature.meaning) ?? ""}”`);
    const chosen = details.chosen_options as unknown[] | undefined;
    if (chosen?.length) parts.push(`chose ${chosen.join(", ")}`);
  }
  for (const name of ["state", "status", "decision", "outcome", "suite", "reason", "person", "error"]) {
    const value = text(details[name]);
    if (value) parts.push(`${name} ${value}`);
  }
  for (const name of ["unexpected_count", "rows", "fencing_token", "quarantined_rows"]) {
    const value = text(details[name]);
    if (value) parts.push(`${name.replace(/_/g, " ")} ${value}`);
  }
  return parts.join(" · ");
};

/** The family of an event type (the part before the first dot), which picks its colour. */
export const family = (eventType: string | null): string => (eventType ?? "").split(".")[0] ?? "";

export const tone = (eventType: string | null): "ok" | "bad" | "warn" | "info" => {
  const type = eventType ?? "";
  if (/(failed|refused|rejected|timed_out|quarantined|gap|tamper|mismatch|lost)/.test(type)) return "bad";
  if (/(warned|up_for_retry|released|replayed|retry)/.test(type)) return "warn";
  if (/(success|passed|completed|signed|verified|approved)/.test(type)) return "ok";
  return "info";
};

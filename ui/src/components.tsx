import { type ReactNode, useMemo, useState } from "react";

import type { Loaded } from "./hooks";

import { tone } from "./format";

export type Column<T> = {
  header: string;
  cell: (row: T) => ReactNode;
  /** The value the column sorts by; a column without one is not sortable. */
  sort?: (row: T) => string | number | null | undefined;
  /** Long text that wraps (cells stay on one line otherwise, and the table scrolls sideways). */
  wrap?: boolean;
};

type TableProps<T> = {
  label: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  onOpen?: (row: T) => void;
  selected?: string | null;
  empty: string;
};

/** A table as Airflow's list pages show one; clicking a sortable header sorts the rows of the page. */
export const Table = <T,>({ label, columns, rows, rowKey, onOpen, selected, empty }: TableProps<T>) => {
  const [order, setOrder] = useState<{ column: number; descending: boolean } | null>(null);
  const sorted = useMemo(() => {
    const by = order === null ? undefined : columns[order.column]?.sort;
    if (!by || order === null) return rows;
    const value = (row: T) => by(row) ?? "";
    return [...rows].sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      const result = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return order.descending ? -result : result;
    });
  }, [rows, columns, order]);
  const toggle = (column: number) =>
    setOrder((now) => ({ column, descending: now?.column === column ? !now.descending : false }));
  return (
    <div className="aic-table-wrap">
      <table className="aic-table" aria-label={label}>
        <thead>
          <tr>
            {columns.map((column, index) => (
              <th
                key={column.header}
                data-sortable={column.sort ? "" : undefined}
                aria-sort={
                  order?.column === index ? (order.descending ? "descending" : "ascending") : undefined
                }
                onClick={column.sort ? () => toggle(index) : undefined}
              >
                {column.header}
                {order?.column === index ? (order.descending ? " ↓" : " ↑") : ""}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sorted.length === 0 ? (
            <tr>
              <td className="aic-muted" colSpan={columns.length}>
                {empty}
              </td>
            </tr>
          ) : (
            sorted.map((row) => {
              const key = rowKey(row);
              return (
                <tr
                  key={key}
                  data-clickable={onOpen ? "" : undefined}
                  aria-selected={selected === key}
                  onClick={onOpen ? () => onOpen(row) : undefined}
                >
                  {columns.map((column) => (
                    <td key={column.header} className={column.wrap ? "aic-wrap" : undefined}>
                      {column.cell(row)}
                    </td>
                  ))}
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </div>
  );
};

type PagerProps = { pageNumber: number; count: number; newer?: () => void; older?: () => void; extra?: ReactNode };

export const Pager = ({ pageNumber, count, newer, older, extra }: PagerProps) => (
  <div className="aic-pager">
    <button className="aic-btn" type="button" disabled={!newer} onClick={newer}>
      ‹ Newer
    </button>
    <span>
      Page {pageNumber} · {count} shown
    </span>
    <button className="aic-btn" type="button" disabled={!older} onClick={older}>
      Older ›
    </button>
    {extra}
  </div>
);

export const Badge = ({ tone: kind, children }: { tone: "ok" | "bad" | "warn" | "info"; children: ReactNode }) => (
  <span className={`aic-badge aic-tone-${kind}`}>{children}</span>
);

export const EventType = ({ type }: { type: string | null }) => <Badge tone={tone(type)}>{type ?? "?"}</Badge>;

export const Yes = ({ value, yes, no }: { value: boolean | null | undefined; yes: string; no: string }) =>
  value === null || value === undefined ? (
    <span className="aic-muted">unknown</span>
  ) : (
    <Badge tone={value ? "ok" : "bad"}>{value ? yes : no}</Badge>
  );

export const JsonBlock = ({ value }: { value: unknown }) => (
  <pre className="aic-pre">{typeof value === "string" ? value : JSON.stringify(value, null, 2)}</pre>
);

export const Problem = ({ error }: { error?: Error }) =>
  error ? (
    <div className="aic-note aic-tone-bad" role="alert">
      {error.message}
    </div>
  ) : null;

export const Loading = ({ loading }: { loading: boolean }) =>
  loading ? <span className="aic-muted">Loading…</span> : null;

export const Mono = ({ children, title }: { children: ReactNode; title?: string }) => (
  <span className="aic-mono" title={title}>
    {children}
  </span>
);

type FieldProps = { label: string; value: string; onChange: (value: string) => void; type?: string; width?: number };

export const Field = ({ label, value, onChange, type = "text", width = 150 }: FieldProps) => (
  <label className="aic-field">
    {label}
    <input type={type} value={value} style={{ width }} onChange={(event) => onChange(event.target.value)} />
  </label>
);

type ChoiceProps = { label: string; value: string; options: string[]; onChange: (value: string) => void };

export const Choice = ({ label, value, options, onChange }: ChoiceProps) => (
  <label className="aic-field">
    {label}
    <select value={value} onChange={(event) => onChange(event.target.value)}>
      <option value="">any</option>
      {options.map((option) => (
        <option key={option} value={option}>
          {option}
        </option>
      ))}
    </select>
  </label>
);

export const Facts = ({ items }: { items: [string, ReactNode][] }) => (
  <dl className="aic-dl">
    {items.map(([label, value]) => (
      <div key={label} style={{ display: "contents" }}>
        <dt>{label}</dt>
        <dd>{value === null || value === undefined || value === "" ? <span className="aic-muted">—</span> : value}</dd>
      </div>
    ))}
  </dl>
);

type PanelProps<T> = {
  label: string;
  title: ReactNode;
  badge?: ReactNode;
  onClose: () => void;
  loaded: Loaded<T>;
  children: (data: T) => ReactNode;
};

/** The panel beside a list that shows one item: its title, a close button, and the item once loaded. */
export const DetailPanel = <T,>({ label, title, badge, onClose, loaded, children }: PanelProps<T>) => (
  <section className="aic-panel" aria-label={label}>
    <div className="aic-head">
      <h3>{title}</h3>
      {badge}
      <span style={{ flex: 1 }} />
      <button className="aic-btn" type="button" onClick={onClose}>
        Close
      </button>
    </div>
    <Loading loading={loaded.loading && !loaded.data} />
    <Problem error={loaded.error} />
    {loaded.data ? children(loaded.data) : null}
  </section>
);

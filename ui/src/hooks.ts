import { useCallback, useEffect, useMemo, useState } from "react";

import { getJson, type Params } from "./api";

export type Loaded<T> = { data?: T; error?: Error; loading: boolean; reload: () => void };

/** GET ``path`` with ``params`` whenever either changes (``path`` null: nothing to load yet). */
export const useApi = <T>(path: string | null, params: Params = {}): Loaded<T> => {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: path !== null });
  const [round, setRound] = useState(0);
  const key = JSON.stringify([path, params, round]);
  useEffect(() => {
    if (path === null) return undefined;
    const abort = new AbortController();
    setState((previous) => ({ data: previous.data, loading: true }));
    getJson<T>(path, params, abort.signal).then(
      (data) => {
        if (!abort.signal.aborted) setState({ data, loading: false });
      },
      (error: Error) => {
        if (!abort.signal.aborted) setState({ error, loading: false });
      },
    );
    return () => abort.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  const reload = useCallback(() => setRound((n) => n + 1), []);
  return { ...state, reload };
};

/** Cursor pages: the cursors of the pages before this one, so that "Newer" goes back without re-counting. */
export const usePages = <T extends { next_cursor: string | null }>(path: string, filters: Params) => {
  // The cursors belong to the filters they were read with: other filters start again at the first page.
  const filterKey = JSON.stringify([path, filters]);
  const [state, setState] = useState<{ filterKey: string; cursors: string[] }>({ filterKey, cursors: [] });
  const cursors = state.filterKey === filterKey ? state.cursors : [];
  const cursor = cursors.length > 0 ? cursors[cursors.length - 1] : undefined;
  const page = useApi<T>(path, { ...filters, cursor });
  const next = page.data?.next_cursor;
  return {
    ...page,
    pageNumber: cursors.length + 1,
    older: next ? () => setState({ filterKey, cursors: [...cursors, next] }) : undefined,
    newer: cursors.length > 0 ? () => setState({ filterKey, cursors: cursors.slice(0, -1) }) : undefined,
    first: () => setState({ filterKey, cursors: [] }),
  };
};

/**
 * The console's place (view, filters, the open item) kept in the address, so that a link to a story or an
 * event can be shared and survives a reload. Only the query string changes, never Airflow's route. The address
 * is read at every render: Airflow's router changes it too (its menu) without an event a page could hear.
 */
export const useUrlState = (): [URLSearchParams, (changes: Params, replaceAll?: boolean) => void] => {
  const [, setRound] = useState(0);
  useEffect(() => {
    const sync = () => setRound((n) => n + 1);
    window.addEventListener("popstate", sync);
    return () => window.removeEventListener("popstate", sync);
  }, []);
  const query = window.location.search;
  const search = useMemo(() => new URLSearchParams(query), [query]);
  const update = useCallback((changes: Params, replaceAll = false) => {
    const next = replaceAll ? new URLSearchParams() : new URLSearchParams(window.location.search);
    for (const [name, value] of Object.entries(changes)) {
      if (value === undefined || value === null || value === "") next.delete(name);
      else next.set(name, String(value));
    }
    const text = next.toString();
    const url = `${window.location.pathname}${text ? `?${text}` : ""}${window.location.hash}`;
    // Keep the router's own history state: Airflow's router reads it when the user goes back.
    window.history.pushState(window.history.state, "", url);
    setRound((n) => n + 1);
  }, []);
  return [search, update];
};

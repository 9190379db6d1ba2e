import { useCallback, useEffect, useState } from "react";

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
      (data) => setState({ data, loading: false }),
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
  const [cursors, setCursors] = useState<string[]>([]);
  const filterKey = JSON.stringify(filters);
  useEffect(() => setCursors([]), [filterKey, path]);
  const cursor = cursors.length > 0 ? cursors[cursors.length - 1] : undefined;
  const page = useApi<T>(path, { ...filters, cursor });
  return {
    ...page,
    pageNumber: cursors.length + 1,
    older: page.data?.next_cursor ? () => setCursors([...cursors, page.data!.next_cursor!]) : undefined,
    newer: cursors.length > 0 ? () => setCursors(cursors.slice(0, -1)) : undefined,
    first: () => setCursors([]),
  };
};

const read = (): URLSearchParams => new URLSearchParams(window.location.search);

/**
 * The console's place (view, filters, the open item) kept in the address, so that a link to a story or an
 * event can be shared and survives a reload. Only the query string changes, never Airflow's route.
 */
export const useUrlState = (): [URLSearchParams, (changes: Params, replaceAll?: boolean) => void] => {
  const [search, setSearch] = useState(read);
  useEffect(() => {
    const sync = () => setSearch(read());
    window.addEventListener("popstate", sync);
    return () => window.removeEventListener("popstate", sync);
  }, []);
  const update = useCallback((changes: Params, replaceAll = false) => {
    const next = replaceAll ? new URLSearchParams() : read();
    for (const [name, value] of Object.entries(changes)) {
      if (value === undefined || value === null || value === "") next.delete(name);
      else next.set(name, String(value));
    }
    const query = next.toString();
    const url = `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`;
    // Keep the router's own history state: Airflow's router reads it when the user goes back.
    window.history.pushState(window.history.state, "", url);
    setSearch(next);
  }, []);
  return [search, update];
};

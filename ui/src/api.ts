// The console's only way to the store: the integrity API, with the Airflow UI's own session cookie.

export type Params = Record<string, string | number | null | undefined>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The API's address, resolved like Airflow's own calls against the UI's base URL (sub-path deployments). */
export const apiUrl = (path: string, params: Params = {}): string => {
  const url = new URL(`integrity/api/v1/${path}`, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url.toString();
};

const explain = async (response: Response): Promise<ApiError> => {
  let detail = response.statusText;
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      detail = body.detail
        .map((item: { loc?: unknown[]; msg?: string }) => `${(item.loc ?? []).slice(1).join(".")}: ${item.msg}`)
        .join("; ");
    }
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401) return new ApiError(401, "Your session has ended: log in to Airflow again.");
  if (response.status === 403) return new ApiError(403, `Not allowed: ${detail}`);
  return new ApiError(response.status, detail || `HTTP ${response.status}`);
};

const call = async <T>(url: string, init: RequestInit): Promise<T> => {
  const response = await fetch(url, { credentials: "same-origin", ...init });
  if (!response.ok) throw await explain(response);
  return (await response.json()) as T;
};

export const getJson = <T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> =>
  call<T>(apiUrl(path, params), { headers: { Accept: "application/json" }, signal });

export const postJson = <T>(path: string, body?: unknown): Promise<T> =>
  call<T>(apiUrl(path), {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

/** A path segment that may hold any character a business key or ledger key can (slashes included). */
export const segment = (value: string): string => encodeURIComponent(value);

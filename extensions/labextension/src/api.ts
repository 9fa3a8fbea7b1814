/**
 * The AstraGo service as this JupyterLab sees it: every call goes to its own server,
 * `<base>/astrago/api/...`, which forwards it with the server's token (astrago_jupyterlab/proxy.py).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

export interface IServerInfo {
  user: string;
  server_name: string;
  slice: string;
  gpu_units: number | null;
  visible_devices: string[];
  allocation_id: string;
  root_dir: string;
  service: boolean;
}

export interface IPlacement {
  node?: string | null;
  model?: string | null;
  gpu_indices?: number[];
  mps_percent?: number | null;
  mps_memory_limit_mib?: number | null;
}

export interface IAllocation {
  id: string;
  status: string;
  owner: { kind: string; id: string };
  slice: string;
  gpu_units: number;
  placement: IPlacement;
}

export interface IMonitorSlice {
  allocation_id: string | null;
  kind: string;
  profile?: string;
  gpu?: number;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  utilization: number | null;
}

export interface IOffer {
  slice: string;
  kind: string;
  gpu_units: number;
  memory_gib: number;
  model?: string | null;
  free: number | null;
  allowed: boolean;
  within_quota: boolean;
  quota_note: string;
  note: string;
}

export interface IQuota {
  limits: { [key: string]: number | undefined };
  usage: { [key: string]: number };
  remaining: { [key: string]: number | null };
}

export interface IJob {
  id: string;
  name: string;
  owner: string;
  kind: string;
  status: string;
  reason: string;
  input: string;
  slice: string;
  attempt: number;
  exit_code: number | null;
  outputs: string[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  queue?: { status?: string; position?: number | null; queue_length?: number | null; reason?: string };
}

/** A refusal of the service (or of the proxy), in the words of its problem `detail`. */
export class ServiceError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

const settings = ServerConnection.makeSettings();

export function serverUrl(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, ...parts);
}

async function call<T>(url: string, init: RequestInit = {}): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServiceError(`This JupyterLab server did not answer: ${error}`, 0);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail =
      (body && (body.detail || body.message)) ||
      `The AstraGo service answered ${response.status} ${response.statusText}.`;
    throw new ServiceError(detail, response.status);
  }
  return body as T;
}

/** GET/POST `api/<path>` of the AstraGo service. */
export function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  return call<T>(serverUrl('astrago', 'api', path), init);
}

export function serverInfo(): Promise<IServerInfo> {
  return call<IServerInfo>(serverUrl('astrago', 'server'));
}

export function submitJob(spec: { [key: string]: unknown }): Promise<IJob> {
  return api<IJob>('jobs', {
    method: 'POST',
    body: JSON.stringify(spec),
    headers: { 'Content-Type': 'application/json' }
  });
}

export function cancelJob(id: string): Promise<IJob> {
  return api<IJob>(`jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
}

/** The job's log from a byte offset: (text, where to continue). */
export async function jobLog(id: string, offset = 0): Promise<{ text: string; next: number }> {
  const url = serverUrl('astrago', 'api', 'jobs', encodeURIComponent(id), 'log') + `?offset=${offset}`;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  const text = await response.text();
  if (!response.ok) {
    throw new ServiceError(text || `The log of job ${id} is not readable (${response.status}).`, response.status);
  }
  const next = parseInt(response.headers.get('X-Log-Next-Offset') || '', 10);
  return { text, next: isNaN(next) ? offset : next };
}

/** The `_xsrf` cookie as ServerConnection reads it (the last of duplicates: what tornado sees). */
function xsrfCookie(): string | undefined {
  let value: string | undefined;
  for (const part of document.cookie.split(';')) {
    const trimmed = part.trim();
    if (trimmed.startsWith('_xsrf=')) {
      value = trimmed.substring('_xsrf='.length);
    }
  }
  return value;
}

export interface IFollowHandlers {
  log(text: string, attempt: number, offset: number): void;
  status(job: IJob): void;
  end(end: { status: string; exit_code: number | null; reason: string; outputs: string[] }): void;
  /** The stream broke: `fatal` when it kept failing and following stopped (the caller may poll instead). */
  trouble(message: string, fatal: boolean): void;
}

/**
 * Follow a job's server-sent events (`api/jobs/{id}/events`) through this server. A dropped stream
 * is opened again from the last offset seen (the event id is `<attempt>:<next offset>`), never from
 * the start. Returns a function that stops following.
 */
export function followJob(id: string, offset: number, handlers: IFollowHandlers): () => void {
  let source: EventSource | null = null;
  let next = offset;
  let stopped = false;
  let timer: number | undefined;
  let failures = 0;
  const open = () => {
    // an EventSource sends no headers of its own: the XSRF token the server checks goes in the query
    const xsrf = xsrfCookie();
    const url =
      serverUrl('astrago', 'api', 'jobs', encodeURIComponent(id), 'events') +
      `?offset=${next}` +
      (xsrf ? `&_xsrf=${encodeURIComponent(xsrf)}` : '');
    source = new EventSource(url, { withCredentials: true });
    source.onopen = () => {
      failures = 0;
    };
    source.addEventListener('log', (event: MessageEvent) => {
      const data = JSON.parse(event.data);
      const at = (event.lastEventId || '').split(':');
      if (at.length === 2 && !isNaN(parseInt(at[1], 10))) {
        next = parseInt(at[1], 10);
      }
      handlers.log(data.text || '', data.attempt, data.offset);
    });
    source.addEventListener('status', (event: MessageEvent) => {
      handlers.status(JSON.parse(event.data));
    });
    source.addEventListener('end', (event: MessageEvent) => {
      stop();
      handlers.end(JSON.parse(event.data));
    });
    source.onerror = () => {
      if (stopped) {
        return;
      }
      source?.close();
      failures += 1;
      if (failures >= 3) {
        stop();
        handlers.trouble('The live log is not reachable; reading it every few seconds instead.', true);
        return;
      }
      handlers.trouble('The live log lost its connection; reconnecting ...', false);
      timer = window.setTimeout(open, 2000 * failures);
    };
  };
  const stop = () => {
    stopped = true;
    window.clearTimeout(timer);
    source?.close();
  };
  open();
  return stop;
}

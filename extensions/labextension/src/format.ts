/** Words and numbers for people: slices, GPU units, memory, times. */
import { IAllocation, IMonitorSlice, IOffer, IServerInfo } from './api';

export function units(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return 'unlimited';
  }
  return value.toFixed(2);
}

export function gigabytes(bytes: number): string {
  const gb = bytes / 1024 ** 3;
  return gb >= 10 ? gb.toFixed(0) : gb.toFixed(1);
}

/** "MIG 1g.10gb on GPU 0", "MPS 25% on GPU 1", "GPU 0", "2 GPUs (0, 1)", "no GPU". */
export function sliceLabel(info: IServerInfo, alloc: IAllocation | null, offer: IOffer | null): string {
  const slice = alloc?.slice || info.slice || 'cpu';
  if (slice === 'cpu') {
    return 'no GPU';
  }
  const kind = offer?.kind || kindOf(slice);
  const gpus = alloc?.placement?.gpu_indices || [];
  const where = gpus.length ? ` on GPU ${gpus.join(', ')}` : '';
  if (kind === 'mig') {
    return `MIG ${slice}${where}`;
  }
  if (kind === 'mps') {
    const percent = alloc?.placement?.mps_percent ?? parseInt(slice.replace(/^mps-/, ''), 10);
    return `MPS ${percent}%${where}`;
  }
  if (gpus.length > 1) {
    return `${gpus.length} GPUs (${gpus.join(', ')})`;
  }
  if (gpus.length === 1) {
    return `GPU ${gpus[0]}`;
  }
  return slice;
}

export function kindOf(slice: string): string {
  if (/^\d+g\.\d+gb/.test(slice)) {
    return 'mig';
  }
  if (/^mps-\d+/.test(slice)) {
    return 'mps';
  }
  if (/^gpu-\d+/.test(slice)) {
    return 'gpu';
  }
  return slice === 'cpu' ? 'cpu' : 'other';
}

/** "3.1 of 10 GB GPU memory in use" from the monitor's readings, else the slice's size "10 GB GPU memory". */
export function memoryLabel(readings: IMonitorSlice[], offer: IOffer | null, alloc: IAllocation | null): string {
  const total = readings.reduce((sum, r) => sum + (r.memory_total_bytes || 0), 0);
  const measured = readings.filter(r => r.memory_used_bytes !== null && r.memory_used_bytes !== undefined);
  if (measured.length && total) {
    const used = measured.reduce((sum, r) => sum + (r.memory_used_bytes || 0), 0);
    return `${gigabytes(used)} of ${gigabytes(total)} GB GPU memory in use`;
  }
  const mpsLimit = alloc?.placement?.mps_memory_limit_mib;
  if (mpsLimit) {
    return `${gigabytes(mpsLimit * 1024 ** 2)} GB GPU memory`;
  }
  if (offer && offer.memory_gib) {
    const n = alloc?.placement?.gpu_indices?.length || 1;
    const gib = offer.kind === 'gpu' ? offer.memory_gib * Math.max(1, n) : offer.memory_gib;
    return `${gib % 1 ? gib.toFixed(1) : gib.toFixed(0)} GB GPU memory`;
  }
  return '';
}

/** "just now", "5 min ago", "3 h ago", "2 days ago". */
export function relative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) {
    return '';
  }
  const then = Date.parse(iso);
  if (isNaN(then)) {
    return iso;
  }
  const s = Math.round((now - then) / 1000);
  if (s < 45) {
    return 'just now';
  }
  if (s < 3600) {
    return `${Math.round(s / 60)} min ago`;
  }
  if (s < 86400) {
    return `${Math.round(s / 3600)} h ago`;
  }
  return `${Math.round(s / 86400)} days ago`;
}

export function localTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const then = new Date(iso);
  return isNaN(then.getTime()) ? iso : then.toLocaleString();
}

export function statusWord(status: string): string {
  return status.toLowerCase().replace(/_/g, ' ');
}

/** Lab path of an absolute file path under the server's root ('' when it is not under it). */
export function labPath(rootDir: string, absolute: string): string {
  if (!rootDir) {
    return '';
  }
  const root = rootDir.replace(/\/+$/, '') + '/';
  return absolute.startsWith(root) ? absolute.slice(root.length) : '';
}

/** Absolute path of a lab path (lab paths are relative to the server's root). */
export function absolutePath(rootDir: string, path: string): string {
  return rootDir.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

/**
 * `lr=0.1` lines -> {lr: 0.1}: values as JSON when they parse (numbers, true, lists), Python's
 * True/False/None, else the text itself (as `%job run -p` and `astrago job submit -p` read them).
 */
export function parseParameters(text: string): { [key: string]: unknown } {
  const out: { [key: string]: unknown } = {};
  for (const raw of text.split(/\n|;/)) {
    const line = raw.trim();
    if (!line) {
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 1) {
      throw new Error(`A parameter is NAME=VALUE (like lr=0.1), not "${line}".`);
    }
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`Parameter name "${key}" is not a valid Python name.`);
    }
    out[key] = cliValue(value);
  }
  return out;
}

function cliValue(text: string): unknown {
  if (text === 'True' || text === 'False' || text === 'None') {
    return { True: true, False: false, None: null }[text];
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

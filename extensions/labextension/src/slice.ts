/**
 * The status-bar item: the GPU slice this server runs on and its GPU memory.
 *
 * The slice comes from the server itself (ASTRAGO_SLICE), where it sits from the service's
 * allocation of this workspace (GPU index, MPS share), and the memory from the monitor's
 * per-slice readings when it has them, else from the slice's size in the user's offers.
 */
import { Widget } from '@lumino/widgets';

import {
  api,
  IAllocation,
  IMonitorSlice,
  IOffer,
  IServerInfo,
  serverInfo
} from './api';
import { memoryLabel, sliceLabel } from './format';

export interface ISliceState {
  info: IServerInfo;
  allocation: IAllocation | null;
  offer: IOffer | null;
  readings: IMonitorSlice[];
  label: string;
  memory: string;
}

/** What the status bar shows, read from the server and the service. */
export async function readSlice(): Promise<ISliceState> {
  const info = await serverInfo();
  let allocation: IAllocation | null = null;
  let offer: IOffer | null = null;
  let readings: IMonitorSlice[] = [];
  if (info.service) {
    const owner = `${info.user}/${info.server_name}`;
    const [allocs, offers, usage] = await Promise.all([
      api<{ allocations: IAllocation[] }>('allocations').catch(() => ({ allocations: [] })),
      api<{ offers: IOffer[] }>(`users/${encodeURIComponent(info.user)}/offers`).catch(() => ({ offers: [] })),
      api<{ slices: IMonitorSlice[] }>('monitor/usage').catch(() => ({ slices: [] }))
    ]);
    allocation =
      allocs.allocations.find(a => info.allocation_id && a.id === info.allocation_id) ||
      allocs.allocations.find(a => a.owner.kind === 'workspace' && a.owner.id === owner && a.status === 'admitted') ||
      null;
    const slice = allocation?.slice || info.slice;
    offer = offers.offers.find(o => o.slice === slice) || null;
    readings = allocation ? (usage.slices || []).filter(s => s.allocation_id === allocation!.id) : [];
  }
  const label = sliceLabel(info, allocation, offer);
  return { info, allocation, offer, readings, label, memory: info.slice === 'cpu' ? '' : memoryLabel(readings, offer, allocation) };
}

export class SliceStatus extends Widget {
  constructor() {
    super();
    this.addClass('astrago-SliceStatus');
    this.node.textContent = 'AstraGo …';
    this.node.title = 'AstraGo: the GPU slice of this server';
    void this.refresh();
    this._timer = window.setInterval(() => void this.refresh(), 30000);
  }

  state: ISliceState | null = null;

  async refresh(): Promise<void> {
    try {
      const state = await readSlice();
      this.state = state;
      const text = state.memory ? `${state.label} · ${state.memory}` : state.label;
      this.node.textContent = text;
      this.node.dataset.slice = state.allocation?.slice || state.info.slice || 'cpu';
      const details = [
        `This server runs on: ${state.label}`,
        state.memory && `GPU memory: ${state.memory}`,
        state.allocation && `GPU units: ${state.allocation.gpu_units.toFixed(2)}`,
        state.allocation?.placement?.model && `GPU model: ${state.allocation.placement.model}`,
        state.info.visible_devices.length && `Devices: ${state.info.visible_devices.join(', ')}`,
        !state.info.service && 'This server was not started by AstraGo: the service is not reachable from it.'
      ].filter(Boolean);
      this.node.title = details.join('\n');
    } catch (error) {
      this.node.textContent = 'AstraGo: slice unknown';
      this.node.title = `${error}`;
    }
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  private _timer: number;
}

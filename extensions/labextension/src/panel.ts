/**
 * The AstraGo side panel: what is left of the user's quota, their place in the queue, and their
 * jobs with status, a live log, cancel and "open the executed notebook".
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { api, cancelJob, followJob, IJob, IQuota, IServerInfo, jobLog, serverInfo, TERMINAL } from './api';
import { labPath, localTime, relative, statusWord, units } from './format';

const POLL_MS = 3000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** One job in the panel; keeps its log open across refreshes. */
class JobItem {
  constructor(
    public job: IJob,
    private panel: JobsPanel
  ) {
    this.node = el('li', 'astrago-Job');
    this.node.dataset.jobId = job.id;
    const head = el('div', 'astrago-Job-head');
    this.name = el('span', 'astrago-Job-name');
    this.status = el('span', 'astrago-Job-status');
    head.append(this.name, this.status);
    this.meta = el('div', 'astrago-Job-meta');
    this.reason = el('div', 'astrago-Job-reason');
    const actions = el('div', 'astrago-Job-actions');
    this.logButton = el('button', 'jp-Button astrago-Button astrago-Job-logButton', 'Log');
    this.logButton.onclick = () => this.toggleLog();
    this.cancelButton = el('button', 'jp-Button astrago-Button astrago-Job-cancel', 'Cancel');
    this.cancelButton.onclick = () => void this.cancel();
    this.outputs = el('span', 'astrago-Job-outputs');
    actions.append(this.logButton, this.cancelButton, this.outputs);
    this.log = el('pre', 'astrago-Job-log');
    this.log.hidden = true;
    this.node.append(head, this.meta, this.reason, actions, this.log);
    this.update(job);
  }

  readonly node: HTMLLIElement;

  update(job: IJob): void {
    this.job = job;
    this.name.textContent = job.name || job.id;
    this.name.title = job.input || job.name;
    this.status.textContent = statusWord(job.status);
    this.status.dataset.status = job.status;
    this.node.dataset.status = job.status;
    const created = el('span', '', relative(job.created_at));
    created.title = localTime(job.created_at);
    this.meta.replaceChildren(`${job.id} · ${job.slice} · `, created);
    let reason = '';
    if (job.status === 'QUEUED' && job.queue?.position) {
      reason = `Position ${job.queue.position} of ${job.queue.queue_length ?? '?'} in the queue`;
      if (job.queue.reason) {
        reason += `: ${job.queue.reason}`;
      }
    } else if (job.status !== 'COMPLETED' && job.status !== 'RUNNING' && job.reason && job.reason !== 'admitted') {
      reason = job.reason;
    }
    if (job.exit_code !== null && job.exit_code !== undefined && job.status !== 'COMPLETED') {
      reason += `${reason ? ' ' : ''}(exit code ${job.exit_code})`;
    }
    this.reason.textContent = reason;
    this.reason.hidden = !reason;
    this.cancelButton.hidden = TERMINAL.includes(job.status);
    this.outputs.replaceChildren();
    for (const output of job.outputs || []) {
      const path = labPath(this.panel.info?.root_dir || '', output);
      const name = output.split('/').pop() || output;
      if (path && output.endsWith('.ipynb') && (job.status === 'COMPLETED' || job.status === 'FAILED')) {
        const open = el('button', 'jp-Button astrago-Button astrago-Job-open', 'Open executed notebook');
        open.title = output;
        open.onclick = () => void this.panel.commands.execute('docmanager:open', { path });
        this.outputs.append(open);
      } else if (TERMINAL.includes(job.status)) {
        const span = el('span', 'astrago-Job-outputPath', `Output: ${name}`);
        span.title = output;
        this.outputs.append(span);
      }
    }
  }

  toggleLog(open?: boolean): void {
    const show = open ?? this.log.hidden;
    this.log.hidden = !show;
    this.logButton.textContent = show ? 'Hide log' : 'Log';
    if (show && !this.following && !this.loaded) {
      this.startLog();
    }
  }

  private startLog(): void {
    this.log.textContent = '';
    if (this.job.status === 'QUEUED' || this.job.status === 'CREATED') {
      this.log.dataset.placeholder = 'Waiting to start: the log appears here when the job runs.';
    }
    if (TERMINAL.includes(this.job.status)) {
      this.loaded = true;
      jobLog(this.job.id, 0)
        .then(({ text }) => this.append(text || '(the log is empty)'))
        .catch(error => this.append(`\n${error.message}`));
      return;
    }
    let attempt = 0;
    let next = 0;
    this.following = followJob(this.job.id, 0, {
      log: (text, at, offset) => {
        if (attempt && at !== attempt) {
          this.append(`\n--- attempt ${at} ---\n`);
        }
        attempt = at;
        next = offset + new TextEncoder().encode(text).length;
        this.append(text);
      },
      status: job => {
        this.update({ ...this.job, ...job });
      },
      end: end => {
        this.following = null;
        this.loaded = true;
        this.update({ ...this.job, status: end.status, exit_code: end.exit_code, reason: end.reason, outputs: end.outputs });
        this.panel.scheduleRefresh();
      },
      trouble: (message, fatal) => {
        this.panel.say(message);
        if (fatal) {
          this.following = null;
          this.poll(next);
        }
      }
    });
  }

  /** The log by polling `api/jobs/{id}/log?offset=` (when the event stream cannot be had). */
  private poll(offset: number): void {
    let next = offset;
    const tick = async () => {
      if (this.disposed) {
        return;
      }
      try {
        const part = await jobLog(this.job.id, next);
        if (part.text) {
          this.append(part.text);
        }
        next = part.next;
      } catch (error) {
        this.panel.say((error as Error).message);
      }
      if (!TERMINAL.includes(this.job.status) && !this.disposed) {
        this.pollTimer = window.setTimeout(() => void tick(), 2000);
      } else {
        this.loaded = true;
      }
    };
    void tick();
  }

  private append(text: string): void {
    delete this.log.dataset.placeholder;
    const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    this.log.append(document.createTextNode(text));
    if (atBottom) {
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  private async cancel(): Promise<void> {
    const running = this.job.status === 'RUNNING';
    const answer = await showDialog({
      title: `Cancel job ${this.job.name || this.job.id}?`,
      body: running
        ? 'It is stopped now (its processes get SIGTERM, then SIGKILL) and its slice is given back.'
        : 'It leaves the queue and never runs.',
      buttons: [Dialog.cancelButton({ label: 'Keep it' }), Dialog.warnButton({ label: 'Cancel job' })]
    });
    if (!answer.button.accept) {
      return;
    }
    this.cancelButton.disabled = true;
    try {
      this.update({ ...this.job, ...(await cancelJob(this.job.id)) });
    } catch (error) {
      void showErrorMessage('The job was not cancelled', (error as Error).message);
    } finally {
      this.cancelButton.disabled = false;
      this.panel.scheduleRefresh();
    }
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.pollTimer);
    this.following?.();
    this.following = null;
  }

  private name: HTMLSpanElement;
  private status: HTMLSpanElement;
  private meta: HTMLDivElement;
  private reason: HTMLDivElement;
  private logButton: HTMLButtonElement;
  private cancelButton: HTMLButtonElement;
  private outputs: HTMLSpanElement;
  private log: HTMLPreElement;
  private following: (() => void) | null = null;
  private loaded = false;
  private disposed = false;
  private pollTimer = 0;
}

export class JobsPanel extends Widget {
  constructor(readonly commands: CommandRegistry) {
    super();
    this.id = 'astrago-panel';
    this.addClass('astrago-Panel');
    this.title.caption = 'AstraGo: quota and jobs';
    const header = el('header', 'astrago-Panel-header');
    header.append(el('h2', '', 'AstraGo'));
    this.sliceLine = el('div', 'astrago-Panel-slice');
    header.append(this.sliceLine);
    const quota = el('section', 'astrago-Quota');
    quota.append(el('h3', '', 'Quota left'));
    this.quota = el('dl', 'astrago-Quota-list');
    this.queueLine = el('div', 'astrago-Queue');
    quota.append(this.quota, this.queueLine);
    const jobs = el('section', 'astrago-Jobs');
    const jobsHead = el('div', 'astrago-Jobs-head');
    jobsHead.append(el('h3', '', 'My jobs'));
    const refresh = el('button', 'jp-Button astrago-Button astrago-Refresh', 'Refresh');
    refresh.onclick = () => void this.refresh();
    jobsHead.append(refresh);
    this.list = el('ul', 'astrago-JobList');
    this.empty = el('p', 'astrago-Jobs-empty', 'No jobs yet. Run a notebook as a job from its toolbar.');
    this.message = el('p', 'astrago-Message');
    this.message.hidden = true;
    jobs.append(jobsHead, this.message, this.empty, this.list);
    this.node.append(header, quota, jobs);
  }

  info: IServerInfo | null = null;

  say(text: string): void {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  setSlice(text: string): void {
    this.sliceLine.textContent = text ? `This server: ${text}` : '';
  }

  /** Open (and follow) a job's log, e.g. right after submitting it. */
  async showJob(job: IJob): Promise<void> {
    await this.refresh();
    const item = this.items.get(job.id) || this.addItem(job, true);
    item.toggleLog(true);
    item.node.scrollIntoView({ block: 'nearest' });
  }

  scheduleRefresh(): void {
    window.setTimeout(() => void this.refresh(), 300);
  }

  async refresh(): Promise<void> {
    try {
      if (!this.info) {
        this.info = await serverInfo();
      }
      if (!this.info.service) {
        this.say('This server was not started by AstraGo: there is no service to ask.');
        return;
      }
      const user = encodeURIComponent(this.info.user);
      const [quota, queue, jobs] = await Promise.all([
        api<IQuota>(`users/${user}/quota`),
        api<{ length: number; entries: { position: number; slice: string; user: string }[] }>('queue'),
        api<{ jobs: IJob[] }>(`jobs?user=${user}&limit=25`)
      ]);
      this.say('');
      this.showQuota(quota);
      const mine = queue.entries.filter(e => e.user === this.info!.user);
      this.queueLine.textContent = mine.length
        ? `Waiting in the queue: position ${mine.map(e => `${e.position} (${e.slice})`).join(', ')} of ${queue.length}`
        : 'Nothing of yours is waiting in the queue.';
      this.showJobs(jobs.jobs);
    } catch (error) {
      this.say(`${(error as Error).message}`);
    }
  }

  private showQuota(q: IQuota): void {
    const rows: [string, string][] = [];
    const limitOf = (k: string) => q.limits[k];
    const gpuLimit = limitOf('gpu_units');
    rows.push([
      'GPU units',
      gpuLimit === undefined || gpuLimit === null
        ? `${units(q.usage.gpu_units)} in use · no limit`
        : `${units(q.remaining.gpu_units)} left of ${units(gpuLimit)} (${units(q.usage.gpu_units)} in use)`
    ]);
    const hours = limitOf('gpu_hours');
    const days = limitOf('gpu_hours_period_days');
    const period = days ? ` in ${days} days` : '';
    rows.push([
      'GPU-hours',
      hours === undefined || hours === null
        ? `${(q.usage.gpu_hours || 0).toFixed(2)} used${period} · no limit`
        : `${(q.remaining.gpu_hours ?? 0).toFixed(2)} left of ${hours.toFixed(2)}${period} (${(q.usage.gpu_hours || 0).toFixed(2)} used)`
    ]);
    const servers = limitOf('servers');
    if (servers !== undefined && servers !== null) {
      rows.push(['Servers', `${q.remaining.servers ?? 0} more of ${servers}`]);
    }
    this.quota.replaceChildren();
    for (const [k, v] of rows) {
      const dt = el('dt', '', k);
      const dd = el('dd', '', v);
      dd.dataset.quota = k;
      this.quota.append(dt, dd);
    }
  }

  private addItem(job: IJob, top: boolean): JobItem {
    const item = new JobItem(job, this);
    this.items.set(job.id, item);
    if (top) {
      this.list.prepend(item.node);
    } else {
      this.list.append(item.node);
    }
    return item;
  }

  private showJobs(jobs: IJob[]): void {
    const seen = new Set(jobs.map(j => j.id));
    for (const [id, item] of this.items) {
      if (!seen.has(id)) {
        item.dispose();
        item.node.remove();
        this.items.delete(id);
      }
    }
    // newest first, as the service lists them
    let before: Element | null = this.list.firstElementChild;
    for (const job of jobs) {
      let item = this.items.get(job.id);
      if (item) {
        item.update(job);
      } else {
        item = new JobItem(job, this);
        this.items.set(job.id, item);
      }
      if (item.node !== before) {
        this.list.insertBefore(item.node, before);
      } else {
        before = before.nextElementSibling;
      }
    }
    this.empty.hidden = jobs.length > 0;
  }

  protected onAfterShow(msg: Message): void {
    void this.refresh();
    this.timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, POLL_MS);
  }

  protected onAfterHide(msg: Message): void {
    window.clearInterval(this.timer);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    for (const item of this.items.values()) {
      item.dispose();
    }
    super.dispose();
  }

  private sliceLine: HTMLDivElement;
  private quota: HTMLDListElement;
  private queueLine: HTMLDivElement;
  private list: HTMLUListElement;
  private empty: HTMLParagraphElement;
  private message: HTMLParagraphElement;
  private items = new Map<string, JobItem>();
  private timer = 0;
}

/**
 * "Run this notebook as a job": a dialog with the slice (the user's offers: what their groups
 * allow, its cost and what is free) and parameters (NAME=VALUE), submitted with `POST api/jobs`.
 *
 * An environment is offered only when the service's own contract says a job takes one (an
 * `environment` property of `JobSubmission` in `api/openapi.json`): then the choices are the user's
 * (`api/users/{name}/environments`). Otherwise the dialog says where the job runs instead of asking.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { api, IJob, IOffer, IServerInfo, serverInfo, submitJob } from './api';
import { absolutePath, parseParameters } from './format';

export interface IJobChoice {
  slice: string;
  parameters: string;
  name: string;
  environment: string;
}

export interface IEnvironment {
  name: string;
  description?: string;
  status?: string;
}

/** The environments a job may be given, or null when the jobs API takes none. */
async function jobEnvironments(user: string): Promise<{ choices: IEnvironment[]; default: string } | null> {
  const doc = await api<any>('openapi.json').catch(() => null);
  const schemas = doc?.components?.schemas || {};
  const takes = schemas.JobSubmission?.properties?.environment || schemas.JobSpec?.properties?.environment;
  if (!takes) {
    return null;
  }
  const offered = await api<{ environments: IEnvironment[]; default?: string }>(
    `users/${encodeURIComponent(user)}/environments`
  ).catch(() => null);
  if (!offered || !offered.environments?.length) {
    return null;
  }
  return { choices: offered.environments.filter(e => !e.status || e.status === 'ready'), default: offered.default || '' };
}

function offerText(o: IOffer): string {
  const bits: string[] = [];
  if (o.kind !== 'cpu') {
    bits.push(`${o.gpu_units.toFixed(2)} GPU units`);
    if (o.memory_gib) {
      bits.push(`${o.memory_gib} GB GPU memory`);
    }
    bits.push(o.free === null ? '' : o.free > 0 ? `${o.free} free now` : 'none free now: it waits in the queue');
  } else {
    bits.push('no GPU');
  }
  if (!o.within_quota && o.quota_note) {
    bits.push(o.quota_note);
  }
  return `${o.slice} (${bits.filter(Boolean).join(', ')})`;
}

class JobForm extends Widget implements Dialog.IBodyWidget<IJobChoice> {
  constructor(
    notebook: string,
    offers: IOffer[],
    current: string,
    environments: { choices: IEnvironment[]; default: string } | null
  ) {
    super();
    this.addClass('astrago-JobForm');
    const form = document.createElement('form');
    form.onsubmit = e => e.preventDefault();
    const what = document.createElement('p');
    what.className = 'astrago-JobForm-what';
    what.textContent = `Runs ${notebook} from top to bottom in a batch job (papermill). The executed copy is saved next to it.`;
    form.append(what);

    this.nameInput = document.createElement('input');
    this.nameInput.name = 'name';
    this.nameInput.className = 'jp-mod-styled';
    this.nameInput.value = (notebook.split('/').pop() || notebook).replace(/\.ipynb$/, '');
    form.append(this.field('Name', this.nameInput));

    this.sliceSelect = document.createElement('select');
    this.sliceSelect.name = 'slice';
    this.sliceSelect.className = 'jp-mod-styled';
    for (const o of offers.filter(x => x.allowed)) {
      const option = document.createElement('option');
      option.value = o.slice;
      option.textContent = offerText(o);
      this.sliceSelect.append(option);
    }
    if (!this.sliceSelect.options.length) {
      const option = document.createElement('option');
      option.value = 'cpu';
      option.textContent = 'cpu (no GPU)';
      this.sliceSelect.append(option);
    }
    this.sliceSelect.value = [...this.sliceSelect.options].some(o => o.value === current) ? current : this.sliceSelect.options[0].value;
    form.append(this.field('Slice', this.sliceSelect));

    this.envSelect = document.createElement('select');
    this.envSelect.name = 'environment';
    this.envSelect.className = 'jp-mod-styled';
    if (environments) {
      for (const e of environments.choices) {
        const option = document.createElement('option');
        option.value = e.name;
        option.textContent = e.description ? `${e.name} (${e.description})` : e.name;
        this.envSelect.append(option);
      }
      this.envSelect.value = environments.default || this.envSelect.options[0]?.value || '';
      form.append(this.field('Environment', this.envSelect));
    } else {
      const where = document.createElement('p');
      where.className = 'astrago-JobForm-env';
      where.textContent = "Environment: AstraGo's environment for jobs (the jobs API offers no choice of environment).";
      form.append(where);
    }

    this.paramsInput = document.createElement('textarea');
    this.paramsInput.name = 'parameters';
    this.paramsInput.className = 'jp-mod-styled';
    this.paramsInput.rows = 3;
    this.paramsInput.placeholder = 'lr=0.01\nepochs=3';
    form.append(
      this.field('Parameters', this.paramsInput, 'NAME=VALUE, one a line: set in the notebook\'s "parameters" cell')
    );
    this.node.append(form);
  }

  private field(label: string, input: HTMLElement, help = ''): HTMLElement {
    const wrap = document.createElement('label');
    wrap.className = 'astrago-JobForm-field';
    const span = document.createElement('span');
    span.textContent = label;
    wrap.append(span, input);
    if (help) {
      const small = document.createElement('small');
      small.textContent = help;
      wrap.append(small);
    }
    return wrap;
  }

  getValue(): IJobChoice {
    return {
      slice: this.sliceSelect.value,
      parameters: this.paramsInput.value,
      name: this.nameInput.value.trim(),
      environment: this.envSelect.isConnected ? this.envSelect.value : ''
    };
  }

  private nameInput: HTMLInputElement;
  private sliceSelect: HTMLSelectElement;
  private paramsInput: HTMLTextAreaElement;
  private envSelect: HTMLSelectElement;
}

/** Ask for slice and parameters, save the notebook, submit it; returns the job (null: not submitted). */
export async function runNotebookAsJob(panel: NotebookPanel): Promise<IJob | null> {
  let info: IServerInfo;
  let offers: IOffer[] = [];
  let environments: { choices: IEnvironment[]; default: string } | null = null;
  try {
    info = await serverInfo();
    if (!info.service) {
      throw new Error('This server was not started by AstraGo: there is no service to send a job to.');
    }
    const [offered, envs] = await Promise.all([
      api<{ offers: IOffer[] }>(`users/${encodeURIComponent(info.user)}/offers`),
      jobEnvironments(info.user)
    ]);
    offers = offered.offers;
    environments = envs;
  } catch (error) {
    void showErrorMessage('Cannot run this notebook as a job', (error as Error).message);
    return null;
  }
  const path = panel.context.path;
  for (;;) {
    const result = await showDialog<IJobChoice>({
      title: 'Run this notebook as a job',
      body: new JobForm(path, offers, info.slice || 'cpu', environments),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit job' })],
      focusNodeSelector: 'select'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    let parameters: { [key: string]: unknown };
    try {
      parameters = parseParameters(result.value.parameters);
    } catch (error) {
      await showErrorMessage('Parameters', (error as Error).message);
      continue;
    }
    try {
      if (panel.context.model.dirty) {
        await panel.context.save(); // the job runs the file: what is on the screen, saved
      }
      const input = absolutePath(info.root_dir, path);
      return await submitJob({
        kind: 'notebook',
        input,
        workdir: input.slice(0, input.lastIndexOf('/')) || info.root_dir,
        slice: result.value.slice,
        name: result.value.name || undefined,
        parameters: Object.keys(parameters).length ? parameters : undefined,
        environment: result.value.environment || undefined,
        client_key: `lab-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`
      });
    } catch (error) {
      await showErrorMessage('The job was not submitted', (error as Error).message);
      return null;
    }
  }
}

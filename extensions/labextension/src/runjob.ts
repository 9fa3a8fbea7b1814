/**
 * "Run this notebook as a job": a dialog with the slice (the user's offers: what their groups
 * allow, its cost and what is free) and parameters (NAME=VALUE), submitted with `POST api/jobs`.
 *
 * The service offers no choice of environments today (a job runs in the user's own environment,
 * in a cluster in the server's image), so the dialog says where it runs instead of asking.
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
  constructor(notebook: string, offers: IOffer[], current: string) {
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

    const where = document.createElement('p');
    where.className = 'astrago-JobForm-env';
    where.textContent = 'Environment: the same Python environment as this server.';
    form.append(where);

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
    return { slice: this.sliceSelect.value, parameters: this.paramsInput.value, name: this.nameInput.value.trim() };
  }

  private nameInput: HTMLInputElement;
  private sliceSelect: HTMLSelectElement;
  private paramsInput: HTMLTextAreaElement;
}

/** Ask for slice and parameters, save the notebook, submit it; returns the job (null: not submitted). */
export async function runNotebookAsJob(panel: NotebookPanel): Promise<IJob | null> {
  let info: IServerInfo;
  let offers: IOffer[] = [];
  try {
    info = await serverInfo();
    if (!info.service) {
      throw new Error('This server was not started by AstraGo: there is no service to send a job to.');
    }
    offers = (await api<{ offers: IOffer[] }>(`users/${encodeURIComponent(info.user)}/offers`)).offers;
  } catch (error) {
    void showErrorMessage('Cannot run this notebook as a job', (error as Error).message);
    return null;
  }
  const path = panel.context.path;
  for (;;) {
    const result = await showDialog<IJobChoice>({
      title: 'Run this notebook as a job',
      body: new JobForm(path, offers, info.slice || 'cpu'),
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
        client_key: `lab-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`
      });
    } catch (error) {
      await showErrorMessage('The job was not submitted', (error as Error).message);
      return null;
    }
  }
}

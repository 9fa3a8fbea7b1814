/**
 * AstraGo in JupyterLab: the server's GPU slice in the status bar, a side panel with quota, queue
 * and jobs, and "Run this notebook as a job" in the notebook toolbar.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';

import { JobsPanel } from './panel';
import { runNotebookAsJob } from './runjob';
import { SliceStatus } from './slice';

const gpuIcon = new LabIcon({
  name: 'astrago:gpu',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<g class="jp-icon3" fill="#616161"><path d="M3 7h18v10H3zM5 9v6h14V9zm2 1h3v4H7zm5 0h5v4h-5z"/>' +
    '<path d="M6 4h2v3H6zm5 0h2v3h-2zm5 0h2v3h-2zM6 17h2v3H6zm5 0h2v3h-2zm5 0h2v3h-2z"/></g></svg>'
});

const runIcon = new LabIcon({
  name: 'astrago:run-job',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<g class="jp-icon3" fill="#616161"><path d="M4 4h10v2H6v12h8v2H4z"/><path d="M12 8l8 4-8 4z"/></g></svg>'
});

const COMMAND = 'astrago:run-notebook-as-job';
const OPEN_PANEL = 'astrago:open-panel';

class RunAsJobButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'astrago-RunAsJob',
      icon: runIcon,
      label: 'Run as job',
      tooltip: 'Run this notebook as a job (AstraGo)',
      onClick: () => void this.app.commands.execute(COMMAND, { path: panel.context.path })
    });
    panel.toolbar.insertAfter('cellType', 'astrago-run-as-job', button);
    return button;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@astrago/jupyterlab:plugin',
  description: 'The GPU slice in the status bar, a jobs and quota panel, and "Run this notebook as a job".',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new JobsPanel(app.commands);
    panel.title.icon = gpuIcon;
    app.shell.add(panel, 'left', { rank: 650 });

    if (statusBar) {
      const status = new SliceStatus();
      status.node.onclick = () => void app.commands.execute(OPEN_PANEL);
      statusBar.registerStatusItem('@astrago/jupyterlab:slice', { item: status, align: 'left', rank: 5 });
      const showSlice = () => panel.setSlice(status.state ? status.node.textContent || '' : '');
      window.setInterval(showSlice, 2000);
    }

    app.commands.addCommand(OPEN_PANEL, {
      label: 'AstraGo: quota and jobs',
      execute: () => app.shell.activateById(panel.id)
    });

    app.commands.addCommand(COMMAND, {
      label: 'Run this notebook as a job',
      caption: 'Submit the notebook to AstraGo as a batch job on a slice',
      icon: runIcon,
      isEnabled: () => notebooks.currentWidget !== null,
      execute: async args => {
        const path = args.path as string | undefined;
        const target = (path && notebooks.find(w => w.context.path === path)) || notebooks.currentWidget;
        if (!target) {
          return;
        }
        const job = await runNotebookAsJob(target);
        if (job) {
          app.shell.activateById(panel.id);
          await panel.showJob(job);
        }
      }
    });
    palette?.addItem({ command: COMMAND, category: 'AstraGo' });
    palette?.addItem({ command: OPEN_PANEL, category: 'AstraGo' });
    app.docRegistry.addWidgetExtension('Notebook', new RunAsJobButton(app));
  }
};

export default plugin;

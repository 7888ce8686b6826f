/** Wires the views to the controller; decides nothing itself. */
import { Controller } from './controller.js';
import { ControlsView } from './views/controls.js';
import { DataView } from './views/data.js';
import { FeaturesView } from './views/features.js';
import { GradChartView } from './views/gradchart.js';
import { LossChartView } from './views/losschart.js';
import { MetricsView } from './views/metrics.js';
import { NetworkView } from './views/network.js';
import { OutputView } from './views/output.js';
import { RunView } from './run_view.js';
import { CodeExportView } from './code_export.js';

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const features = new FeaturesView();
const views = {
  controls: new ControlsView(document),
  data: new DataView(document),
  features,
  network: new NetworkView(byId('network'), byId('weight-tooltip'), /** @type {HTMLFormElement} */ (byId('weight-editor')), features),
  output: new OutputView(
    /** @type {HTMLCanvasElement} */ (byId('output-heatmap')),
    /** @type {HTMLCanvasElement} */ (byId('output-points')),
    byId('legend'),
  ),
  metrics: new MetricsView({
    testLoss: byId('test-loss'),
    trainLoss: byId('train-loss'),
    accuracy: byId('test-accuracy'),
    accuracyLine: byId('accuracy-line'),
    confusion: byId('confusion'),
  }),
  lossChart: new LossChartView(byId('loss-chart')),
  gradChart: new GradChartView(byId('grad-chart')),
  diverged: byId('diverged'),
  error: byId('error'),
  layerCount: byId('layer-count'),
};

const controller = new Controller(views);
// Saved runs: the save bar, and a share link (/r/{slug}) shown at once, then Continue (run_view.js).
const runView = new RunView(controller);
runView.bind();
controller.runView = runView;
// Export code: the session (or the saved run on show) as a script (code_export.js, issue 11).
new CodeExportView(controller).bind();

views.controls.bindChange((key, value) => controller.change(key, value));
views.controls.bindTransport({
  play: () => controller.togglePlay(),
  step: () => controller.step(),
  reset: () => controller.reset(),
  restart: () => controller.restart(),
  exportModel: () => controller.exportModel(),
  importModel: (file) => controller.importModel(file),
});
views.data.bind({
  regenerate: () => controller.regenerate(),
  upload: (text) => controller.uploadCsv(text),
  download: () => controller.downloadData(),
});
// Watching someone else's session: the note's button starts (or reopens) the learner's own.
document.getElementById('read-only-own')?.addEventListener('click', () => controller.startOwn());
views.features.bindToggle((name) => controller.toggleFeature(name));
views.network.bindLayer((index, patch) => controller.changeLayer(index, patch));
views.network.bindEdit((edit) => controller.editWeight(edit));
views.network.bindHoverNeuron((neuron) => controller.hoverNeuron(neuron));
views.output.bindAddPoint((x1, x2) => controller.addPoint(x1, x2));
byId('add-layer').addEventListener('click', () => controller.changeLayerCount(1));
byId('remove-layer').addEventListener('click', () => controller.changeLayerCount(-1));

// Space toggles play unless the user is typing or a button would take the key itself.
document.addEventListener('keydown', (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  const typing = target.closest('input, select, textarea, button, [role="button"], [contenteditable], summary');
  if (event.key === ' ' && !typing && !event.repeat) {
    event.preventDefault();
    controller.togglePlay();
  }
});

// Leaving keeps the session (a reload reopens it; unwatched, the server pauses it).
window.addEventListener('pagehide', () => controller.leave());
let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(() => controller.relayout(), 150);
});

// Exposed for the browser tests and the page benchmark (read-only use).
/** @type {any} */ (window).playground = controller;

controller.start().catch((error) => controller.showError(`Could not start: ${error.message}`, 0));

// Entry of dist/monaco.js: the Monaco editor with YAML highlighting and monaco-yaml (JSON Schema validation,
// completion, hover, formatting), exposed as window.monaco for BlazorMonaco's jsInterop.js.
// edcore.main.js rather than editor.api.js: the editor contributions (suggest widget, hover, find, folding…) live there.
import * as monaco from 'monaco-editor/esm/vs/editor/edcore.main.js';
import 'monaco-editor/esm/vs/basic-languages/yaml/yaml.contribution.js';
import { configureMonacoYaml } from 'monaco-yaml';

// The workers are built next to this script (…/assets/monaco/dist/), so their URLs follow wherever it is served from.
// document.currentScript is only set while a classic script runs synchronously, which is when this code runs.
const scriptUrl = document.currentScript?.src ?? new URL('assets/monaco/dist/monaco.js', document.baseURI).href;
const workerUrls = {
  yaml: new URL('yaml.worker.js', scriptUrl).href,
  editorWorkerService: new URL('editor.worker.js', scriptUrl).href,
};

function getWorkerUrl(_moduleId, label) {
  return workerUrls[label] ?? workerUrls.editorWorkerService;
}

window.MonacoEnvironment = Object.assign(window.MonacoEnvironment ?? {}, {
  getWorkerUrl,
  getWorker: (moduleId, label) => new Worker(getWorkerUrl(moduleId, label), { name: label }),
});

// The portal's runbook schema; the YAML worker fetches it (same origin, so the auth cookie goes along).
// Resolved against <base href>, so it follows the app's path base.
const defaultSchemaUrl = 'schemas/runbook-v1.json';

function schemaSettings(schemaUrl, fileMatch) {
  return [{ uri: new URL(schemaUrl, document.baseURI).href, fileMatch }];
}

const monacoYaml = configureMonacoYaml(monaco, {
  enableSchemaRequest: true,
  validate: true,
  completion: true,
  hover: true,
  format: { enable: true },
  schemas: schemaSettings(defaultSchemaUrl, ['*']),
});

window.monaco = monaco;
window.rbpMonaco = {
  /** The monaco-yaml handle (update(options), dispose()). */
  yaml: monacoYaml,
  /** Points YAML validation/completion/hover at another schema; fileMatch defaults to every model. */
  configureYamlSchema(schemaUrl, fileMatch = ['*']) {
    return monacoYaml.update({ schemas: schemaSettings(schemaUrl, fileMatch) });
  },
  /**
   * Sets the markers of one owner (e.g. "runbook" for the server-side validator) on the model of a BlazorMonaco
   * editor, by its Id. BlazorMonaco 3.0.0's jsInterop.js has no setModelMarkers of its own.
   * markers: [{ startLineNumber, startColumn, endLineNumber, endColumn, message, severity (8 error, 4 warning, 2 info) }]
   */
  setModelMarkers(editorId, owner, markers) {
    const model = window.blazorMonaco?.editor.getEditor(editorId, true)?.getModel();
    if (model) monaco.editor.setModelMarkers(model, owner, markers ?? []);
  },
};

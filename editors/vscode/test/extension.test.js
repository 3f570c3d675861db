// The extension's manifest and its activation, with `vscode` and the language
// client replaced by recording fakes (VS Code itself cannot run here).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const Module = require('module');
const { EXTENSION } = require('./corpus');

// A workspace folder for the fake `vscode` API: the repository's quickstart example.
const WORKSPACE = path.resolve(__dirname, '..', '..', '..', 'examples', 'quickstart');

const readJson = (name) => JSON.parse(fs.readFileSync(path.join(EXTENSION, name), 'utf8'));

// ------------------------------------------------------------------ manifest

test('package.json contributes the language, the grammar and the server setting', () => {
  const pkg = readJson('package.json');
  const [language] = pkg.contributes.languages;
  assert.equal(language.id, 'iat');
  assert.deepEqual(language.extensions, ['.iat']);
  assert.ok(fs.existsSync(path.join(EXTENSION, language.configuration)));

  const [grammar] = pkg.contributes.grammars;
  assert.equal(grammar.language, 'iat');
  assert.equal(grammar.scopeName, 'source.iat');
  const tm = JSON.parse(fs.readFileSync(path.join(EXTENSION, grammar.path), 'utf8'));
  assert.equal(tm.scopeName, 'source.iat');

  const setting = pkg.contributes.configuration.properties['iat.server.path'];
  assert.equal(setting.default, 'iatc');
  assert.equal(setting.type, 'string');

  assert.equal(pkg.main, './extension.js');
  assert.ok(fs.existsSync(path.join(EXTENSION, pkg.main)));
  assert.ok(pkg.activationEvents.includes('onLanguage:iat'));
  assert.ok(pkg.dependencies['vscode-languageclient']);
  assert.ok(pkg.devDependencies['vscode-textmate']);
  assert.ok(pkg.devDependencies['vscode-oniguruma']);
  assert.ok(pkg.contributes.commands.some((c) => c.command === 'iat.restartServer'));
});

test('package-lock.json pins every dependency and names no registry host', () => {
  const lock = readJson('package-lock.json');
  const pkg = readJson('package.json');
  for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]) {
    const entry = lock.packages[`node_modules/${name}`];
    assert.ok(entry && entry.version && entry.integrity, `${name} is not locked`);
  }
  for (const [name, entry] of Object.entries(lock.packages)) {
    assert.equal(entry.resolved, undefined, `${name} has a resolved URL`);
  }
});

test('language-configuration.json: comments, brackets and auto-closing pairs', () => {
  const config = readJson('language-configuration.json');
  assert.equal(config.comments.lineComment, '#');
  assert.deepEqual(config.brackets.find((b) => b[0] === '{'), ['{', '}']);
  assert.deepEqual(config.brackets.find((b) => b[0] === '['), ['[', ']']);
  const pairs = new Map(config.autoClosingPairs.map((p) => [p.open, p]));
  assert.equal(pairs.get('{').close, '}');
  assert.equal(pairs.get('"').close, '"');
  assert.equal(pairs.get('"""').close, '"""');
  assert.ok(pairs.get('"').notIn.includes('string'));
  const word = new RegExp(`^(?:${config.wordPattern})$`);
  for (const w of ['open-domain_VQA', 'top_p', '-0.5', '512']) assert.match(w, word);
  assert.match('task t {', new RegExp(config.indentationRules.increaseIndentPattern));
  assert.match('  }', new RegExp(config.indentationRules.decreaseIndentPattern));
});

// ---------------------------------------------------------------- activation

/** Load extension.js afresh with fake `vscode` and language client modules. */
function loadExtension(settings = {}, { failStart = false } = {}) {
  const log = { clients: [], errors: [], commands: new Map(), configListeners: [] };
  const vscode = {
    workspace: {
      workspaceFolders: [{ uri: { fsPath: WORKSPACE } }],
      getConfiguration: (section) => {
        assert.equal(section, 'iat');
        return { get: (key, fallback) => (key in settings ? settings[key] : fallback) };
      },
      createFileSystemWatcher: (glob) => ({ glob, dispose() {} }),
      onDidChangeConfiguration: (listener) => {
        log.configListeners.push(listener);
        return { dispose() {} };
      },
    },
    window: {
      createOutputChannel: (name) => ({ name, dispose() {} }),
      showErrorMessage: async (message) => {
        log.errors.push(message);
        return undefined;
      },
    },
    commands: {
      registerCommand: (id, fn) => {
        log.commands.set(id, fn);
        return { dispose() {} };
      },
      executeCommand: async () => undefined,
    },
  };
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions, started: 0, stopped: 0 });
      log.clients.push(this);
    }

    async start() {
      this.started += 1;
      if (failStart) throw new Error('spawn iatc ENOENT');
    }

    async stop() {
      this.stopped += 1;
    }
  }
  const fakes = { vscode, 'vscode-languageclient/node': { LanguageClient } };
  const original = Module._load;
  Module._load = function load(request, parent, isMain) {
    if (Object.prototype.hasOwnProperty.call(fakes, request)) return fakes[request];
    return original.call(this, request, parent, isMain);
  };
  const file = require.resolve('../extension.js');
  delete require.cache[file];
  try {
    return { extension: require(file), log };
  } finally {
    Module._load = original;
  }
}

test('activation starts `iatc lsp` over stdio for .iat documents', async () => {
  const { extension, log } = loadExtension();
  const context = { subscriptions: [] };
  await extension.activate(context);
  assert.equal(log.clients.length, 1);
  const client = log.clients[0];
  assert.equal(client.id, 'iat');
  assert.equal(client.started, 1);
  // No transport: vscode-languageclient would otherwise append `--stdio`.
  const expected = { command: 'iatc', args: ['lsp'], options: { cwd: WORKSPACE } };
  assert.deepEqual(client.serverOptions, { run: expected, debug: expected });
  assert.deepEqual(client.clientOptions.documentSelector.map((s) => s.language), ['iat', 'iat']);
  assert.equal(client.clientOptions.synchronize.fileEvents.glob, '**/*.iat');
  assert.ok(context.subscriptions.length >= 3);

  await extension.deactivate();
  assert.equal(client.stopped, 1);
});

test('`iat.server.path` and `iat.server.args` choose the server; a change restarts it', async () => {
  const settings = { 'server.path': ' /opt/venv/bin/iatc ', 'server.args': ['--verbose', 3] };
  const { extension, log } = loadExtension(settings);
  await extension.activate({ subscriptions: [] });
  assert.deepEqual(log.clients[0].serverOptions.run.command, '/opt/venv/bin/iatc');
  assert.deepEqual(log.clients[0].serverOptions.run.args, ['lsp', '--verbose']);

  settings['server.path'] = 'iatc-dev';
  await log.configListeners[0]({ affectsConfiguration: (s) => s === 'iat.server' });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(log.clients[0].stopped, 1);
  assert.equal(log.clients.length, 2);
  assert.equal(log.clients[1].serverOptions.run.command, 'iatc-dev');

  await log.configListeners[0]({ affectsConfiguration: () => false });
  assert.equal(log.clients.length, 2, 'an unrelated setting restarted the server');

  await log.commands.get('iat.restartServer')();
  assert.equal(log.clients.length, 3);
  await extension.deactivate();
});

test('an empty server path falls back to `iatc`', async () => {
  const { extension, log } = loadExtension({ 'server.path': '  ' });
  await extension.activate({ subscriptions: [] });
  assert.equal(log.clients[0].serverOptions.run.command, 'iatc');
  await extension.deactivate();
});

test('a server that cannot start is reported, not thrown', async () => {
  const { extension, log } = loadExtension({}, { failStart: true });
  await extension.activate({ subscriptions: [] });
  assert.equal(log.errors.length, 1);
  assert.match(log.errors[0], /iatc lsp/);
  assert.match(log.errors[0], /iat\.server\.path/);
  await extension.deactivate();
});

test('the real vscode-languageclient/node loads and has the API extension.js uses', () => {
  // Only the `vscode` module is faked here (any property is a callable stub).
  const stub = (name) => new Proxy(function fake() { return stub(`${name}()`); }, {
    get: (target, prop) => (prop === 'then' ? undefined : stub(`${name}.${String(prop)}`)),
    construct: () => stub(`new ${name}`),
  });
  const original = Module._load;
  Module._load = function load(request, parent, isMain) {
    if (request === 'vscode') return stub('vscode');
    return original.call(this, request, parent, isMain);
  };
  try {
    const { LanguageClient } = require('vscode-languageclient/node');
    assert.equal(typeof LanguageClient, 'function');
    assert.equal(typeof LanguageClient.prototype.start, 'function');
    assert.equal(typeof LanguageClient.prototype.stop, 'function');
  } finally {
    Module._load = original;
  }
});

// Starts the language server exactly as the extension would (server.js) and
// talks LSP to it over stdio with vscode-jsonrpc, the transport library of
// vscode-languageclient.  Needs an `iatc` with the language server:
//
//   IAT_SERVER_PATH=iatc npm test
//
// (tests/test_editor_grammar.py sets it when instraug_dsl.lsp can be imported).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('child_process');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');
const { serverExecutable } = require('../server');

const SERVER_PATH = process.env.IAT_SERVER_PATH;

test('`iatc lsp` answers initialize and publishes diagnostics', { timeout: 60000 }, async (t) => {
  if (!SERVER_PATH) {
    t.skip('IAT_SERVER_PATH is not set (an iatc with the language server)');
    return;
  }
  const rpc = require('vscode-jsonrpc/node');
  const settings = { 'server.path': SERVER_PATH, 'server.args': [] };
  const cwd = os.tmpdir();
  const executable = serverExecutable((key) => settings[key], cwd);
  assert.deepEqual(executable.args, ['lsp']);

  const child = cp.spawn(executable.command, executable.args, { ...executable.options, stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(child.stdout),
    new rpc.StreamMessageWriter(child.stdin),
  );
  const uri = pathToFileURL(path.join(cwd, 'iat-smoke-test.iat')).href;
  const diagnostics = new Promise((resolve) => {
    connection.onNotification('textDocument/publishDiagnostics', (params) => {
      if (params.uri === uri) resolve(params.diagnostics);
    });
  });
  connection.listen();
  try {
    const init = await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      workspaceFolders: null,
      capabilities: {},
    });
    assert.ok(init && init.capabilities, `no capabilities: ${JSON.stringify(init)}`);
    assert.ok(init.capabilities.textDocumentSync !== undefined, 'no document sync');
    await connection.sendNotification('initialized', {});
    await connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'iat', version: 1, text: 'task t {\n  slot q: text\n  instruction i0 = "{questoin}"\n}\n' },
    });
    let timer;
    const found = await Promise.race([
      diagnostics,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no diagnostics; stderr: ${stderr}`)), 30000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.ok(found.length >= 1, 'the undeclared slot was not reported');
    await connection.sendRequest('shutdown');
    await connection.sendNotification('exit');
    assert.equal(await exited, 0, stderr);
  } finally {
    connection.dispose();
    child.kill();
  }
});

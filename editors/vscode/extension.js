// The IAT extension: the TextMate grammar and language configuration are
// declared in package.json; this file starts `iatc lsp` (diagnostics, hover,
// go to definition, completion, formatting) with vscode-languageclient.
'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');
const { DOCUMENT_SELECTOR, serverExecutable } = require('./server');

/** @type {LanguageClient | undefined} */
let client;
/** @type {vscode.OutputChannel | undefined} */
let outputChannel;

function workspaceFolder() {
  const folders = vscode.workspace.workspaceFolders;
  return folders && folders.length > 0 ? folders[0].uri.fsPath : undefined;
}

async function startClient() {
  const config = vscode.workspace.getConfiguration('iat');
  const executable = serverExecutable((key) => config.get(key), workspaceFolder());
  const clientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    synchronize: {
      // Imports make a file's diagnostics depend on other files.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.iat'),
    },
    outputChannel,
  };
  client = new LanguageClient(
    'iat',
    'IAT language server',
    { run: executable, debug: executable },
    clientOptions,
  );
  try {
    await client.start();
  } catch (err) {
    const message = err && err.message ? err.message : String(err);
    client = undefined;
    const choice = await vscode.window.showErrorMessage(
      `Could not start the IAT language server \`${executable.command} lsp\`: ${message}. `
        + 'Install instraug-dsl with its `lsp` extra or set `iat.server.path` to the iatc executable.',
      'Open Settings',
    );
    if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'iat.server');
    }
  }
}

async function stopClient() {
  const running = client;
  client = undefined;
  if (running) {
    await running.stop();
  }
}

async function restartClient() {
  await stopClient();
  await startClient();
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  outputChannel = vscode.window.createOutputChannel('IAT Language Server');
  context.subscriptions.push(
    outputChannel,
    vscode.commands.registerCommand('iat.restartServer', restartClient),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('iat.server')) {
        restartClient();
      }
    }),
  );
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };

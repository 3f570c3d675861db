// How the extension starts the language server: `iatc lsp`, over stdio.
//
// Kept apart from extension.js (and free of the `vscode` module) so tests can
// compute and spawn exactly what VS Code would, without VS Code.
'use strict';

const DEFAULT_SERVER_PATH = 'iatc';

/**
 * The server executable for vscode-languageclient: `iat.server.path` (default
 * `iatc`, looked up on PATH) with the arguments `lsp` and `iat.server.args`.
 * No `transport` is given on purpose: with one, vscode-languageclient would
 * append `--stdio`, which `iatc lsp` does not take; without one it talks to the
 * process over its stdin and stdout all the same.
 *
 * @param {(key: string) => unknown} get reads a setting of the `iat` section
 * @param {string} [cwd] the folder to start the server in
 */
function serverExecutable(get, cwd) {
  const configured = get('server.path');
  const command = typeof configured === 'string' && configured.trim() !== ''
    ? configured.trim()
    : DEFAULT_SERVER_PATH;
  const extra = get('server.args');
  const args = ['lsp', ...(Array.isArray(extra) ? extra.filter((a) => typeof a === 'string') : [])];
  const options = cwd ? { cwd } : {};
  return { command, args, options };
}

/** The client options that do not depend on the `vscode` module. */
const DOCUMENT_SELECTOR = [
  { scheme: 'file', language: 'iat' },
  { scheme: 'untitled', language: 'iat' },
];

module.exports = { DEFAULT_SERVER_PATH, DOCUMENT_SELECTOR, serverExecutable };

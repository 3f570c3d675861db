// Tokenizes `.iat` text with the grammar of this extension, using the TextMate
// engine VS Code itself uses (vscode-textmate on the Oniguruma WebAssembly build).
//
// As a module: `const { loadGrammar, tokenize } = require('./tokenize')`.
// As a program: `node test/tokenize.js --corpus` tokenizes the valid corpus
// of corpus.js (without --corpus: a JSON list of {name, text} on standard
// input) and prints a JSON list of {name, text, lines, endDepth, stoppedEarly,
// loops}, where lines[i] is a list of [start, end, scopes] in code points of
// line i (tests/test_editor_grammar.py compares them with the Lark parser's
// tokens).
'use strict';

// vscode-textmate reports a grammar rule that matches without advancing (and
// would loop) only in debug mode, on the console: turn it on before loading
// the engine, and capture the console while tokenizing.
process.env.VSCODE_TEXTMATE_DEBUG = '1';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const GRAMMAR_PATH = path.join(__dirname, '..', 'syntaxes', 'iat.tmLanguage.json');
/** Per line; a line that takes longer stops early, which the tests report. */
const LINE_TIME_LIMIT_MS = 2000;

let grammarPromise = null;

/** The `source.iat` grammar, loaded once per process. */
function loadGrammar() {
  if (grammarPromise === null) {
    grammarPromise = (async () => {
      const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
      await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
      const registry = new vsctm.Registry({
        onigLib: Promise.resolve({
          createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
          createOnigString: (text) => new oniguruma.OnigString(text),
        }),
        loadGrammar: async (scopeName) => {
          if (scopeName !== 'source.iat') return null;
          return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR_PATH, 'utf8'), GRAMMAR_PATH);
        },
      });
      const grammar = await registry.loadGrammar('source.iat');
      if (!grammar) throw new Error('source.iat did not load');
      return grammar;
    })();
  }
  return grammarPromise;
}

/** Code-point index of each UTF-16 index of `text` (and of its end). */
function codePointIndex(text) {
  const index = new Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; i++) {
    index[i] = cp;
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        index[i + 1] = cp;
        i++;
      }
    }
    cp++;
  }
  index[text.length] = cp;
  return index;
}

/**
 * Tokenize `text` line by line, as the editor does.  Returns
 * {lines: [{text, tokens: [{start, end, text, scopes}]}], endDepth,
 * stoppedEarly, loops}: offsets are code points within the line (a "\r" before
 * "\n" is dropped, as the editor drops it), endDepth the depth of the rule
 * stack after the last line (1: every block and string closed), loops the
 * engine's "endless loop" reports.
 */
function tokenize(grammar, text) {
  const rawLines = text.split('\n');
  let ruleStack = vsctm.INITIAL;
  let stoppedEarly = false;
  const loops = [];
  const lines = [];
  const saved = { log: console.log, warn: console.warn, error: console.error };
  console.log = () => {};
  console.warn = () => {}; // "matching took N ms": timing, checked by the tests themselves
  console.error = (...args) => {
    const message = args.join(' ');
    if (message.includes('endless loop')) loops.push({ line: lines.length + 1, message });
  };
  try {
    for (const raw of rawLines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const result = grammar.tokenizeLine(line, ruleStack, LINE_TIME_LIMIT_MS);
      if (result.stoppedEarly) stoppedEarly = true;
      const cp = codePointIndex(line);
      lines.push({
        text: line,
        tokens: result.tokens
          .map((t) => ({
            start: cp[Math.min(t.startIndex, line.length)],
            end: cp[Math.min(t.endIndex, line.length)],
            text: line.slice(t.startIndex, t.endIndex),
            scopes: t.scopes,
          }))
          .filter((t) => t.end > t.start),
      });
      ruleStack = result.ruleStack;
    }
  } finally {
    console.log = saved.log;
    console.warn = saved.warn;
    console.error = saved.error;
  }
  return { lines, endDepth: ruleStack.depth, stoppedEarly, loops };
}

module.exports = { loadGrammar, tokenize, GRAMMAR_PATH };

if (require.main === module) {
  (async () => {
    const input = process.argv.includes('--corpus')
      ? require('./corpus').validCorpus()
      : JSON.parse(fs.readFileSync(0, 'utf8'));
    const grammar = await loadGrammar();
    const out = input.map(({ name, text }) => {
      const r = tokenize(grammar, text);
      return {
        name,
        text,
        endDepth: r.endDepth,
        stoppedEarly: r.stoppedEarly,
        loops: r.loops,
        lines: r.lines.map((l) => l.tokens.map((t) => [t.start, t.end, t.scopes])),
      };
    });
    process.stdout.write(JSON.stringify(out));
  })().catch((err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  });
}

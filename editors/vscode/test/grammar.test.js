// The TextMate grammar, tokenized by vscode-textmate (the engine of VS Code).
//
//   npm test                        (from editors/vscode, after `npm ci`)
//   IAT_UPDATE_GOLDEN=1 npm test    rewrites test/golden/*.scopes
//
// tests/test_editor_grammar.py runs this file, and also compares every token
// with what the Lark parser makes of the same sources.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { loadGrammar, tokenize, GRAMMAR_PATH } = require('./tokenize');
const { render, KEYWORDS } = require('../syntaxes/build-grammar');
const { EXTENSION, REPO, identitySnippets, validCorpus, brokenCorpus } = require('./corpus');

const UPDATE_GOLDEN = process.env.IAT_UPDATE_GOLDEN === '1';

// ------------------------------------------------------------------ helpers

const innermost = (scopes) => scopes[scopes.length - 1];
/** A scope that says what a piece of text is (not the file or a region). */
const isLeaf = (scope) => scope !== 'source.iat' && !scope.startsWith('meta.');

function tokenizeText(grammar, text) {
  return tokenize(grammar, text);
}

/**
 * The tokens over the `nth` occurrence of `needle` on the line (1-based) of a
 * tokenized text.
 */
function tokensOver(result, line, needle, nth = 0) {
  const { text, tokens } = result.lines[line - 1];
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = text.indexOf(needle, index + 1);
    assert.notEqual(index, -1, `"${needle}" (#${nth}) not on line ${line}: ${text}`);
  }
  const start = Array.from(text.slice(0, index)).length;
  const end = start + Array.from(needle).length;
  const over = tokens.filter((t) => t.start < end && start < t.end);
  assert.ok(over.length > 0, `no token at "${needle}" on line ${line}`);
  return over;
}

/** Every character of `needle` has `scope`. */
function assertScope(result, line, needle, scope, nth = 0) {
  for (const t of tokensOver(result, line, needle, nth)) {
    assert.ok(t.scopes.includes(scope), `"${needle}" on line ${line}: expected ${scope}, got ${t.scopes.join(' ')} on ${JSON.stringify(t.text)}`);
  }
}

/** No character of `needle` has a scope starting with `prefix`. */
function assertNoScope(result, line, needle, prefix, nth = 0) {
  for (const t of tokensOver(result, line, needle, nth)) {
    assert.ok(!t.scopes.some((s) => s.startsWith(prefix)), `"${needle}" on line ${line}: unexpected ${prefix}* in ${t.scopes.join(' ')} on ${JSON.stringify(t.text)}`);
  }
}

function snippet(startsWith) {
  const found = identitySnippets().find((s) => s.text.startsWith(startsWith));
  assert.ok(found, `no identity snippet starts with ${JSON.stringify(startsWith)}`);
  return found.text;
}

/** Problems of a tokenized valid source: see the test of the same name. */
function problems(name, result) {
  const out = [];
  if (result.loops.length) out.push(`${name}: the engine reported an endless loop: ${JSON.stringify(result.loops)}`);
  if (result.stoppedEarly) out.push(`${name}: a line took longer than the time limit`);
  if (result.endDepth !== 1) out.push(`${name}: a block or string is still open at the end (rule stack depth ${result.endDepth})`);
  result.lines.forEach(({ tokens }, i) => {
    for (const t of tokens) {
      const where = `${name}:${i + 1}:${t.start + 1} ${JSON.stringify(t.text)}`;
      if (t.scopes.some((s) => s.includes('invalid'))) out.push(`${where}: invalid scope ${t.scopes.join(' ')}`);
      if (t.text.trim() !== '' && !isLeaf(innermost(t.scopes))) out.push(`${where}: no scope (${t.scopes.join(' ')})`);
    }
  });
  return out;
}

let grammarPromise;
const grammar = () => (grammarPromise ??= loadGrammar());

// -------------------------------------------------------------- the grammar

test('the JSON grammar is the output of syntaxes/build-grammar.js', () => {
  assert.equal(fs.readFileSync(GRAMMAR_PATH, 'utf8'), render(),
    'syntaxes/iat.tmLanguage.json is out of date: run `npm run build-grammar`');
});

test('every keyword of grammar/iat.lark is a keyword of the TextMate grammar', () => {
  const lark = fs.readFileSync(path.join(REPO, 'grammar', 'iat.lark'), 'utf8');
  const words = new Set();
  for (const line of lark.split('\n')) {
    const code = line.replace(/\/\/.*$/, '');
    for (const m of code.matchAll(/"([A-Za-z_][A-Za-z0-9_]*)"/g)) words.add(m[1]);
  }
  assert.ok(words.has('task') && words.has('instruction'), 'could not read the keywords of iat.lark');
  const known = new Set(Object.values(KEYWORDS).flat());
  const missing = [...words].filter((w) => !known.has(w)).sort();
  assert.deepEqual(missing, [], `keywords of iat.lark unknown to syntaxes/build-grammar.js: ${missing.join(', ')}`);
  const json = fs.readFileSync(GRAMMAR_PATH, 'utf8');
  const unused = [...known].filter((w) => !new RegExp(`[^A-Za-z0-9_]${w}[^A-Za-z0-9_]`).test(json));
  assert.deepEqual(unused, [], `keywords listed but matched by no rule: ${unused.join(', ')}`);
});

test('the corpus: templates, examples, identity snippets and the corner cases', () => {
  const names = validCorpus().map((c) => c.name);
  assert.ok(names.filter((n) => n.startsWith('templates/')).length >= 80, 'the template library was not found');
  assert.ok(names.filter((n) => n.startsWith('identity.iat#')).length >= 20, 'the identity corpus was not found');
  assert.ok(names.includes('editors/vscode/test/fixtures/tricky.iat'));
});

test('valid sources: every character of code is scoped, nothing is invalid, every block and string closes', async () => {
  const g = await grammar();
  const started = Date.now();
  const found = [];
  for (const { name, text } of validCorpus()) found.push(...problems(name, tokenizeText(g, text)));
  const elapsed = Date.now() - started;
  assert.deepEqual(found.slice(0, 40), [], `${found.length} problems`);
  assert.ok(elapsed < 30000, `tokenizing the corpus took ${elapsed} ms`);
});

test('comments: `#` to the end of the line, outside strings only', async () => {
  const g = await grammar();
  const r = tokenizeText(g, [
    'task t {  # trailing on the header',
    '  # a whole line',
    '  notes "a # inside a string"  # after a string',
    '  instruction i0 = "x"  # after an instruction',
    '}  # after the block',
    '#=====',
  ].join('\n'));
  assertScope(r, 1, '# trailing on the header', 'comment.line.number-sign.iat');
  assertScope(r, 1, '#', 'punctuation.definition.comment.iat');
  assertScope(r, 2, '# a whole line', 'comment.line.number-sign.iat');
  assertNoScope(r, 3, '# inside a string', 'comment');
  assertScope(r, 3, 'a # inside a string', 'string.quoted.double.iat');
  assertScope(r, 3, '# after a string', 'comment.line.number-sign.iat');
  assertScope(r, 4, '# after an instruction', 'comment.line.number-sign.iat');
  assertScope(r, 5, '}', 'punctuation.section.block.end.iat');
  assertScope(r, 5, '# after the block', 'comment.line.number-sign.iat');
  assertScope(r, 6, '=====', 'comment.line.number-sign.iat');
});

test('keywords by context: a name spelled like a keyword is a name', async () => {
  const g = await grammar();
  const r = tokenizeText(g, snippet('task all {'));
  assertScope(r, 1, 'task', 'keyword.declaration.task.iat');
  assertScope(r, 1, 'all', 'entity.name.type.task.iat');
  assertScope(r, 2, 'slot', 'keyword.other.slot.iat');
  assertScope(r, 2, 'from', 'entity.name.variable.slot.iat', 0);
  assertScope(r, 2, 'text', 'support.type.builtin.iat');
  assertScope(r, 2, 'from', 'keyword.other.from.iat', 1);
  assertScope(r, 2, 'each', 'variable.other.property.iat');
  assertScope(r, 2, 'default', 'variable.other.property.iat');
  assertScope(r, 3, 'pin', 'entity.name.variable.instruction.iat', 0);
  assertScope(r, 3, 'pin', 'keyword.other.pin.iat', 1);
  assertScope(r, 3, '{from}', 'variable.other.placeholder.iat');
  assertScope(r, 7, 'tasks', 'keyword.other.tasks.iat');
  assertScope(r, 7, 'all', 'variable.other.reference.task.iat');
  assertScope(r, 8, 'task', 'variable.other.reference.prompt.iat');

  const s = tokenizeText(g, snippet('sampling s {'));
  assertScope(s, 2, 'plan', 'keyword.other.plan.iat', 0);
  assertScope(s, 2, 'plan', 'variable.other.reference.plan.iat', 1);
  assertScope(s, 3, 'mode', 'keyword.other.mode.iat', 0);
  assertScope(s, 3, 'mode', 'support.constant.mode.iat', 1);

  const p = tokenizeText(g, snippet('default plan paper {'));
  assertScope(p, 1, 'default', 'keyword.declaration.default.iat');
  assertScope(p, 1, 'plan', 'keyword.declaration.plan.iat');
  assertScope(p, 1, 'paper', 'entity.name.function.plan.iat');
  assertScope(p, 11, 'all', 'keyword.other.all.iat');
  assertScope(p, 13, '0', 'constant.numeric.integer.iat');
  assertScope(p, 13, '..', 'keyword.operator.range.iat');
  assertScope(p, 13, '2.0', 'constant.numeric.decimal.iat');
  assertScope(p, 19, 'extends', 'keyword.other.extends.iat');
  assertScope(p, 19, 'paper', 'entity.other.inherited-class.iat');
  assertScope(p, 20, 'step', 'keyword.other.step.iat');
  assertScope(p, 20, '0.05', 'constant.numeric.decimal.iat');
  assertScope(p, 21, 'open-domain_VQA', 'variable.other.reference.task.iat');
});

test('judges: the declaration, its members and the plan member', async () => {
  const g = await grammar();
  const r = tokenizeText(g, [
    'judge same_task {',
    '  model "embedded/qwen-1.5b"',
    '  user """A: {{ original }}',
    'B: {{ rewrite }}"""',
    '  threshold -0.5  # calibrated',
    '}',
    'plan judged extends paper {',
    '  judge none',
    '}',
  ].join('\n'));
  assertScope(r, 1, 'judge', 'keyword.declaration.judge.iat');
  assertScope(r, 1, 'same_task', 'entity.name.function.judge.iat');
  assertScope(r, 2, 'model', 'keyword.other.model.iat');
  assertScope(r, 3, 'original', 'variable.other.jinja');
  assertScope(r, 4, '"""', 'punctuation.definition.string.end.iat');
  assertScope(r, 5, 'threshold', 'keyword.other.threshold.iat');
  assertScope(r, 5, '-0.5', 'constant.numeric.decimal.iat');
  assertScope(r, 8, 'judge', 'keyword.other.judge.iat');
  assertScope(r, 8, 'none', 'variable.other.reference.judge.iat');
  assert.equal(r.endDepth, 1);
});

test('placeholders: `{slot}` in instruction, `each` and `example` strings, never `\\{escaped\\}`', async () => {
  const g = await grammar();
  const r = tokenizeText(g, snippet('task VQA_color {'));
  assertScope(r, 12, '{q}', 'variable.other.placeholder.iat');
  assertScope(r, 12, '{a}', 'variable.other.placeholder.iat');
  assertScope(r, 15, '{question}', 'variable.other.placeholder.iat');
  assertScope(r, 15, '{options}', 'variable.other.placeholder.iat');
  assertScope(r, 15, '{', 'punctuation.definition.placeholder.begin.iat');
  assertScope(r, 15, 'pin', 'keyword.other.pin.iat');

  const e = tokenizeText(g, snippet('task t {\n  instances'));
  assertScope(e, 3, '\\{', 'constant.character.escape.iat');
  assertScope(e, 3, '\\}', 'constant.character.escape.iat');
  assertNoScope(e, 3, 'not a slot', 'variable.other.placeholder');
  assertScope(e, 3, 'not a slot', 'string.quoted.double.template.iat');

  const x = tokenizeText(g, snippet('metaprompt with_examples {'));
  assertScope(x, 3, '{t}', 'variable.other.placeholder.iat', 0);
  assertScope(x, 3, '->', 'keyword.operator.arrow.iat');
  assertScope(x, 3, '{t}', 'variable.other.placeholder.iat', 1);

  // Data has neither placeholders nor Jinja; templates have Jinja, not placeholders.
  const d = tokenizeText(g, [
    'strategies s {',
    '  a: "keep {this} {{ and this }}"',
    '}',
    'metaprompt m {',
    '  user "{x} {{ instruction }}"',
    '  description """{x} {{ y }}"""',
    '}',
  ].join('\n'));
  assertNoScope(d, 2, '{this}', 'variable.other.placeholder');
  assertNoScope(d, 2, '{{ and this }}', 'meta.embedded');
  assertNoScope(d, 5, '{x}', 'variable.other.placeholder');
  assertNoScope(d, 5, '{x}', 'meta.embedded');
  assertScope(d, 5, 'instruction', 'variable.other.jinja');
  assertNoScope(d, 6, '{x} {{ y }}', 'meta.embedded');
  assertNoScope(d, 6, '{x} {{ y }}', 'variable.other.placeholder');
});

test('strings end where they should', async () => {
  const g = await grammar();
  const r = tokenizeText(g, snippet('metaprompt escaped {'));
  // """Line one\n...: the escape is one token and the string goes on.
  assertScope(r, 2, '\\n', 'constant.character.escape.iat');
  assertScope(r, 3, '"quoted"', 'string.quoted.triple.jinja.iat');
  assertScope(r, 3, '\\\\', 'constant.character.escape.iat');
  // ... quotes at the end \"\"""" : two escapes, then the closing quotes.
  const line3 = r.lines[2];
  const last = line3.tokens[line3.tokens.length - 1];
  assert.equal(last.text, '"""');
  assert.ok(last.scopes.includes('punctuation.definition.string.end.iat'), last.scopes.join(' '));
  assertScope(r, 4, '}', 'punctuation.section.block.end.iat');
  assertNoScope(r, 4, '}', 'string');

  const t = tokenizeText(g, snippet('type opts ='));
  assertScope(t, 1, ' | ', 'string.quoted.double.iat');
  assertScope(t, 1, 'prefix', 'keyword.other.prefix.iat');
  assertScope(t, 1, '\\n', 'constant.character.escape.iat');

  const c = tokenizeText(g, snippet('task VQA_color {'));
  assertScope(c, 13, '\\"', 'constant.character.escape.iat');
  assertScope(c, 13, 'nothing', 'string.quoted.double.iat');

  // A plain string cannot span lines: an unterminated one ends at its line.
  const u = tokenizeText(g, 'metaprompt m {\n  user "{{ x\n  system "ok"\n}\n');
  assertScope(u, 3, 'system', 'keyword.other.system.iat');
  assert.equal(u.endDepth, 1);
  // An unclosed Jinja expression never swallows the end of its string.
  const v = tokenizeText(g, 'metaprompt m {\n  user """{{ x """\n  system "{% if "\n}\n');
  assertScope(v, 2, '"""', 'punctuation.definition.string.end.iat', 1);
  assertScope(v, 3, 'system', 'keyword.other.system.iat');
  assert.equal(v.endDepth, 1);
});

test('Jinja in meta-prompt templates, triple-quoted and plain', async () => {
  const g = await grammar();
  const r = tokenizeText(g, snippet('metaprompt direct {'));
  assertScope(r, 4, 'Rewrite the instruction below.', 'string.quoted.triple.jinja.iat');
  assertScope(r, 5, '{%', 'punctuation.section.embedded.begin.jinja');
  assertScope(r, 5, 'if', 'keyword.control.jinja');
  assertScope(r, 5, 'tokens', 'meta.embedded.statement.jinja');
  assertScope(r, 5, '%}', 'punctuation.section.embedded.end.jinja');
  assertScope(r, 5, 'Keep these tokens: ', 'string.quoted.triple.jinja.iat');
  assertNoScope(r, 5, 'Keep these tokens: ', 'meta.embedded');
  assertScope(r, 5, '{{', 'punctuation.section.embedded.begin.jinja');
  assertScope(r, 5, 'tokens', 'variable.other.jinja', 2);
  assertScope(r, 5, '|', 'keyword.operator.filter.jinja');
  assertScope(r, 5, 'join', 'support.function.filter.jinja');
  assertScope(r, 5, ', ', 'string.quoted.double.jinja');
  assertScope(r, 5, '}}', 'punctuation.section.embedded.end.jinja');
  assertScope(r, 6, 'endif', 'keyword.control.jinja');
  assertScope(r, 7, 'instruction', 'meta.embedded.expression.jinja', 1);
  assertNoScope(r, 7, '</instruction>', 'meta.embedded');

  const p = tokenizeText(g, snippet('metaprompt guided {'));
  assertScope(p, 2, 'paper', 'variable.other.reference.strategies.iat');
  assertScope(p, 3, 'strategy', 'variable.other.jinja');
  assertNoScope(p, 3, ' ... ', 'meta.embedded');
  assertScope(p, 3, 'instruction', 'variable.other.jinja');
  assertScope(p, 7, 'count', 'keyword.other.count.iat');
  assertScope(p, 9, 'count', 'variable.other.jinja');
});

test('types, field paths and numbers', async () => {
  const g = await grammar();
  const t = tokenizeText(g, snippet('type opts ='));
  assertScope(t, 2, 'regions', 'entity.name.type.alias.iat');
  assertScope(t, 2, 'region', 'entity.name.type.iat', 1);
  assertScope(t, 2, '[]', 'storage.modifier.list.iat');
  assertScope(t, 2, '?', 'storage.modifier.optional.iat');

  const r = tokenizeText(g, snippet('task visual_dialog_has_hist {'));
  assertScope(r, 2, 'test', 'support.constant.split.iat');
  assertScope(r, 3, 'false', 'constant.language.boolean.iat');
  assertScope(r, 4, 'where', 'keyword.other.where.iat');
  assertScope(r, 5, '[', 'punctuation.section.brackets.begin.iat');
  assertScope(r, 5, '0', 'constant.numeric.integer.iat');
  assertScope(r, 6, 'dialog hist', 'string.quoted.double.iat');
  assertScope(r, 6, '-1', 'constant.numeric.integer.iat');
  assertScope(r, 7, 'b-c', 'variable.other.property.iat');
  assertScope(r, 7, '.', 'punctuation.accessor.iat');
  assertScope(r, 7, '\\t', 'constant.character.escape.iat');

  const c = tokenizeText(g, snippet('task VQA_color {'));
  assertScope(c, 14, 'const', 'support.type.builtin.const.iat');
  assertScope(c, 14, 'const', 'keyword.other.const.iat');
});

test('code points: CRLF line ends and characters outside the BMP', async () => {
  const g = await grammar();
  const r = tokenizeText(g, 'task t {\r\n  instruction i0 = "\u{1F600} {x} \u{1F600}"\r\n}\r\n');
  assertScope(r, 2, '{x}', 'variable.other.placeholder.iat');
  const tok = r.lines[1].tokens.find((t) => t.text === 'x');
  assert.ok(tok, 'no token for x');
  // "  instruction i0 = "😀 {" is 23 code points (24 UTF-16 units).
  assert.equal(tok.start, 23);
  assert.equal(r.endDepth, 1);
});

test('broken and hostile sources never loop, stall or leave the engine stuck', async () => {
  const g = await grammar();
  const hostile = [
    '{'.repeat(20000),
    '"'.repeat(10001),
    `task t {\n  instruction i = "${'{'.repeat(5000)}"\n}`,
    `metaprompt m {\n  user "${'{{'.repeat(5000)}\n}`,
    `metaprompt m {\n  user """${'{% if x %}{{ ('.repeat(2000)}\n${'\n'.repeat(2000)}`,
    `plan p {\n  tasks ${'a, '.repeat(5000)}b\n}`,
    `task ${'x'.repeat(200000)} {}`,
    `task t {\n  slot s: text from ${'a.'.repeat(20000)}b\n}`,
    `task t {\n  slot s: text from a${'["\\"'.repeat(5000)}\n}`,
    '"""\\',
    'task t { instruction i = "\\',
  ];
  const started = Date.now();
  const found = [];
  for (const { name, text } of [...brokenCorpus(), ...hostile.map((text, i) => ({ name: `hostile#${i}`, text }))]) {
    const t0 = Date.now();
    const r = tokenizeText(g, text);
    if (r.loops.length) found.push(`${name}: endless loop ${JSON.stringify(r.loops[0])}`);
    if (r.stoppedEarly) found.push(`${name}: stopped early`);
    const ms = Date.now() - t0;
    if (ms > 5000) found.push(`${name}: took ${ms} ms`);
  }
  assert.deepEqual(found, []);
  assert.ok(brokenCorpus().length >= 10, 'the broken corpus was not found');
  assert.ok(Date.now() - started < 60000);
});

// ------------------------------------------------------------------- golden

/** One line per non-blank token: `line:col "text" scopes` (without source.iat). */
function scopeListing(result) {
  const out = [];
  result.lines.forEach(({ tokens }, i) => {
    for (const t of tokens) {
      if (t.text.trim() === '') continue;
      out.push(`${i + 1}:${t.start + 1} ${JSON.stringify(t.text)} ${t.scopes.slice(1).join(' ')}`);
    }
  });
  return `${out.join('\n')}\n`;
}

for (const [file, start] of [
  ['task.scopes', 'task VQA_color {'],
  ['metaprompt.scopes', 'metaprompt direct {'],
]) {
  test(`golden scopes: ${file} (identity snippet "${start}")`, async () => {
    const g = await grammar();
    const listing = scopeListing(tokenizeText(g, snippet(start)));
    const golden = path.join(EXTENSION, 'test', 'golden', file);
    if (UPDATE_GOLDEN) fs.writeFileSync(golden, listing);
    assert.equal(listing, fs.readFileSync(golden, 'utf8'),
      `scopes changed: if intended, rerun with IAT_UPDATE_GOLDEN=1 and review test/golden/${file}`);
  });
}

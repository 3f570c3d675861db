// The `.iat` sources the grammar tests tokenize: every snippet of the identity
// corpus, every file of the template library and the examples, and this
// folder's own corner cases.  All of them are valid syntax.
'use strict';

const fs = require('fs');
const path = require('path');

const EXTENSION = path.resolve(__dirname, '..');
/** The repository; IAT_REPO_ROOT points at it when the extension folder is a copy. */
const REPO = process.env.IAT_REPO_ROOT
  ? path.resolve(process.env.IAT_REPO_ROOT)
  : path.resolve(EXTENSION, '..', '..');

function iatFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...iatFiles(full));
    else if (entry.name.endsWith('.iat')) out.push(full);
  }
  return out.sort();
}

/** The snippets of tests/fixtures/identity.iat (separated by `#=====` lines). */
function identitySnippets() {
  const text = fs.readFileSync(path.join(REPO, 'tests', 'fixtures', 'identity.iat'), 'utf8');
  return text.split(/^#=====\r?\n/m).map((snippet, i) => ({ name: `identity.iat#${i}`, text: snippet }));
}

/** [{name, text}] of every valid source the tests use. */
function validCorpus() {
  const items = identitySnippets();
  const files = [
    ...iatFiles(path.join(REPO, 'templates')),
    ...iatFiles(path.join(REPO, 'examples')),
  ];
  for (const file of files) {
    items.push({ name: path.relative(REPO, file).split(path.sep).join('/'), text: fs.readFileSync(file, 'utf8') });
  }
  for (const file of iatFiles(path.join(EXTENSION, 'test', 'fixtures'))) {
    const name = path.posix.join('editors', 'vscode', ...path.relative(EXTENSION, file).split(path.sep));
    items.push({ name, text: fs.readFileSync(file, 'utf8') });
  }
  return items;
}

/** Sources with syntax errors (the diagnostics goldens): only robustness is checked. */
function brokenCorpus() {
  return [
    ...iatFiles(path.join(REPO, 'tests', 'golden', 'diagnostics')),
    ...iatFiles(path.join(REPO, 'tests', 'fixtures', 'broken')),
  ].map((file) => ({ name: path.relative(REPO, file), text: fs.readFileSync(file, 'utf8') }));
}

module.exports = { EXTENSION, REPO, identitySnippets, validCorpus, brokenCorpus };

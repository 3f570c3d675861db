#!/usr/bin/env node
// Builds syntaxes/iat.tmLanguage.json, the TextMate grammar of `.iat` files.
//
//   node syntaxes/build-grammar.js           write the JSON
//   node syntaxes/build-grammar.js --check   exit 1 if the JSON is not up to date
//
// The grammar is written here, in JavaScript, so the regular expressions that
// recur in dozens of rules (a name, a keyword's word boundaries, a field path)
// are spelled once.  The JSON is what VS Code loads; a test checks that it is
// the output of this file.
//
// How the grammar follows grammar/iat.lark: every statement starts with a
// keyword, and each declaration's body is a `{ ... }` region with its own
// members, so a word is a keyword only where the language can take that
// keyword.  A keyword's operands are matched with it (`use NAME`, `slot NAME:
// TYPE`, `from PATH`), so a name spelled like a keyword (`task all`, `use
// task`, `slot from: text`) is scoped as a name.  Strings are "..." on one line
// or """...""" over several; instruction, `each` and `example` strings know
// `{slot}` placeholders, the `system` and `user` templates of meta-prompts,
// bootstrap prompts and judges know Jinja.
'use strict';

const fs = require('fs');
const path = require('path');

// ------------------------------------------------------------ regex fragments

/** A name (NAME of iat.lark): task names may contain hyphen groups. */
const NAME = '[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*';
/** Where a word may start and end (a hyphen joins words into one name). */
const WORD_START = '(?<![A-Za-z0-9_-])';
const WORD_END = '(?![A-Za-z0-9_]|-[A-Za-z0-9_])';
const kw = (word) => `${WORD_START}${word}${WORD_END}`;
const anyKw = (words) => `${WORD_START}(?:${words.join('|')})${WORD_END}`;
const name = `${WORD_START}${NAME}`;
/** A plain string on one line (quoted path keys). */
const PLAIN_STRING = '"(?:[^"\\\\]|\\\\.)*"';
/** A field path: meta_data.object_regions.x, region[0], dialog_hist[-1], a["key 1"]. */
const FIELD_PATH = `${NAME}(?:\\s*\\.\\s*${NAME}|\\s*\\[\\s*(?:-?[0-9]+|${PLAIN_STRING})\\s*\\])*`;
const BUILTIN_TYPES = ['text', 'bbox', 'choices', 'label', 'choice'];

// ---------------------------------------------------------------- keywords

/**
 * Every keyword of grammar/iat.lark and where it is scoped.  The test compares
 * this list with the quoted words of the Lark grammar, so a keyword added there
 * fails the test until it is added here (and given a rule below).
 */
const KEYWORDS = {
  declaration: ['import', 'type', 'task', 'metaprompt', 'strategies', 'bootstrap', 'plan',
    'sampling', 'judge', 'default'],
  member: ['category', 'split', 'source', 'notes', 'augment', 'instances', 'where', 'target',
    'slot', 'from', 'each', 'default', 'instruction', 'pin', 'system', 'user', 'description',
    'strategies', 'count', 'take', 'example', 'extends', 'use', 'samples', 'temperature',
    'top_p', 'max_tokens', 'model', 'seed', 'iterations', 'attempts', 'tasks', 'filter',
    'length_ratio', 'placeholders', 'dedup', 'reject', 'language', 'raw_share', 'mode',
    'per_task', 'step', 'all', 'not', 'judge', 'threshold', 'sep', 'prefix', 'const', 'plan',
    'names', 'shuffle', 'enumerate', 'of', 'carry'],
  boolean: ['true', 'false'],
  builtinType: [...BUILTIN_TYPES, 'const'],
};

// ------------------------------------------------------------- rule helpers

const scope = (s) => `${s}.iat`;

/** `keyword NAME` with the name scoped as `nameScope`. */
function keywordName(word, keywordScope, nameScope) {
  return {
    match: `(${kw(word)})\\s+(${name})`,
    captures: { 1: { name: keywordScope }, 2: { name: nameScope } },
  };
}

/**
 * Keywords alone (when their operands are elsewhere, or on another line);
 * `kind` names the scope: `keyword.KIND.WORD.iat`.
 */
function keywords(words, kind = 'other') {
  return { match: anyKw(words), name: scope(`keyword.${kind}.$0`) };
}

/** A region `keyword STRING` whose string is of a special kind. */
function keywordThenString(words, stringRules) {
  return {
    begin: `(${anyKw(words)})`,
    beginCaptures: { 1: { name: scope('keyword.other.$1') } },
    // Ends right after the string, or at anything that cannot start one.
    end: '(?<=")|(?=[^\\s"])',
    patterns: stringRules.map((r) => ({ include: r })),
  };
}

/** A `{ ... }` declaration whose header `header` has been matched by `begin`. */
function block(begin, captures, members, contentScope) {
  return {
    begin,
    beginCaptures: captures,
    end: '\\}',
    endCaptures: { 0: { name: scope('punctuation.section.block.end') } },
    name: contentScope,
    patterns: [
      { include: '#comment' },
      { match: '\\{', name: scope('punctuation.section.block.begin') },
      ...members,
    ],
  };
}

/** A comma-separated list of names after a keyword (`tasks a, b`, `reject x, y`). */
function nameList(word, keywordScope, nameScope) {
  return {
    begin: `(${kw(word)})\\s+`,
    beginCaptures: { 1: { name: keywordScope } },
    // Ends after a name that no comma follows (on this line).
    end: '(?<=[A-Za-z0-9_])(?!\\s*,)',
    patterns: [
      { include: '#comment' },
      { match: name, name: nameScope },
      { match: ',', name: scope('punctuation.separator.comma') },
    ],
  };
}

// ------------------------------------------------------------------ strings

const ESCAPES = [
  { match: '\\\\u[0-9A-Fa-f]{4}', name: scope('constant.character.escape.unicode') },
  { match: '\\\\[\\\\"ntr{}]', name: scope('constant.character.escape') },
  { match: '\\\\(?:.|$)', name: scope('invalid.illegal.escape') },
];

const PLACEHOLDERS = [
  {
    // {name}: a slot (instructions), an element field (`each`), an example's mark.
    match: '(\\{)([A-Za-z_][A-Za-z0-9_]*)(\\})',
    name: scope('variable.other.placeholder'),
    captures: {
      1: { name: scope('punctuation.definition.placeholder.begin') },
      3: { name: scope('punctuation.definition.placeholder.end') },
    },
  },
  // E032 (braces around something that is not a name) and E031 (a stray brace).
  { match: '\\{[^{}"\\n]*\\}', name: scope('invalid.illegal.placeholder') },
  { match: '[{}]', name: scope('invalid.illegal.brace') },
];

/** `each` formats: a placeholder is a field access, `{key}`, `{value[0]}`, `{a.b}`. */
const EACH_PLACEHOLDERS = [
  {
    match: '(\\{)([A-Za-z_][A-Za-z0-9_]*)((?:\\.[A-Za-z_][A-Za-z0-9_]*|\\[-?[0-9]+\\])*)(\\})',
    name: scope('variable.other.placeholder'),
    captures: {
      1: { name: scope('punctuation.definition.placeholder.begin') },
      3: {
        patterns: [
          { match: '\\.', name: scope('punctuation.accessor') },
          { match: '[\\[\\]]', name: scope('punctuation.section.brackets') },
          { match: '-?[0-9]+', name: scope('constant.numeric.integer') },
        ],
      },
      4: { name: scope('punctuation.definition.placeholder.end') },
    },
  },
  ...PLACEHOLDERS.slice(1),
];

function stringRule(kind, triple, extra) {
  const quote = triple ? '"""' : '"';
  return {
    name: scope(`string.quoted.${triple ? 'triple' : 'double'}${kind ? `.${kind}` : ''}`),
    begin: quote,
    beginCaptures: { 0: { name: scope('punctuation.definition.string.begin') } },
    // A "..." string ends at its line's end when unterminated (E002).
    end: triple ? quote : '(")|$',
    endCaptures: triple
      ? { 0: { name: scope('punctuation.definition.string.end') } }
      : { 1: { name: scope('punctuation.definition.string.end') } },
    patterns: [...extra, { include: '#escapes' }],
  };
}

// ------------------------------------------------------------------- Jinja

/**
 * Jinja inside a template string.  The IAT string is unescaped before Jinja
 * reads it, so inside "..." a Jinja string literal is written \"...\", and a
 * bare `"` (or `"""` in a triple-quoted string) always ends the IAT string:
 * every Jinja region ends in front of it, so an unclosed `{{` never swallows the
 * rest of the file.
 */
function jinjaRules(ctx) {
  const triple = ctx === 'triple';
  const stop = triple ? '(?=""")' : '(?=")|$';
  const inner = `#jinja-inner-${ctx}`;
  return {
    [`jinja-${ctx}`]: {
      patterns: [
        {
          name: 'comment.block.jinja',
          begin: '\\{#',
          end: `#\\}|${stop}`,
          captures: { 0: { name: 'punctuation.definition.comment.jinja' } },
        },
        {
          name: 'meta.embedded.statement.jinja',
          begin: '\\{%[-+]?',
          end: `[-+]?%\\}|${stop}`,
          beginCaptures: { 0: { name: 'punctuation.section.embedded.begin.jinja' } },
          endCaptures: { 0: { name: 'punctuation.section.embedded.end.jinja' } },
          patterns: [
            {
              match: '\\G\\s*(end[a-z]+|if|elif|else|for|set|macro|call|filter|with|block|'
                + 'extends|include|import|from|raw|autoescape|do|break|continue|trans|'
                + 'pluralize)\\b',
              captures: { 1: { name: 'keyword.control.jinja' } },
            },
            { include: inner },
          ],
        },
        {
          name: 'meta.embedded.expression.jinja',
          begin: '\\{\\{[-+]?',
          end: `[-+]?\\}\\}|${stop}`,
          beginCaptures: { 0: { name: 'punctuation.section.embedded.begin.jinja' } },
          endCaptures: { 0: { name: 'punctuation.section.embedded.end.jinja' } },
          patterns: [{ include: inner }],
        },
      ],
    },
    [`jinja-inner-${ctx}`]: {
      patterns: [
        triple
          ? {
            name: 'string.quoted.double.jinja',
            begin: '"',
            end: '(?=""")|"',
            patterns: [{ include: '#escapes' }],
          }
          : {
            name: 'string.quoted.double.jinja',
            begin: '\\\\"',
            end: '\\\\"|(?=")',
            patterns: [{ include: '#escapes' }],
          },
        {
          name: 'string.quoted.single.jinja',
          begin: "'",
          end: `'|${stop}`,
          patterns: [{ include: '#escapes' }],
        },
        { include: '#escapes' },
        { match: '\\b(?:and|or|not|in|is)\\b', name: 'keyword.operator.logical.jinja' },
        {
          match: '\\b(?:if|else|elif|for|recursive|as|with|without|context|ignore|missing|'
            + 'import|from|set|endset)\\b',
          name: 'keyword.control.jinja',
        },
        { match: '\\b(?:true|false|none|True|False|None)\\b', name: 'constant.language.jinja' },
        { match: '\\b[0-9][0-9_]*(?:\\.[0-9_]+)?(?:[eE][-+]?[0-9]+)?\\b', name: 'constant.numeric.jinja' },
        {
          match: '(\\|)\\s*([A-Za-z_][A-Za-z0-9_]*)',
          captures: {
            1: { name: 'keyword.operator.filter.jinja' },
            2: { name: 'support.function.filter.jinja' },
          },
        },
        {
          match: '(\\.)\\s*([A-Za-z_][A-Za-z0-9_]*)',
          captures: {
            1: { name: 'punctuation.accessor.jinja' },
            2: { name: 'variable.other.property.jinja' },
          },
        },
        { match: '[A-Za-z_][A-Za-z0-9_]*(?=\\s*\\()', name: 'entity.name.function.jinja' },
        { match: '[A-Za-z_][A-Za-z0-9_]*', name: 'variable.other.jinja' },
        { match: '==|!=|<=|>=|\\*\\*|//|[-+*/%~<>=]', name: 'keyword.operator.jinja' },
        { match: '[()]', name: 'punctuation.section.parens.jinja' },
        { match: '[\\[\\]]', name: 'punctuation.section.brackets.jinja' },
        // A dict's braces; `}}` is left to the end of the expression.
        { match: '\\{|\\}(?!\\})', name: 'punctuation.section.braces.jinja' },
        { match: '[,:]', name: 'punctuation.separator.jinja' },
      ],
    },
  };
}

// ------------------------------------------------------------- field paths

const fieldPath = (index) => ({
  [index]: { name: scope('meta.field-path'), patterns: [{ include: '#field-path-inner' }] },
});

// ------------------------------------------------------------------ members

const K = (w) => scope(`keyword.other.${w}`);
const DECL = (w) => scope(`keyword.declaration.${w}`);
const REF = (kind) => scope(`variable.other.reference.${kind}`);
const VALUE = (kind) => scope(`support.constant.${kind}`);

/** The type after `=` (type aliases) or `:` (slots). */
const TYPE_AFTER = `(?:(${kw('const')})|(${anyKw(BUILTIN_TYPES)})|(${name}))`;
const typeCaptures = (first) => ({
  [first]: { name: `${scope('support.type.builtin.const')} ${K('const')}` },
  [first + 1]: { name: scope('support.type.builtin') },
  [first + 2]: { name: scope('entity.name.type') },
});

/** `extends BASE` when the header breaks across lines. */
const EXTENDS = keywordName('extends', K('extends'), scope('entity.other.inherited-class'));

/** `system`/`user` (Jinja templates), `description`, `model`: prompts and judges. */
const PROMPT_TEXT = [
  keywordThenString(['system', 'user'], ['#string-jinja-triple', '#string-jinja-double']),
  keywords(['system', 'user']),
  keywords(['description']),
];

const grammar = {
  $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
  name: 'IAT',
  scopeName: 'source.iat',
  fileTypes: ['iat'],
  patterns: [
    { include: '#comment' },
    { include: '#import' },
    { include: '#type-declaration' },
    { include: '#task' },
    { include: '#metaprompt' },
    { include: '#strategies' },
    { include: '#bootstrap' },
    { include: '#plan' },
    { include: '#sampling' },
    { include: '#judge' },
    { include: '#type-expression' },
    { include: '#strings' },
    keywords(['import', 'type', 'task', 'metaprompt', 'strategies', 'bootstrap', 'plan',
      'sampling', 'judge', 'default'], 'declaration'),
  ],
  repository: {
    comment: {
      match: '(#).*$',
      name: scope('comment.line.number-sign'),
      captures: { 1: { name: scope('punctuation.definition.comment') } },
    },
    escapes: { patterns: ESCAPES },
    strings: { patterns: [{ include: '#string-triple' }, { include: '#string-double' }] },
    'string-triple': stringRule('', true, []),
    'string-double': stringRule('', false, []),
    'placeholder-strings': {
      patterns: [{ include: '#string-placeholder-triple' }, { include: '#string-placeholder-double' }],
    },
    'each-strings': {
      patterns: [{ include: '#string-each-triple' }, { include: '#string-each-double' }],
    },
    'string-each-triple': stringRule('template.each', true, EACH_PLACEHOLDERS),
    'string-each-double': stringRule('template.each', false, EACH_PLACEHOLDERS),
    'string-placeholder-triple': stringRule('template', true, PLACEHOLDERS),
    'string-placeholder-double': stringRule('template', false, PLACEHOLDERS),
    'string-jinja-triple': stringRule('jinja', true, [{ include: '#jinja-triple' }]),
    'string-jinja-double': stringRule('jinja', false, [{ include: '#jinja-double' }]),
    ...jinjaRules('triple'),
    ...jinjaRules('double'),
    numbers: {
      patterns: [
        { match: '(?<![A-Za-z0-9_])-?[0-9]+\\.[0-9]+(?![A-Za-z0-9_])', name: scope('constant.numeric.decimal') },
        { match: '(?<![A-Za-z0-9_])-?[0-9]+(?![A-Za-z0-9_])', name: scope('constant.numeric.integer') },
        { match: '\\.\\.', name: scope('keyword.operator.range') },
        { match: ',', name: scope('punctuation.separator.comma') },
      ],
    },
    'field-path-inner': {
      patterns: [
        { match: '\\.', name: scope('punctuation.accessor') },
        { match: '\\[', name: scope('punctuation.section.brackets.begin') },
        { match: '\\]', name: scope('punctuation.section.brackets.end') },
        { match: '-?[0-9]+', name: scope('constant.numeric.integer') },
        { include: '#string-double' },
        { match: NAME, name: scope('variable.other.property') },
      ],
    },

    // ---- top level

    import: { match: `(${kw('import')})`, captures: { 1: { name: scope('keyword.control.import') } } },
    'type-declaration': {
      match: `(${kw('type')})\\s+(${name})\\s*(=)(?:\\s*${TYPE_AFTER})?`,
      captures: {
        1: { name: DECL('type') },
        2: { name: scope('entity.name.type.alias') },
        3: { name: scope('keyword.operator.assignment') },
        ...typeCaptures(4),
      },
    },
    // What may follow a type: `[]`, `?`, `sep "..."`, `prefix "..."`, `names "a", "b"`,
    // `shuffle BOOL`, `enumerate "..."`, `of SLOT`.
    'type-expression': {
      patterns: [
        { match: '\\[\\]', name: scope('storage.modifier.list') },
        { match: '\\?', name: scope('storage.modifier.optional') },
        keywordName('of', K('of'), REF('slot')),
        keywords(['sep', 'prefix', 'names', 'shuffle', 'enumerate', 'of']),
        { match: kw('(?:true|false)'), name: scope('constant.language.boolean') },
        { match: ',', name: scope('punctuation.separator.comma') },
        { match: kw('const'), name: `${scope('support.type.builtin.const')} ${K('const')}` },
      ],
    },

    // ---- tasks

    task: block(
      `(${kw('task')})\\s+(${name})`,
      { 1: { name: DECL('task') }, 2: { name: scope('entity.name.type.task') } },
      [
        { include: '#instruction' },
        {
          match: `(${kw('slot')})\\s+(${name})(?:\\s*(:)(?:\\s*${TYPE_AFTER})?)?`,
          captures: {
            1: { name: K('slot') },
            2: { name: scope('entity.name.variable.slot') },
            3: { name: scope('punctuation.separator.type') },
            ...typeCaptures(4),
          },
        },
        {
          match: `(${kw('target')})\\s+(${kw('from')})\\s+(${FIELD_PATH})`,
          captures: { 1: { name: K('target') }, 2: { name: K('from') }, ...fieldPath(3) },
        },
        {
          match: `(${kw('from')})\\s+(${FIELD_PATH})`,
          captures: { 1: { name: K('from') }, ...fieldPath(2) },
        },
        {
          match: `(${kw('where')})(?:\\s+(${kw('not')}))?\\s+(${FIELD_PATH})`,
          captures: {
            1: { name: K('where') },
            2: { name: scope('keyword.operator.logical.not') },
            ...fieldPath(3),
          },
        },
        keywordName('split', K('split'), VALUE('split')),
        keywordThenString(['each'], ['#each-strings']),
        keywords(['category', 'split', 'source', 'notes', 'augment', 'instances', 'where',
          'target', 'from', 'slot', 'each', 'default', 'instruction']),
        keywords(['not'], 'operator.logical'),
        { match: kw('(?:true|false)'), name: scope('constant.language.boolean') },
        { include: '#type-expression' },
        { include: '#strings' },
      ],
      scope('meta.block.task'),
    ),
    // `instruction NAME = STRING [STRING | pin STRING]... [-> STRING]`, over as
    // many lines as it takes: it ends at the first thing that is not a string,
    // `pin` or the `->` of its target.
    instruction: {
      name: scope('meta.instruction'),
      begin: `(${kw('instruction')})\\s+(${name})(?:\\s*(=))?`,
      beginCaptures: {
        1: { name: K('instruction') },
        2: { name: scope('entity.name.variable.instruction') },
        3: { name: scope('keyword.operator.assignment') },
      },
      end: `(?=[^\\s"#=-])(?!${kw('pin')})|(?=-(?!>))`,
      patterns: [
        { include: '#comment' },
        { match: kw('pin'), name: K('pin') },
        { match: '=', name: scope('keyword.operator.assignment') },
        { match: '->', name: scope('keyword.operator.arrow') },
        { include: '#placeholder-strings' },
      ],
    },

    // ---- meta-prompts, strategies, bootstrap prompts

    metaprompt: block(
      `(${kw('metaprompt')})\\s+(${name})(?:\\s+(${kw('extends')})\\s+(${name}))?`,
      {
        1: { name: DECL('metaprompt') },
        2: { name: scope('entity.name.function.metaprompt') },
        3: { name: K('extends') },
        4: { name: scope('entity.other.inherited-class') },
      },
      [{ include: '#prompt-members' }],
      scope('meta.block.metaprompt'),
    ),
    bootstrap: block(
      `(${kw('bootstrap')})\\s+(${name})`,
      { 1: { name: DECL('bootstrap') }, 2: { name: scope('entity.name.function.bootstrap') } },
      [{ include: '#prompt-members' }],
      scope('meta.block.bootstrap'),
    ),
    'prompt-members': {
      patterns: [
        ...PROMPT_TEXT,
        keywordName('strategies', K('strategies'), REF('strategies')),
        {
          // example "INSTRUCTION" -> "REWRITE"
          begin: `(${kw('example')})`,
          beginCaptures: { 1: { name: K('example') } },
          end: '(?=[^\\s"#-])|(?=-(?!>))',
          patterns: [
            { include: '#comment' },
            { match: '->', name: scope('keyword.operator.arrow') },
            { include: '#placeholder-strings' },
          ],
        },
        EXTENDS,
        keywords(['strategies', 'count', 'take', 'example', 'extends']),
        { include: '#numbers' },
        { include: '#strings' },
      ],
    },
    strategies: block(
      `(${kw('strategies')})\\s+(${name})`,
      { 1: { name: DECL('strategies') }, 2: { name: scope('entity.name.namespace.strategies') } },
      [
        {
          match: `(${name})\\s*(:)`,
          captures: {
            1: { name: scope('entity.name.variable.strategy') },
            2: { name: scope('punctuation.separator.key-value') },
          },
        },
        { include: '#strings' },
      ],
      scope('meta.block.strategies'),
    ),

    // ---- judges

    judge: block(
      `(${kw('judge')})\\s+(${name})`,
      { 1: { name: DECL('judge') }, 2: { name: scope('entity.name.function.judge') } },
      [
        ...PROMPT_TEXT,
        keywords(['model', 'threshold']),
        { include: '#numbers' },
        { include: '#strings' },
      ],
      scope('meta.block.judge'),
    ),

    // ---- augmentation plans

    plan: block(
      `(?:(${kw('default')})\\s+)?(${kw('plan')})\\s+(${name})(?:\\s+(${kw('extends')})\\s+(${name}))?`,
      {
        1: { name: DECL('default') },
        2: { name: DECL('plan') },
        3: { name: scope('entity.name.function.plan') },
        4: { name: K('extends') },
        5: { name: scope('entity.other.inherited-class') },
      },
      [
        {
          match: `(${kw('use')})\\s+(${name})(?:\\s+(${kw('samples')}))?`,
          captures: { 1: { name: K('use') }, 2: { name: REF('prompt') }, 3: { name: K('samples') } },
        },
        {
          match: `(${kw('tasks')})\\s+(${kw('all')}|${kw('category')})`,
          captures: { 1: { name: K('tasks') }, 2: { name: scope('keyword.other.$2') } },
        },
        nameList('tasks', K('tasks'), REF('task')),
        keywordName('judge', K('judge'), REF('judge')),
        EXTENDS,
        {
          name: scope('meta.block.filter'),
          begin: `(${kw('filter')})`,
          beginCaptures: { 1: { name: K('filter') } },
          end: '\\}',
          endCaptures: { 0: { name: scope('punctuation.section.block.end') } },
          patterns: [
            { include: '#comment' },
            { match: '\\{', name: scope('punctuation.section.block.begin') },
            keywordName('placeholders', K('placeholders'), VALUE('placeholders')),
            keywordName('language', K('language'), VALUE('language')),
            nameList('reject', K('reject'), VALUE('reject')),
            keywords(['length_ratio', 'placeholders', 'dedup', 'reject', 'language']),
            { include: '#numbers' },
          ],
        },
        keywords(['use', 'samples', 'temperature', 'top_p', 'max_tokens', 'model', 'seed',
          'iterations', 'attempts', 'tasks', 'step', 'judge', 'all', 'category', 'extends']),
        { include: '#numbers' },
        { include: '#strings' },
      ],
      scope('meta.block.plan'),
    ),

    // ---- sampling plans

    sampling: block(
      `(${kw('sampling')})\\s+(${name})`,
      { 1: { name: DECL('sampling') }, 2: { name: scope('entity.name.function.sampling') } },
      [
        keywordName('plan', K('plan'), REF('plan')),
        keywordName('mode', K('mode'), VALUE('mode')),
        {
          // carry PATH, PATH...: ends after a path that no comma follows (on this line).
          begin: `(${kw('carry')})\\s+`,
          beginCaptures: { 1: { name: K('carry') } },
          end: '(?<=[A-Za-z0-9_\\]])(?!\\s*[,.\\[\\]])',
          contentName: scope('meta.field-path'),
          patterns: [
            { include: '#comment' },
            { match: ',', name: scope('punctuation.separator.comma') },
            { include: '#field-path-inner' },
          ],
        },
        keywords(['plan', 'instances', 'raw_share', 'mode', 'per_task', 'seed', 'carry']),
        { include: '#numbers' },
        { include: '#strings' },
      ],
      scope('meta.block.sampling'),
    ),
  },
};

// --------------------------------------------------------------------- main

const OUT = path.join(__dirname, 'iat.tmLanguage.json');
const HEADER = 'Generated by syntaxes/build-grammar.js: edit that file and run `npm run build-grammar`.';

function render() {
  return `${JSON.stringify({ information_for_contributors: [HEADER], ...grammar }, null, 2)}\n`;
}

module.exports = { grammar, render, KEYWORDS, OUT };

if (require.main === module) {
  const text = render();
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
    if (current !== text) {
      console.error(`${OUT} is out of date: run \`npm run build-grammar\``);
      process.exit(1);
    }
  } else {
    fs.writeFileSync(OUT, text);
  }
}

"""Known-bad snippets that name a syntax error the way a user thinks of it.

``parser.py`` feeds a failing parse to Lark's ``match_examples``: when the
parser fails in the same state as one of these snippets, the label becomes
the message.  Add a snippet here whenever a syntax error message confuses
someone (and a golden test for it).
"""

from __future__ import annotations

from collections.abc import Mapping

SYNTAX_ERROR_EXAMPLES: Mapping[str, tuple[str, ...]] = {
    'an instruction needs a name and `=`, e.g. `instruction i0 = "..."`': (
        'task t { instruction "x" }',
        'task t { instruction = "x" }',
        'task t { instruction i0 "x" }',
    ),
    "a slot needs a type, e.g. `slot question: text from question`": (
        "task t { slot q from q }",
        "task t { slot q }",
        "task t { slot q: }",
    ),
    "an instruction's text must be a string literal in double quotes": (
        "task t { instruction i0 = x }",
        "task t { instruction i0 = 'x' }",
    ),
    "`pin` must be followed by a string literal": (
        'task t { instruction i0 = "x" pin }',
        'task t { instruction i0 = "x" pin x }',
    ),
    "a temperature range needs a step, e.g. `temperature 0.5..1.0 step 0.05`": (
        "plan p { temperature 0.5..1.0 }",
        "plan p { temperature 0.5..1.0 top_p 0.9 }",
    ),
    "declarations must start with a keyword such as `task`, `plan` or `metaprompt`": (
        "foo",
        "foo bar",
        "tasks t { }",
    ),
    "a block name is missing, e.g. `task my_task { ... }`": (
        "task { }",
        "plan { }",
        "metaprompt { }",
    ),
}

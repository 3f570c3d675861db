"""A small FLAN-style templates.py for examples/flan (written for this project).

The layout is FLAN's (`PATTERNS = {"task": [(input template, target template), ...]}`,
as in FLAN v2's `flan/v2/templates.py`); the wording is our own. `iatc import flan`
reads this file with `ast` and never runs it.
"""

# A shared suffix, as real template files sometimes build their strings from pieces.
# A pair that uses it is not a literal, so the import reports it instead of guessing.
ASK = "\n\nAnswer the question."

PATTERNS = {
    "snli": [
        (
            "Sentence one: {premise}\nSentence two: {hypothesis}\n\n"
            "Does sentence one imply sentence two?\n\n{options_}",
            "{answer}",
        ),
        ('{premise}\n\nIf that is so, is it true that "{hypothesis}"?\n{options_}', "{answer}"),
        ("{premise}\nCan we infer: {hypothesis}" + ASK, "{answer}"),  # not a literal
    ],
    "trivia_qa": [
        ("Answer this trivia question: {question}", "{answer}"),
        ("Q: {question}\nA:", "{answer}"),
        # Inverted: the answer is given and a question is asked for.
        ("Write a trivia question whose answer is {answer}.", "{question}"),
    ],
}

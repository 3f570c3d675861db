"""Faithfulness checks: is a rewrite still the same instruction, and only that?

Word lists and word-overlap measures, no model and nothing evaluated.  Each function
answers one question the validator (:mod:`instraug_dsl.compile.validate`) asks:

* :func:`foreign_shapes` -- placeholder-like or bracketed tokens of *any* family
  (``⟦0⟧``, ``{0}``, ``[[SLOT_1]]``, ``<instruction>``, ``[question]``) the source lacks;
* :func:`instructs` / :func:`answer_problem` -- does the text ask for something (an
  imperative, a question, a directive such as "you need to"), or does it answer/assert;
* :func:`echo_problem` -- does it repeat the prompt's own wording (meta-prompt lines,
  re-ask messages) rather than the instruction;
* :func:`parrot_problem` -- does it copy the meta-prompt's example rather than paraphrase
  the instruction;
* :func:`language_problem` -- is it written in another language or script.

The thresholds were set on the labelled set tests/data/faithfulness/labelled.jsonl
(``bench/bench_faithfulness.py`` prints their precision and recall).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

#: Token-like or bracketed shapes: every family's delimiters with any short label, braces,
#: square-bracketed identifiers and tag-like ``<name>``.
SHAPES = re.compile(
    r"\{[^{}\s]{1,40}\}"
    r"|⟦[^⟦⟧\s]{0,20}⟧|⟬[^⟬⟭\s]{0,20}⟭|⌜[^⌜⌝\s]{0,20}⌝"
    r"|\[\[[^\[\]\s]{1,30}\]\]|<<[^<>\s]{1,30}>>|@@[^@\s]{1,30}@@|__[A-Za-z0-9]{1,30}__"
    r"|\[[A-Za-z_][A-Za-z0-9_]{0,29}\]"
    r"|</?[A-Za-z_][A-Za-z0-9_-]{0,29}>"
)
_TOKEN_THEN_CAPITAL = re.compile(r"(" + SHAPES.pattern + r")\s+(?=[A-Z])")
_WORD = re.compile(r"#|[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE = re.compile(r"(?<=[.!?;:\n])\s+|\n+")

#: Verbs that open an imperative in task instructions (base form).
IMPERATIVES = frozenset(
    """
    add analyse analyze answer apply arrange ascertain assess assign associate attach
    be begin calculate caption categorize check choose circle classify come compare
    compose compute concentrate conclude confirm connect consider continue count create
    crop decide deduce define delineate demarcate denote depict describe designate detect
    determine develop differentiate discern distinguish do draw establish estimate evaluate
    examine explain express extract figure fill find finish focus follow frame generate get
    give go guess highlight identify illustrate imagine indicate infer inspect interpret
    judge justify label let list locate look make map mark match measure mention name note
    notice observe obtain offer opt order outline output paint pay pick pinpoint place
    point predict present produce provide put rank rate read recognize recognise refer
    relate render reply report represent reproduce respond restore return review say scan
    search see segment select share show sort specify spot state study suggest summarize
    supply take tell transcribe translate try type use verify view visualize work write
    reword rephrase rewrite paraphrase restate keep copy retain preserve remove delete
    insert replace change modify edit include exclude enter ensure make mention treat
    localize localise isolate crop outline depict portray capture fill complete design
    build construct sketch craft formulate specify
    """.split()
)
#: Words that open a question (without "?" too: "Which option is the caption.").
QUESTION_WORDS = frozenset(
    """
    what which where who whom whose when why how whether does do did is are was were can
    could would will should shall has have had may might am
    """.split()
)
#: Words skipped before the verb of an imperative ("Then carefully select ...").
_LEAD_WORDS = frozenset(
    """
    please kindly now then first next finally also and just simply carefully briefly
    quickly again further lastly second third instead additionally afterwards so
    """.split()
)
#: Phrases that direct someone to do something, wherever they stand.
_DIRECTIVE = re.compile(
    r"\b(?:you|your|you're|you’re|you'll|you’ll)\b"
    r"|\b(?:task|goal|aim|objective|job|purpose|challenge|mission)\b"
    r"|\b(?:need|needs|needed|must|should|required|requested|asked|expected|supposed)\b"
    r"|\b(?:have|has|is|are)\s+to\b|\blet(?:'s|’s| us)\b|\bplease\b|\bkindly\b"
    r"|\b(?:question|query|instruction|prompt|request)\s*:",
    re.I,
)
#: A sentence that gives a verdict instead of asking for one.
_VERDICT = re.compile(
    r"^\W*(?:(?:yes|no|yeah|nope|true|false|correct|incorrect)\s*(?:[,.!;:]|$)"
    r"|(?:yes|no)\s+(?:it|the|this|that|there|they|i|we|its|both)\b"
    r"|(?:the\s+)?(?:correct\s+|right\s+|final\s+)?answer\s+(?:is|would be|will be)\b"
    r"|(?:the\s+)?(?:correct\s+|right\s+|final\s+)?answer\s*:\s*(?!#))",
    re.I,
)
#: Short words that carry no content (for overlap measures).
STOPWORDS = frozenset(
    """
    a an the of to in on at by for from with and or but if then than that this these those
    it its is are be been was were do does did as into about over under between each every
    any some all one two both either neither not no yes there their them they you your we
    our i me my he she his her which what who whom whose when where why how whether can
    could would will should shall may might must need please also only just so very more
    most less least such same other another own given following above below based using
    use
    """.split()
)
_EN_FUNCTION = frozenset(
    """
    the a an of to in on at by for from with and or is are be that this which what does do
    it its as into your you if whether each there then than not
    """.split()
)
#: Function words of other Latin-script languages that are not English words.
_FOREIGN_FUNCTION = frozenset(
    """
    le la les des du une est et dans pour avec sur qui ce cette sont pas vous votre
    el los las una es y con para por del que su sus esta este cual imagen pregunta
    der die das und ist ein eine mit für nicht zu auf dem von sie ihre bild frage
    il della dell nel nella del dal dalla alla che per di gli sono questa questo immagine
    domanda
    um uma os não com pergunta imagem
    het een van voor zijn niet afbeelding vraag
    """.split()
)


def words(text: str) -> list[str]:
    """Case-folded words; every token-like shape counts as the one word ``#``."""
    return _WORD.findall(SHAPES.sub(" # ", text).casefold())


def content(ws: Iterable[str]) -> list[str]:
    """The words that carry meaning (no stopwords, no ``#``, at least 3 letters)."""
    return [w for w in ws if w != "#" and len(w) > 2 and w not in STOPWORDS]


def foreign_shapes(segments: Sequence[str], exempt: Iterable[str]) -> list[str]:
    """Token-like or bracketed shapes in the text segments that the source does not have."""
    allowed = set(exempt)
    found = {m.group() for seg in segments for m in SHAPES.finditer(seg)}
    return sorted(found - allowed)


def source_shapes(segments: Sequence[str]) -> tuple[str, ...]:
    """The shapes a source's own text has (exempt from :func:`foreign_shapes`)."""
    return tuple(sorted({m.group() for seg in segments for m in SHAPES.finditer(seg)}))


def sentences(text: str) -> list[str]:
    """Sentence-ish pieces: split after ``.!?;:`` and at line breaks."""
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


def _clause_openers(text: str) -> list[list[str]]:
    """The words of each clause (split at punctuation), lead words dropped."""
    out = []
    # "{A} Decide if ...": a token followed by a capital starts a new sentence.
    text = _TOKEN_THEN_CAPITAL.sub(r"\1\n", text)
    for clause in re.split(r"[,.;:!?()\n\"“”]+|\s[-–—]\s", text):
        ws = words(clause)  # a clause opening with a token has it as its subject
        while ws and ws[0] in _LEAD_WORDS:
            ws = ws[1:]
        if ws:
            out.append(ws)
    return out


def instructs(text: str) -> bool:
    """True when the text asks for something: a question, an imperative or a directive."""
    if "?" in text or _DIRECTIVE.search(text):
        return True
    for ws in _clause_openers(text):
        if ws[0] in IMPERATIVES or ws[0] in QUESTION_WORDS:
            return True
        # "In order to find ..., ..." / "To select ...": a purpose clause states the task.
        if ws[0] == "to" and len(ws) > 1 and ws[1] in IMPERATIVES:
            return True
    return False


def answer_problem(text: str, source_instructs: bool, source: str) -> str | None:
    """Why ``text`` answers or asserts instead of instructing, or None.

    A sentence giving a verdict ("Yes, ...", "The answer is ...") is an answer unless the
    source has one too; a text that no longer asks for anything while the source did is a
    statement of fact.
    """
    source_verdicts = any(_VERDICT.search(s) for s in sentences(source))
    for s in sentences(text):
        m = _VERDICT.search(s)
        if m and not source_verdicts:
            return f"gives a verdict ({m.group().strip()!r})"
    if source_instructs and not instructs(text):
        return "states something instead of asking for it"
    return None


def _ngrams(ws: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def _covered(ws: Sequence[str], grams: set[tuple[str, ...]], n: int) -> list[bool]:
    """Which words of ``ws`` lie in an n-gram of ``grams``."""
    mark = [False] * len(ws)
    for i in range(len(ws) - n + 1):
        if tuple(ws[i : i + n]) in grams:
            for j in range(i, i + n):
                mark[j] = True
    return mark


ECHO_N = 4
#: An echo covers at least this share of the rewrite's words with prompt n-grams ...
ECHO_SHARE = 0.5
#: ... and at least this many words.
ECHO_MIN_WORDS = 5


def echo_problem(text: str, machinery: Sequence[str], source: str) -> str | None:
    """Why ``text`` repeats the prompt's own wording (not the source's), or None."""
    ws = words(text)
    if len(ws) < 3 or not machinery:
        return None
    n = min(ECHO_N, len(ws))
    grams: set[tuple[str, ...]] = set()
    for line in machinery:
        grams |= _ngrams(words(line), n)
    grams -= _ngrams(words(source), n)
    mark = _covered(ws, grams, n)
    hit = sum(mark)
    if hit >= min(ECHO_MIN_WORDS, len(ws)) and hit >= ECHO_SHARE * len(ws):
        return f"{hit} of {len(ws)} words repeat the prompt"
    return None


#: A parrot shares at least this many content words with the example, not the source ...
PARROT_MIN = 2
#: ... and at least this share of its content words.
PARROT_SHARE = 0.3
#: Words any instruction may use: borrowing them from the example proves nothing alone.
GENERIC = frozenset(
    """
    list lists item items point points three two one four five first main short brief
    sentence sentences word words form format way kind type number numbers value values
    text image picture question answer option options part parts step steps detail details
    summary description caption content information result given following provided new
    """.split()
)


def parrot_problem(text: str, examples: Sequence[str], source: str) -> str | None:
    """Why ``text`` copies the meta-prompt's example rather than the instruction, or None.

    Counts the rewrite's content words that the example has and the source lacks; a
    rewrite closer to the example than to the source, by enough such words, is a parrot.
    """
    if not examples:
        return None
    mine = content(words(text))
    if not mine:
        return None
    src = set(content(words(source)))
    ex = {w for e in examples for w in content(words(e))}
    borrowed = [w for w in mine if w in ex and w not in src]
    from_source = sum(1 for w in mine if w in src)
    # A word only the example has (its topic: "temperature", "recipe") is a parrot by itself.
    topical = sorted({w for w in borrowed if w not in GENERIC and w not in IMPERATIVES})
    if topical:
        return "uses the example's words " + ", ".join(topical)
    if (
        len(borrowed) >= PARROT_MIN
        and len(borrowed) >= PARROT_SHARE * len(mine)
        and len(borrowed) >= from_source / 2
    ):
        return "uses the example's words " + ", ".join(sorted(set(borrowed)))
    return None


def _script(ch: str) -> str:
    """A coarse script name for a letter (``LATIN``, ``CJK``, ``CYRILLIC`` ...)."""
    name = unicodedata.name(ch, "")
    head = name.split(" ", 1)[0]
    if head in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL"}:
        return "CJK"
    return head or "UNKNOWN"


def language_problem(text: str, language: str, source: str) -> str | None:
    """Why ``text`` is not in ``language`` (``en``) or switched script, or None."""
    if language == "any":
        return None
    src_scripts = {_script(c) for c in source if c.isalpha()}
    odd = [c for c in text if c.isalpha() and _script(c) not in src_scripts | {"LATIN"}]
    if len(odd) >= 2:
        return "written in another script (" + "".join(sorted(set(odd)))[:12] + ")"
    ws = [w for w in re.split(r"['’]", " ".join(words(text))) for w in w.split() if w != "#"]
    if len(ws) < 3:
        return None
    src_words = set(words(source))
    foreign = [w for w in ws if w in _FOREIGN_FUNCTION and w not in src_words]
    marked = [
        w
        for w in ws
        if w not in src_words and any(unicodedata.decomposition(c) for c in w if c.isalpha())
    ]
    english = sum(1 for w in ws if w in _EN_FUNCTION)
    score = len(foreign) + len(marked)
    if score >= 2 and score > english:
        return "not English (" + ", ".join(sorted(set(foreign + marked)))[:60] + ")"
    return None

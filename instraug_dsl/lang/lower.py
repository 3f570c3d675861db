"""Lowering: the Lark parse tree to our IR, mechanically.

One method per grammar alias, each building one IR node with its span.  No
name resolution or validation happens here (that is :mod:`check`); the only
diagnostics lowering records are malformed escapes, which only it can see.
This is the last module that touches Lark types.
"""

from __future__ import annotations

import typing as t

from lark import Token, Transformer, v_args

from . import ir
from .diagnostics import Diagnostics
from .source import SourceFile, Span
from .strings import decode, split_template, sub_span


def _split_pieces(lit: ir.StringLit) -> tuple[ir.Piece, ...]:
    return split_template(lit)


@v_args(meta=True, inline=True)
class Lowering(Transformer[Token, t.Any]):
    """Transformer from the Lark tree to :mod:`ir` nodes."""

    def __init__(self, source: SourceFile, diagnostics: Diagnostics) -> None:
        super().__init__(visit_tokens=True)
        self.source = source
        self.diagnostics = diagnostics

    # ------------------------------------------------------------ helpers
    def _span(self, meta: t.Any) -> Span:
        if getattr(meta, "empty", True):
            return self.source.span(0, 0)
        return self.source.span(meta.start_pos, meta.end_pos)

    def _tok_span(self, tok: Token) -> Span:
        start = t.cast(int, tok.start_pos)
        return self.source.span(start, start + len(tok.value))

    def _unique_clauses(
        self, clauses: t.Iterable[tuple[str, t.Any]], what: str
    ) -> dict[str, t.Any]:
        # The IR keeps one value per clause, so a repeated clause is only
        # visible here: report it (E014) and keep the first.
        found: dict[str, t.Any] = {}
        for key, value in clauses:
            if key in found:
                self.diagnostics.add(
                    "E014",
                    f"`{key}` is given twice in this {what}",
                    value.span,
                    hint="remove one of them",
                )
                continue
            found[key] = value
        return found

    def _int(self, tok: Token) -> ir.IntLit:
        return ir.IntLit(int(tok.value), self._tok_span(tok))

    # -------------------------------------------------------------- atoms
    def name(self, meta: t.Any, tok: Token) -> ir.Name:
        return ir.Name(tok.value, self._tok_span(tok))

    def number(self, meta: t.Any, tok: Token) -> ir.NumberLit:
        return ir.NumberLit(float(tok.value), tok.value, self._tok_span(tok))

    def STRING(self, tok: Token) -> ir.StringLit:  # noqa: N802 - Lark names token callbacks after the terminal
        # A token callback (not a rule): strings are one terminal so that the
        # parser state after a string stays specific to its context.
        raw = tok.value
        chars, errors = decode(raw)
        lit = ir.StringLit(
            "".join(c.ch for c in chars), raw.startswith('"""'), raw, self._tok_span(tok)
        )
        for err in errors:
            self.diagnostics.add(
                "E003",
                f"invalid escape sequence `{err.text}`",
                sub_span(lit, err.start, err.end),
                hint=r"valid escapes are \\ \" \n \t \r \{ \} and \uXXXX",
            )
        return lit

    # ---------------------------------------------------------- top level
    def start(self, meta: t.Any, *items: ir.Item) -> tuple[ir.Item, ...]:
        return items

    def import_decl(self, meta: t.Any, path: ir.StringLit) -> ir.Import:
        return ir.Import(path, self._span(meta))

    def type_decl(self, meta: t.Any, name: ir.Name, texpr: ir.TypeExpr) -> ir.TypeAlias:
        return ir.TypeAlias(name, texpr, self._span(meta))

    def type_name(self, meta: t.Any, name: ir.Name) -> tuple[ir.Name, None]:
        return (name, None)

    def type_const(self, meta: t.Any, value: ir.StringLit) -> tuple[ir.Name, ir.StringLit]:
        span = self._span(meta)
        kw = self.source.span(span.start, span.start + len("const"))
        return (ir.Name("const", kw), value)

    def opt_sep(self, meta: t.Any, value: ir.StringLit) -> tuple[str, ir.StringLit]:
        return ("sep", value)

    def opt_prefix(self, meta: t.Any, value: ir.StringLit) -> tuple[str, ir.StringLit]:
        return ("prefix", value)

    def opt_names(self, meta: t.Any, *values: ir.StringLit) -> tuple[str, ir.LabelNames]:
        return ("names", ir.LabelNames(values, self._span(meta)))

    def opt_shuffle(self, meta: t.Any, v: Token) -> tuple[str, ir.ShuffleOption]:
        return ("shuffle", ir.ShuffleOption(v.value == "true", self._span(meta)))

    def opt_enumerate(self, meta: t.Any, pattern: ir.StringLit) -> tuple[str, ir.StringLit]:
        return ("enumerate", pattern)

    def opt_of(self, meta: t.Any, name: ir.Name) -> tuple[str, ir.Name]:
        return ("of", name)

    def type_expr(
        self, meta: t.Any, base: tuple[ir.Name, ir.StringLit | None], *rest: t.Any
    ) -> ir.TypeExpr:
        is_list = any(isinstance(r, Token) and r.type == "LIST_SUFFIX" for r in rest)
        optional = any(isinstance(r, Token) and r.type == "OPTIONAL_MARK" for r in rest)
        opts = self._unique_clauses([r for r in rest if isinstance(r, tuple)], "type")
        return ir.TypeExpr(
            base[0],
            is_list,
            optional,
            opts.get("sep"),
            opts.get("prefix"),
            base[1],
            self._span(meta),
            names=opts.get("names"),
            shuffle=opts.get("shuffle"),
            enumeration=opts.get("enumerate"),
            of=opts.get("of"),
        )

    # -------------------------------------------------------------- tasks
    def task_decl(self, meta: t.Any, name: ir.Name, *members: ir.TaskMember) -> ir.Task:
        return ir.Task(name, members, self._span(meta))

    def task_category(self, meta: t.Any, v: ir.StringLit) -> ir.Category:
        return ir.Category(v, self._span(meta))

    def task_split(self, meta: t.Any, v: ir.Name) -> ir.Split:
        return ir.Split(v, self._span(meta))

    def task_source(self, meta: t.Any, v: ir.StringLit) -> ir.Source:
        return ir.Source(v, self._span(meta))

    def task_notes(self, meta: t.Any, v: ir.StringLit) -> ir.Notes:
        return ir.Notes(v, self._span(meta))

    def task_augment(self, meta: t.Any, v: Token) -> ir.Augment:
        return ir.Augment(v.value == "true", self._span(meta))

    def task_instances(
        self, meta: t.Any, name: ir.StringLit, cond: ir.Condition | None = None
    ) -> ir.Instances:
        return ir.Instances(name, cond, self._span(meta))

    def task_target(self, meta: t.Any, path: ir.FieldPath) -> ir.Target:
        return ir.Target(path, self._span(meta))

    def condition(self, meta: t.Any, *args: t.Any) -> ir.Condition:
        return ir.Condition(len(args) == 2, args[-1], self._span(meta))

    def slot_decl(self, meta: t.Any, name: ir.Name, texpr: ir.TypeExpr, *clauses: t.Any) -> ir.Slot:
        found = self._unique_clauses(clauses, "slot")
        return ir.Slot(
            name,
            texpr,
            found.get("from"),
            found.get("each"),
            found.get("default"),
            self._span(meta),
        )

    def slot_from(self, meta: t.Any, path: ir.FieldPath) -> tuple[str, ir.FieldPath]:
        return ("from", path)

    def slot_each(self, meta: t.Any, fmt: ir.StringLit) -> tuple[str, ir.StringLit]:
        return ("each", fmt)

    def slot_default(self, meta: t.Any, value: ir.StringLit) -> tuple[str, ir.StringLit]:
        return ("default", value)

    def field_path(self, meta: t.Any, head: ir.Name, *steps: ir.PathStep) -> ir.FieldPath:
        return ir.FieldPath(head, steps, self._span(meta))

    def step_key(self, meta: t.Any, name: ir.Name) -> ir.KeyStep:
        return ir.KeyStep(name.value, self._span(meta))

    def step_index(self, meta: t.Any, tok: Token) -> ir.IndexStep:
        return ir.IndexStep(int(tok.value), self._span(meta))

    def step_quoted(self, meta: t.Any, key: ir.StringLit) -> ir.KeyStep:
        return ir.KeyStep(key.value, self._span(meta))

    def instruction_decl(self, meta: t.Any, name: ir.Name, *rest: t.Any) -> ir.Instruction:
        target = rest[-1] if isinstance(rest[-1], ir.TargetTemplate) else None
        segments = rest[:-1] if target is not None else rest
        return ir.Instruction(name, segments, self._span(meta), target)

    def instruction_target(self, meta: t.Any, lit: ir.StringLit) -> ir.TargetTemplate:
        return ir.TargetTemplate(lit, _split_pieces(lit), self._span(meta))

    def part_text(self, meta: t.Any, lit: ir.StringLit) -> ir.Segment:
        return ir.Segment(False, lit, _split_pieces(lit), self._span(meta))

    def part_pinned(self, meta: t.Any, lit: ir.StringLit) -> ir.Segment:
        return ir.Segment(True, lit, _split_pieces(lit), self._span(meta))

    # -------------------------------------------------------- meta-prompts
    def metaprompt_decl(self, meta: t.Any, name: ir.Name, *rest: t.Any) -> ir.MetaPrompt:
        extends = rest[0] if rest and isinstance(rest[0], ir.Name) else None
        members = rest[1:] if extends is not None else rest
        return ir.MetaPrompt(name, extends, members, self._span(meta))

    def strategies_decl(self, meta: t.Any, name: ir.Name, *items: ir.Strategy) -> ir.Strategies:
        return ir.Strategies(name, items, self._span(meta))

    def strategy_item(self, meta: t.Any, name: ir.Name, text: ir.StringLit) -> ir.Strategy:
        return ir.Strategy(name, text, self._span(meta))

    def bootstrap_decl(self, meta: t.Any, name: ir.Name, *members: ir.PromptMember) -> ir.Bootstrap:
        return ir.Bootstrap(name, members, self._span(meta))

    def prompt_system(self, meta: t.Any, v: ir.StringLit) -> ir.PromptSystem:
        return ir.PromptSystem(v, self._span(meta))

    def prompt_user(self, meta: t.Any, v: ir.StringLit) -> ir.PromptUser:
        return ir.PromptUser(v, self._span(meta))

    def prompt_description(self, meta: t.Any, v: ir.StringLit) -> ir.PromptDescription:
        return ir.PromptDescription(v, self._span(meta))

    def prompt_strategies(self, meta: t.Any, v: ir.Name) -> ir.PromptStrategies:
        return ir.PromptStrategies(v, self._span(meta))

    def prompt_count(self, meta: t.Any, v: Token) -> ir.PromptCount:
        return ir.PromptCount(self._int(v), self._span(meta))

    def prompt_take(self, meta: t.Any, v: Token) -> ir.PromptTake:
        return ir.PromptTake(self._int(v), self._span(meta))

    def prompt_example(
        self, meta: t.Any, instruction: ir.StringLit, rewrite: ir.StringLit
    ) -> ir.PromptExample:
        return ir.PromptExample(instruction, rewrite, self._span(meta))

    # --------------------------------------------------------------- plans
    def plan_decl(self, meta: t.Any, name: ir.Name, *rest: t.Any) -> ir.Plan:
        extends = rest[0] if rest and isinstance(rest[0], ir.Name) else None
        members = rest[1:] if extends is not None else rest
        return ir.Plan(name, extends, members, self._span(meta))

    def default_plan_decl(self, meta: t.Any, name: ir.Name, *rest: t.Any) -> ir.Plan:
        plan = self.plan_decl(meta, name, *rest)
        return ir.Plan(plan.name, plan.extends, plan.members, plan.span, default=True)

    def plan_use(self, meta: t.Any, name: ir.Name, samples: Token | None = None) -> ir.Use:
        return ir.Use(name, self._int(samples) if samples is not None else None, self._span(meta))

    def plan_temperature(self, meta: t.Any, values: ir.NumberSet) -> ir.Temperature:
        return ir.Temperature(values, self._span(meta))

    def number_list(self, meta: t.Any, *values: ir.NumberLit) -> ir.NumberList:
        return ir.NumberList(values, self._span(meta))

    def number_range(
        self, meta: t.Any, low: ir.NumberLit, _r: Token, high: ir.NumberLit, step: ir.NumberLit
    ) -> ir.NumberRange:
        return ir.NumberRange(low, high, step, self._span(meta))

    def plan_top_p(self, meta: t.Any, v: ir.NumberLit) -> ir.TopP:
        return ir.TopP(v, self._span(meta))

    def plan_max_tokens(self, meta: t.Any, v: Token) -> ir.MaxTokens:
        return ir.MaxTokens(self._int(v), self._span(meta))

    def plan_model(self, meta: t.Any, v: ir.StringLit) -> ir.Model:
        return ir.Model(v, self._span(meta))

    def plan_seed(self, meta: t.Any, v: Token) -> ir.Seed:
        return ir.Seed(self._int(v), self._span(meta))

    def plan_iterations(self, meta: t.Any, v: Token) -> ir.Iterations:
        return ir.Iterations(self._int(v), self._span(meta))

    def plan_attempts(self, meta: t.Any, v: Token) -> ir.Attempts:
        return ir.Attempts(self._int(v), self._span(meta))

    def plan_tasks(self, meta: t.Any, sel: ir.TaskSelector) -> ir.Tasks:
        return ir.Tasks(sel, self._span(meta))

    def select_all(self, meta: t.Any) -> ir.SelectAll:
        return ir.SelectAll(self._span(meta))

    def select_names(self, meta: t.Any, *names: ir.Name) -> ir.SelectNames:
        return ir.SelectNames(names, self._span(meta))

    def select_category(self, meta: t.Any, v: ir.StringLit) -> ir.SelectCategory:
        return ir.SelectCategory(v, self._span(meta))

    def plan_filter(self, meta: t.Any, *members: ir.FilterMember) -> ir.Filter:
        return ir.Filter(members, self._span(meta))

    def filter_length_ratio(
        self, meta: t.Any, low: ir.NumberLit, _r: Token, high: ir.NumberLit
    ) -> ir.LengthRatio:
        return ir.LengthRatio(low, high, self._span(meta))

    def filter_placeholders(self, meta: t.Any, v: ir.Name) -> ir.PlaceholderPolicy:
        return ir.PlaceholderPolicy(v, self._span(meta))

    def filter_dedup(self, meta: t.Any, v: ir.NumberLit) -> ir.Dedup:
        return ir.Dedup(v, self._span(meta))

    def filter_reject(self, meta: t.Any, *names: ir.Name) -> ir.Reject:
        return ir.Reject(names, self._span(meta))

    def filter_language(self, meta: t.Any, v: ir.Name) -> ir.Language:
        return ir.Language(v, self._span(meta))

    def plan_judge(self, meta: t.Any, v: ir.Name) -> ir.JudgeRef:
        return ir.JudgeRef(v, self._span(meta))

    # -------------------------------------------------------------- judges
    def judge_decl(self, meta: t.Any, name: ir.Name, *members: ir.JudgeMember) -> ir.Judge:
        return ir.Judge(name, members, self._span(meta))

    def judge_model(self, meta: t.Any, v: ir.StringLit) -> ir.JudgeModel:
        return ir.JudgeModel(v, self._span(meta))

    def judge_threshold(self, meta: t.Any, v: ir.NumberLit) -> ir.JudgeThreshold:
        return ir.JudgeThreshold(v, self._span(meta))

    # ------------------------------------------------------------ sampling
    def sampling_decl(self, meta: t.Any, name: ir.Name, *members: ir.SamplingMember) -> ir.Sampling:
        return ir.Sampling(name, members, self._span(meta))

    def sampling_plan(self, meta: t.Any, v: ir.Name) -> ir.SamplingPlanRef:
        return ir.SamplingPlanRef(v, self._span(meta))

    def sampling_instances(self, meta: t.Any, v: ir.StringLit) -> ir.SamplingInstances:
        return ir.SamplingInstances(v, self._span(meta))

    def sampling_raw_share(self, meta: t.Any, v: ir.NumberLit) -> ir.RawShare:
        return ir.RawShare(v, self._span(meta))

    def sampling_mode(self, meta: t.Any, v: ir.Name) -> ir.Mode:
        return ir.Mode(v, self._span(meta))

    def sampling_per_task(self, meta: t.Any, v: Token) -> ir.PerTask:
        return ir.PerTask(self._int(v), self._span(meta))

    def sampling_seed(self, meta: t.Any, v: Token) -> ir.Seed:
        return ir.Seed(self._int(v), self._span(meta))

    def sampling_carry(self, meta: t.Any, *paths: ir.FieldPath) -> ir.Carry:
        return ir.Carry(paths, self._span(meta))

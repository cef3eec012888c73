"""Email templates: subject, HTML and text rendered with merge fields in a Jinja2 sandbox.

Templates are written by the team and filled with data about endusers, so both are untrusted here:
- every part renders in one `SandboxedEnvironment` with `StrictUndefined`; HTML is autoescaped (and
  cannot be switched off), the subject and text are not;
- a template cannot stall a worker or fill its memory: no macros, includes, `set` or `with` (the
  ways to recurse or to build values that grow without output); loops only over `range()`, with a
  budget of iterations per render that shrinks as the template grows; a budget of characters that
  filters, method calls and operators may produce; repetition, joins, replacements, products and
  powers refused before they build something too large; a short list of filters and attributes;
  each part's output capped;
- a recipient's render is all or nothing: `render` returns the rendered email or a failure that
  names every problem, never raises and never returns half an email;
- `preview` for one chosen enduser names every missing merge field at once, not only the first.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, Literal, NoReturn

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from touchline.kit.errors import InvalidInputError
from touchline.outbound.compose.merge import (
    MergeContext,
    UnknownFieldError,
    parse_field_path,
    template_values,
)
from touchline.outbound.compose.mime import MAX_SUBJECT_CHARS, InvalidMessageError, refuse_header_injection
from touchline.outbound.compose.plaintext import text_from_html

Part = Literal["subject", "html", "text"]
ProblemKind = Literal[
    "syntax", "not-allowed", "unknown-field", "missing-field", "unsafe", "too-large", "error"
]

MAX_SOURCE_CHARS: Final = 200_000
MAX_BODY_CHARS: Final = 1_000_000
MAX_LOOP_ITERATIONS: Final = 10_000
"""Iterations of every `range()` of one part's render together."""
MAX_LOOP_WORK: Final = 2_000_000
"""Loop iterations times the part's length in characters: a long template gets fewer iterations, so
that the template nodes evaluated in one render stay about this many."""
MAX_WORK_CHARS: Final = 20_000_000
"""Characters that filters, method calls and operators of one part's render may produce together."""
MAX_EXPONENT_BITS: Final = 100_000
"""The largest whole number a product or power may make, in bits (arithmetic on huge numbers is slow)."""

_ROOTS: Final = frozenset({"enduser", "company", "sender"})
_FILTERS: Final = (
    "abs",
    "capitalize",
    "d",
    "default",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "last",
    "length",
    "count",
    "lower",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
    "urlencode",
    "wordcount",
)
_STR_ATTRIBUTES: Final = frozenset(
    {"lower", "upper", "title", "capitalize", "strip", "lstrip", "rstrip", "startswith", "endswith"}
)
_DATE_ATTRIBUTES: Final = frozenset(
    {"year", "month", "day", "strftime", "isoformat", "weekday", "isoweekday"}
)
_NOT_ALLOWED: Final[Mapping[type[nodes.Node], str]] = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Include: "include",
    nodes.Extends: "extends",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Block: "blocks",
    nodes.Assign: "set",
    nodes.AssignBlock: "set",
    nodes.With: "with",
    nodes.ScopedEvalContextModifier: "autoescape blocks",
    nodes.EvalContextModifier: "autoescape blocks",
}


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """What the team writes. `text` may be left out: it is then derived from the rendered HTML.
    The tracking switches travel with the template to the send."""

    subject: str
    html: str | None = None
    text: str | None = None
    track_opens: bool = False
    track_clicks: bool = False


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    part: Part
    kind: ProblemKind
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.part} line {self.line}" if self.line else self.part
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None
    track_opens: bool
    track_clicks: bool


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """Why this recipient gets no email; `missing_fields` lists every empty field the render needed."""

    problems: tuple[TemplateProblem, ...]

    @property
    def missing_fields(self) -> tuple[str, ...]:
        return tuple(
            problem.field for problem in self.problems if problem.field and problem.kind == "missing-field"
        )

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)


@dataclass(frozen=True, slots=True)
class Preview:
    """A template shown for one enduser: the email, or every reason it cannot be sent to them."""

    rendered: RenderedEmail | None
    problems: tuple[TemplateProblem, ...]

    @property
    def missing_fields(self) -> tuple[str, ...]:
        return tuple(
            problem.field for problem in self.problems if problem.field and problem.kind == "missing-field"
        )


class TemplateInvalidError(InvalidInputError):
    """A template that cannot be used for anybody: syntax, a construct not allowed, an unknown field."""

    def __init__(self, problems: tuple[TemplateProblem, ...]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


class MissingFieldError(UndefinedError):
    def __init__(self, path: str | None = None) -> None:
        super().__init__(f"{path} has no value")
        self.path = path or ""


@dataclass(slots=True)
class _PartRender:
    """One part's render: the loop iterations it may run and has run, the characters it may still
    produce, and the missing fields already reported. While every missing field is being looked
    for, the ones already found read as empty text, so that the next render gets past them to the
    next one."""

    allowed_iterations: int
    iterations: int = 0
    chars: int = MAX_WORK_CHARS
    blanked: frozenset[str] = frozenset()


# Set for the length of one part's render: the range() global, the filters, calls, operators and
# the merge groups it reaches read it here (Jinja gives them no other handle on the render).
_rendering: ContextVar[_PartRender | None] = ContextVar("touchline_part_render", default=None)


_FIELD_VALUE_TYPES: Final = (str, int, float, Decimal, date)
"""What a field holds (merge.FieldValue): checked first, as it is cheaper than asking the Mapping ABC."""


class _MergeGroup:
    """The fields of one kind (`enduser`, `company.custom`): readable by name, nothing else. A group
    within it (`company.custom`) is made once, with it, not at each read: a template reads a field
    in every part for every recipient."""

    __slots__ = ("_path", "_values")

    def __init__(self, path: str, values: Mapping[str, object]) -> None:
        self._path = path
        self._values = {
            key: _MergeGroup(f"{path}.{key}", value)
            if not isinstance(value, _FIELD_VALUE_TYPES) and isinstance(value, Mapping)
            else value
            for key, value in values.items()
        }

    def __getitem__(self, key: str) -> object:
        try:
            return self._values[key]
        except KeyError:
            if f"{self._path}.{key}" in _current_render().blanked:
                return _BLANK
            raise

    def __str__(self) -> str:
        raise TemplateRuntimeError(f"{self._path} is a group of fields; name one of them")


class _Blank:
    """A missing field already reported, while the render goes on to find the next one: it reads as
    empty text and whatever is done with it gives itself again."""

    __slots__ = ()

    def __str__(self) -> str:
        return ""

    def __html__(self) -> str:
        return ""

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[object]:
        return iter(())

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __getattr__(self, name: str) -> _Blank:
        if name[:2] == "__" or name in _SANDBOX_PROBES:
            raise AttributeError(name)
        return self

    def _absorb(self, *args: object, **kwargs: object) -> _Blank:
        return self

    __getitem__ = __call__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _absorb
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _absorb
    __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = __round__ = _absorb


_BLANK: Final = _Blank()
# Attributes the sandbox looks up on anything it is asked to call.
_SANDBOX_PROBES: Final = frozenset({"unsafe_callable", "alters_data"})


class _Missing(StrictUndefined):
    """StrictUndefined that, for a merge field, fails with MissingFieldError naming the field's path."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: object = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        if exc is UndefinedError and isinstance(obj, _MergeGroup | _Missing):
            exc = MissingFieldError
        super().__init__(hint, obj, name, exc)

    @property
    def path(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, _Missing):
            return owner.path  # `enduser.title.upper()`: what is missing is enduser.title
        prefix = f"{owner._path}." if isinstance(owner, _MergeGroup) else ""
        return f"{prefix}{self._undefined_name}"

    def __round__(self, ndigits: int | None = None) -> NoReturn:
        self._fail_with_undefined_error()

    def __abs__(self) -> NoReturn:
        self._fail_with_undefined_error()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_exception is MissingFieldError:
            return self.path  # MissingFieldError takes the path
        return str(super()._undefined_message)


def _current_render() -> _PartRender:
    state = _rendering.get()
    # Outside a render (nothing here does that) each call gets the smallest budget on its own.
    return state if state is not None else _PartRender(allowed_iterations=1, chars=MAX_BODY_CHARS)


def _counted_range(*args: int) -> range:
    steps = range(*args)
    budget = _current_render()
    try:
        budget.iterations += len(steps)
    except OverflowError:  # longer than the machine's integers: far too long in any case
        budget.iterations = budget.allowed_iterations + 1
    if budget.iterations > budget.allowed_iterations:
        raise SecurityError(
            f"the loops of this template run more than {budget.allowed_iterations} times in all"
            " (fewer are allowed in longer templates)"
        )
    return steps


def _charge(result: object) -> object:
    size = len(result) if isinstance(result, str | list | tuple) else 1
    budget = _current_render()
    budget.chars -= size
    if budget.chars < 0:
        raise SecurityError("this template builds more text than any email needs")
    return result


def _charged(function: Callable[..., object]) -> Callable[..., object]:
    """The filter, with what it returns counted against the render's budget (Jinja's markers for
    filters that take the context come along through functools.wraps)."""

    @functools.wraps(function)
    def filter_(*args: object, **kwargs: object) -> object:
        return _charge(function(*args, **kwargs))

    return filter_


def _bounded_replace(value: str, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * (len(new) - len(old)) > MAX_BODY_CHARS:
        raise SecurityError("this replace would make a text larger than an email may be")
    return text.replace(old, new, -1 if count is None else count)


def _bounded_join(value: Iterable[object], separator: object = "") -> str:
    """Jinja's `join`, refusing a result larger than an email may be before building it (a long
    separator times a long range would otherwise take gigabytes)."""
    items = [str(item) for item in value]
    glue = str(separator)
    if sum(map(len, items)) + len(glue) * max(len(items) - 1, 0) > MAX_BODY_CHARS:
        raise SecurityError("this join would make a text larger than an email may be")
    return glue.join(items)


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def getattr(self, obj: object, attribute: str) -> object:
        # `enduser.first_name`: a merge group has no attribute that does not start with "_", so the
        # sandbox's own lookup would fail on getattr (an exception per field read) and then index
        # it; index it straight away. Anything else, and any "_" name, takes the sandbox's path.
        if type(obj) is _MergeGroup and attribute[:1] != "_":
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: object, attr: str, value: object) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, LoopContext | _Blank):
            return True
        if isinstance(obj, str):
            return attr in _STR_ATTRIBUTES
        if isinstance(obj, date):
            return attr in _DATE_ATTRIBUTES
        return False

    def call(__self, __context: Context, __obj: object, *args: object, **kwargs: object) -> object:
        return _charge(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: object) -> None:
        return None  # str.format is not offered at all (its padding can ask for any amount of memory)

    def call_binop(self, context: object, operator: str, left: object, right: object) -> object:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting of text is not available in email templates; join with '~'")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if _repeats_too_much(sequence, times):
                    raise SecurityError("this repetition would make a text larger than an email may be")
        if operator == "**" and _power_too_large(left, right):
            raise SecurityError("this power is too large")
        if operator == "*" and _product_too_large(left, right):
            raise SecurityError("this product is too large")
        return _charge(_BINOPS[operator](left, right))


def _repeats_too_much(sequence: object, times: object) -> bool:
    return (
        isinstance(sequence, str | list | tuple)
        and isinstance(times, int)
        and len(sequence) * times > MAX_BODY_CHARS
    )


def _product_too_large(left: object, right: object) -> bool:
    if not isinstance(left, int) or not isinstance(right, int):
        return False
    return left.bit_length() + right.bit_length() > MAX_EXPONENT_BITS


def _power_too_large(base: object, exponent: object) -> bool:
    if not isinstance(base, int) or not isinstance(exponent, int):
        return False
    return max(base.bit_length(), 1) * abs(exponent) > MAX_EXPONENT_BITS


_BINOPS: Final[Mapping[str, Callable[[object, object], object]]] = {
    "*": operator.mul,
    "**": operator.pow,
    "%": operator.mod,
}


def _environment() -> _Sandbox:
    environment = _Sandbox(
        undefined=_Missing,
        autoescape=lambda name: name == "html",
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    filters: dict[str, Callable[..., object]] = {name: FILTERS[name] for name in _FILTERS}
    filters["replace"] = _bounded_replace
    filters["join"] = _bounded_join
    environment.filters = {name: _charged(function) for name, function in filters.items()}
    environment.globals = {"range": _counted_range}
    return environment


_ENVIRONMENT: Final = _environment()


@dataclass(frozen=True, slots=True)
class _CompiledPart:
    name: Part
    template: Template
    size: int

    @property
    def loop_iterations(self) -> int:
        return max(1, min(MAX_LOOP_ITERATIONS, MAX_LOOP_WORK // max(self.size, 1)))


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template checked and compiled once, rendered for each recipient."""

    source: EmailTemplate
    parts: tuple[_CompiledPart, ...]


def _static_problems(part: Part, tree: nodes.Template) -> list[TemplateProblem]:
    """What is wrong with a part for every recipient: constructs not allowed, loops that are not over
    range(), unknown names, fields, filters and tests."""
    problems = [
        TemplateProblem(
            part,
            "not-allowed",
            f"{_NOT_ALLOWED[type(node)]} are not available in email templates",
            node.lineno,
        )
        for node in tree.find_all(tuple(_NOT_ALLOWED))
    ]
    loop_names = {"range", "loop"}
    for loop in tree.find_all(nodes.For):
        loop_names.update(target.name for target in loop.target.find_all(nodes.Name))
        if isinstance(loop.target, nodes.Name):
            loop_names.add(loop.target.name)
        over_range = isinstance(loop.iter, nodes.Call) and _is_name(loop.iter.node, {"range"})
        if not over_range or loop.recursive:
            problems.append(
                TemplateProblem(part, "not-allowed", "a for loop may only go over range(...)", loop.lineno)
            )
    problems.extend(
        TemplateProblem(
            part,
            "unknown-field",
            f"unknown name {name.name!r}: merge fields start with enduser., company. or sender.",
            name.lineno,
            name.name,
        )
        for name in tree.find_all(nodes.Name)
        if name.ctx == "load" and name.name not in _ROOTS | loop_names
    )
    problems.extend(_unknown_fields(part, tree))
    problems.extend(
        TemplateProblem(
            part, "not-allowed", f"there is no filter {used.name!r} in email templates", used.lineno
        )
        for used in tree.find_all(nodes.Filter)
        if used.name not in _ENVIRONMENT.filters
    )
    problems.extend(
        TemplateProblem(part, "not-allowed", f"there is no test {test.name!r}", test.lineno)
        for test in tree.find_all(nodes.Test)
        if test.name not in _ENVIRONMENT.tests
    )
    return problems


def _is_name(node: nodes.Node, names: Collection[str]) -> bool:
    return isinstance(node, nodes.Name) and node.name in names


def _unknown_fields(part: Part, tree: nodes.Template) -> list[TemplateProblem]:
    """`enduser.frist_name` is wrong for everybody, even in a branch this recipient does not take.
    Custom field names cannot be checked: any name may exist for some company."""
    problems = []
    lookups: list[tuple[nodes.Node, object, int]] = [
        (lookup.node, lookup.attr, lookup.lineno) for lookup in tree.find_all(nodes.Getattr)
    ]
    lookups.extend(
        (lookup.node, lookup.arg.value if isinstance(lookup.arg, nodes.Const) else None, lookup.lineno)
        for lookup in tree.find_all(nodes.Getitem)
    )
    for target, key, line in lookups:
        if (
            isinstance(target, nodes.Name)
            and target.name in _ROOTS
            and isinstance(key, str)
            and key != "custom"
        ):
            try:
                parse_field_path(f"{target.name}.{key}")
            except UnknownFieldError as error:
                problems.append(
                    TemplateProblem(part, "unknown-field", str(error), line, f"{target.name}.{key}")
                )
    return problems


def _check(template: EmailTemplate) -> tuple[list[_CompiledPart], list[TemplateProblem]]:
    sources: list[tuple[Part, str]] = [("subject", template.subject)]
    if template.html is not None:
        sources.append(("html", template.html))
    if template.text is not None:
        sources.append(("text", template.text))
    problems: list[TemplateProblem] = []
    if template.html is None and template.text is None:
        problems.append(TemplateProblem("text", "error", "an email needs an HTML or a text part"))
    if template.subject != " ".join(template.subject.splitlines()):
        problems.append(TemplateProblem("subject", "error", "the subject must be a single line"))
    compiled: list[_CompiledPart] = []
    for part, source in sources:
        if len(source) > MAX_SOURCE_CHARS:
            problems.append(TemplateProblem(part, "too-large", f"longer than {MAX_SOURCE_CHARS} characters"))
            continue
        outcome = _compile_part(part, source)
        if isinstance(outcome, _CompiledPart):
            compiled.append(outcome)
        else:
            problems.extend(outcome)
    return compiled, problems


def _compile_part(part: Part, source: str) -> _CompiledPart | list[TemplateProblem]:
    try:
        tree = _ENVIRONMENT.parse(source, name=part)
        found = _static_problems(part, tree)
        if found:
            return sorted(found, key=lambda problem: problem.line or 0)
        code = _ENVIRONMENT.compile(tree, name=part)
    except TemplateSyntaxError as error:
        return [TemplateProblem(part, "syntax", error.message or "invalid syntax", error.lineno)]
    except (RecursionError, SyntaxError):
        # Parsing, checking and compiling recurse into nested expressions and blocks.
        return [TemplateProblem(part, "too-large", "nested too deeply")]
    jinja_template = _ENVIRONMENT.template_class.from_code(_ENVIRONMENT, code, _ENVIRONMENT.globals)
    return _CompiledPart(part, jinja_template, len(source))


def compile_template(template: EmailTemplate) -> CompiledTemplate:
    """Check and compile every part; raises TemplateInvalidError naming every problem found."""
    compiled, problems = _check(template)
    if problems:
        raise TemplateInvalidError(tuple(problems))
    return CompiledTemplate(template, tuple(compiled))


def _render_part(template: Template, part: Part, values: dict[str, object]) -> str:
    limit = MAX_SUBJECT_CHARS if part == "subject" else MAX_BODY_CHARS
    size = 0
    chunks: list[str] = []
    # The compiled render function itself, not Template.generate: that wraps each chunk in one more
    # generator only to rewrite the traceback of an error, which is turned into a problem here anyway.
    for chunk in template.root_render_func(template.new_context(values)):
        size += len(chunk)
        if size > limit:
            raise _TooLargeError(part, limit)
        chunks.append(chunk)
    return "".join(chunks)


class _TooLargeError(Exception):
    def __init__(self, part: Part, limit: int) -> None:
        super().__init__(f"the rendered {part} is longer than {limit} characters")
        self.part = part


_RENDER_ERRORS: Final = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, RecursionError)


MAX_MISSING_FIELDS: Final = 100
"""At most this many missing fields are named (each one costs a render to find)."""
MAX_COLLECTION_WORK: Final = 4 * MAX_LOOP_WORK


def _merge_groups(context: MergeContext) -> dict[str, object]:
    """What every part of one recipient's render reads: built once per recipient (the groups are
    read-only, so the parts share them)."""
    return {kind: _MergeGroup(kind, fields) for kind, fields in template_values(context).items()}


def _render_one(
    compiled: _CompiledPart, context: MergeContext, groups: dict[str, object], state: _PartRender
) -> str | TemplateProblem:
    part = compiled.name
    token = _rendering.set(state)
    try:
        return _render_part(compiled.template, part, groups)
    except MissingFieldError as error:
        return _missing(part, error.path, context)
    except SecurityError as error:
        return TemplateProblem(part, "unsafe", str(error))
    except _TooLargeError as error:
        return TemplateProblem(part, "too-large", str(error))
    except _RENDER_ERRORS as error:
        return TemplateProblem(part, "error", str(error) or type(error).__name__)
    finally:
        _rendering.reset(token)


def _every_problem(compiled: CompiledTemplate, context: MergeContext) -> tuple[TemplateProblem, ...]:
    """Each part rendered on its own, and again with each missing field found so far read as a
    blank, until no other one turns up. Another error after a blank may only follow from the blank,
    so it counts only where no field was missing; sandbox refusals and size limits always count.

    The search for more missing fields stops early once a part's renders together have done about
    MAX_COLLECTION_WORK (loop iterations plus one, times the part's size): the fields found are named."""
    problems: list[TemplateProblem] = []
    blanked: set[str] = set()
    groups = _merge_groups(context)
    for part in compiled.parts:
        blanked_here = False
        work = 0
        while len(blanked) < MAX_MISSING_FIELDS and work < MAX_COLLECTION_WORK:
            state = _PartRender(part.loop_iterations, blanked=frozenset(blanked))
            outcome = _render_one(part, context, groups, state)
            work += (state.iterations + 1) * part.size
            if not isinstance(outcome, TemplateProblem):
                break
            if outcome.kind == "missing-field" and outcome.field not in blanked:
                blanked.add(outcome.field or "")
                blanked_here = True
                problems.append(outcome)
                continue
            if outcome.kind != "error" or not blanked_here:
                problems.append(outcome)
            break
    return tuple(problems)


def _missing(part: Part, path: str, context: MergeContext) -> TemplateProblem:
    return TemplateProblem(part, "missing-field", _missing_message(path, context), field=path)


def _missing_message(path: str, context: MergeContext) -> str:
    try:
        field = parse_field_path(path)
    except UnknownFieldError as error:
        return str(error)
    if field.kind == "company" and context.company is None:
        return f"{field} has no value: {context.enduser.email} belongs to no company"
    owner = {"enduser": context.enduser.email, "company": context.company and context.company.name}
    suffix = f" for {owner[field.kind]}" if owner.get(field.kind) else ""
    return f"{field} has no value{suffix} (add `| default('...')` in the template to allow that)"


def _assemble(compiled: CompiledTemplate, parts: Mapping[Part, str]) -> RenderedEmail | TemplateProblem:
    try:
        # A line break taken from a merge field would end the Subject header: refused, not folded.
        refuse_header_injection("the subject", parts["subject"])
    except InvalidMessageError as error:
        return TemplateProblem("subject", "unsafe", str(error))
    html = parts.get("html")
    text = parts["text"] if "text" in parts else text_from_html(html or "")
    return RenderedEmail(
        subject=parts["subject"].strip(),
        text=text,
        html=html,
        track_opens=compiled.source.track_opens,
        track_clicks=compiled.source.track_clicks,
    )


def render(compiled: CompiledTemplate, context: MergeContext) -> RenderedEmail | RenderFailure:
    """The email for one recipient, or every reason it cannot be sent; never a partial email."""
    parts: dict[Part, str] = {}
    groups = _merge_groups(context)
    for part in compiled.parts:
        outcome = _render_one(part, context, groups, _PartRender(part.loop_iterations))
        if isinstance(outcome, TemplateProblem):
            return RenderFailure(_every_problem(compiled, context) or (outcome,))
        parts[part.name] = outcome
    email = _assemble(compiled, parts)
    return email if isinstance(email, RenderedEmail) else RenderFailure((email,))


def render_value(source: str, context: MergeContext) -> str | RenderFailure:
    """A one-line value with merge fields (a UTM parameter, say), rendered in the same sandbox as a
    subject is (not HTML-escaped), for one recipient; or every reason it cannot be."""
    compiled = _compile_part("subject", source)
    if not isinstance(compiled, _CompiledPart):
        return RenderFailure(tuple(compiled))
    outcome = _render_one(compiled, context, _merge_groups(context), _PartRender(compiled.loop_iterations))
    if isinstance(outcome, TemplateProblem):
        return RenderFailure(_every_problem(CompiledTemplate(EmailTemplate(source), (compiled,)), context))
    return " ".join(outcome.split())


def preview(template: EmailTemplate, context: MergeContext) -> Preview:
    """The template as `context`'s enduser would get it, or every problem: template errors with
    their line, and each merge field that is empty for this enduser."""
    try:
        compiled = compile_template(template)
    except TemplateInvalidError as error:
        return Preview(None, error.problems)
    outcome = render(compiled, context)
    if isinstance(outcome, RenderFailure):
        return Preview(None, outcome.problems)
    return Preview(outcome, ())


__all__ = [
    "CompiledTemplate",
    "EmailTemplate",
    "Preview",
    "RenderFailure",
    "RenderedEmail",
    "TemplateInvalidError",
    "TemplateProblem",
    "compile_template",
    "preview",
    "render",
]

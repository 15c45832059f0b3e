"""The Jinja sandbox every user-written text is rendered in.

Templates arrive in pull requests, so they are untrusted: SandboxedEnvironment
blocks attribute escapes, there is no loader (no include/import from disk), and
StrictUndefined turns a typo into an error instead of an empty string.
"""

from __future__ import annotations

import functools
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

from northstar_pipeline.errors import NorthstarError, ProjectError, RenderError

_MISSING = object()


class TemplateCallError(Exception):
    """Raised by a helper (ref, var, env_var...) called from a template.

    Converted to a RenderError/ProjectError with the template line found in the traceback.
    """

    def __init__(self, message: str, hint: str | None = None, error_class: type[NorthstarError] = RenderError):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.error_class = error_class


# Bounds on the work one template may ask for: a pull request must not keep CI busy or out of memory.
MAX_POWER_BITS = 4096  # a ** b whose result would need more bits than this
MAX_SIZE = 1_000_000  # characters or items a * or + may produce
MAX_RANGE = 100_000  # items of range(): Jinja's own sandbox limit
RENDER_SECONDS = 10.0  # wall time of rendering one template (or profiles.yml / sources.yml)
MAX_OUTPUT = 10_000_000  # characters one rendering may produce
# Filters and str methods whose integer argument is the size of what they build.
_SIZED_FILTERS = ("center", "indent", "wordwrap", "truncate", "batch", "slice", "format")
_SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class RenderLimitError(Exception):
    """A template asked for more work than the bounds above allow."""


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with operators that could explode checked first and a deadline checked on every call."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})  # never folded at compile time either
    deadline = float("inf")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.check_deadline()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "%":
            if isinstance(left, str):
                _check_format_widths(left)
                if re.search(r"%[-#0 +.\d]*\*", left):  # '%*d' % (width, value)
                    raise RenderLimitError("a format width given as an argument is not allowed in a template")
        elif isinstance(left, (str, list, tuple)) and isinstance(right, type(left)) and len(left) + len(right) > MAX_SIZE:
            raise RenderLimitError(f"'+' would make {len(left) + len(right)} characters or items (at most {MAX_SIZE})")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        __self.check_deadline()
        if getattr(__obj, "__name__", None) in _SIZED_METHODS and isinstance(getattr(__obj, "__self__", None), str):
            _check_sizes(__obj.__name__, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:  # str.format / format_map, wrapped when accessed
        if isinstance(getattr(value, "__self__", None), str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_format_widths(value.__self__)
            if re.search(r"\{[^{}]*:[^{}]*\{", value.__self__):  # a width given as an argument: '{:>{w}}'
                raise RenderLimitError("a format width given as an argument is not allowed in a template")
        return super().wrap_str_format(value)

    def concat(self, chunks: Iterable[str]) -> str:  # type: ignore[override]  # Template.render joins with it
        parts, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderLimitError(f"the rendering is longer than {MAX_OUTPUT} characters")
            parts.append(chunk)
            self.check_deadline()
        return "".join(parts)

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"rendering takes longer than {RENDER_SECONDS:g} s")


class _Range(Sequence):
    """range() whose iteration checks the render deadline, so nested loops cannot run forever."""

    def __init__(self, env: BoundedEnvironment, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise RenderLimitError(f"range() of {len(self._range)} items (at most {MAX_RANGE})")
        self._env = env

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __iter__(self) -> Iterator[int]:
        for index, value in enumerate(self._range):
            if index % 256 == 0:
                self._env.check_deadline()
            yield value


class _BoundedNamespace(Namespace):
    """namespace(): what a loop keeps between iterations, so its values are bounded like * and +."""

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_SIZE:
            raise RenderLimitError(f"namespace value '{name}' has {len(value)} characters or items (at most {MAX_SIZE})")
        super().__setitem__(name, value)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps Jinja's pass_environment / pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_sizes(name, args, kwargs)
        if name == "format":
            for text in (a for a in args if isinstance(a, str)):
                _check_format_widths(text)
                break
        return function(*args, **kwargs)

    return bounded


def _check_sizes(name: str, args: tuple, kwargs: dict) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise RenderLimitError(f"{name}() with {value} is too large (at most {MAX_SIZE})")


def _check_format_widths(text: str) -> None:
    """'%999999999d' or '{:>999999999}' builds a string that wide: bound the numbers in a format string."""
    for number in re.findall(r"\d+", text):
        if len(number) > 7 and int(number) > MAX_SIZE:
            raise RenderLimitError(f"a format width of {number} is too large (at most {MAX_SIZE})")


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if (abs(left).bit_length() - 1) * right > MAX_POWER_BITS:
            raise RenderLimitError(f"{left} ** {right} is too large (more than {MAX_POWER_BITS} bits)")


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > MAX_SIZE:
            raise RenderLimitError(f"repeating {len(sequence)} characters or items {count} times is too large "
                                   f"(at most {MAX_SIZE})")


def make_environment() -> SandboxedEnvironment:
    env = BoundedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=None,
    )
    env.globals["range"] = lambda *args: _Range(env, *args)
    env.globals["namespace"] = _BoundedNamespace
    for name in _SIZED_FILTERS:
        env.filters[name] = _bounded_filter(name, env.filters[name])
    return env


def compile_template(env: SandboxedEnvironment, text: str, relpath: Path, error_class: type[NorthstarError]) -> jinja2.Template:
    """Compile with the file's name as the code's filename, so tracebacks carry template lines."""
    name = relpath.as_posix()
    try:
        code = env.compile(text, name=name, filename=name)
    except jinja2.TemplateSyntaxError as exc:
        raise error_class(
            f"Jinja syntax error: {exc.message}",
            path=relpath,
            line=exc.lineno,
            hint="check the {{ }} and {% %} tags on this line are balanced and closed",
        ) from None
    except SyntaxError as exc:  # Jinja turns calls into Python: config(kind=1, kind=2) fails Python's compiler
        raise error_class(
            f"invalid expression in template: {exc.msg}",
            path=relpath,
            line=_python_to_template_line(env.compile(text, name=name, filename=name, raw=True), exc.lineno),
            hint="give each keyword argument once, e.g. config(kind='input', ...)",
        ) from None
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _python_to_template_line(source: str, python_line: int | None) -> int | None:
    """Jinja ends its generated code with debug_info = 'tpl=py&tpl=py...'; map a code line back."""
    marker = "debug_info = '"
    start = source.rfind(marker)
    if start < 0 or python_line is None:
        return None
    pairs = source[start + len(marker): source.index("'", start + len(marker))].split("&")
    best = None
    for pair in filter(None, pairs):
        template_line, code_line = (int(x) for x in pair.split("="))
        if code_line <= python_line:
            best = template_line
    return best


def render_template(
    template: jinja2.Template,
    context: Mapping[str, Any],
    relpath: Path,
    error_class: type[NorthstarError] = RenderError,
) -> str:
    """Render, turning any template-side failure into one located NorthstarError."""
    env = template.environment
    if isinstance(env, BoundedEnvironment):
        env.deadline = time.monotonic() + RENDER_SECONDS
    try:
        return template.render(**context)
    except RenderLimitError as exc:
        raise error_class(f"template does too much work: {exc}", path=relpath, line=_template_line(exc, relpath),
                          hint="templates generate SQL; compute data in SQL, not in Jinja loops or arithmetic") from None
    except RecursionError as exc:
        raise error_class("template recursion too deep (a macro calling itself without end?)", path=relpath,
                          line=_template_line(exc, relpath),
                          hint="give the recursive macro a stopping condition, or write it without recursion") from None
    except (OverflowError, MemoryError) as exc:
        raise error_class(f"template does too much work: {type(exc).__name__}: {exc}", path=relpath,
                          hint="templates generate SQL; compute data in SQL, not in Jinja") from None
    except TemplateCallError as exc:
        raise exc.error_class(exc.message, path=relpath, line=_template_line(exc, relpath), hint=exc.hint) from None
    except jinja2.UndefinedError as exc:
        known = sorted(k for k in context if not k.startswith("_"))
        name = _undefined_name(exc)
        close = get_close_matches(name, known, n=1) if name else []
        hint = f"did you mean '{close[0]}'?" if close else "define it, or use var('name', default) for project variables"
        raise error_class(f"undefined variable: {exc.message}", path=relpath, line=_template_line(exc, relpath), hint=hint) from None
    except jinja2.sandbox.SecurityError as exc:
        raise error_class(f"not allowed in a template: {exc}", path=relpath, line=_template_line(exc, relpath)) from None
    except jinja2.TemplateError as exc:
        raise error_class(f"could not render: {exc}", path=relpath, line=_template_line(exc, relpath)) from None
    except (TypeError, ValueError, ZeroDivisionError, KeyError, IndexError, AttributeError) as exc:
        # Errors of the template's own expressions (e.g. {{ 1 / 0 }}, bad call arguments).
        raise error_class(f"could not render: {exc}", path=relpath, line=_template_line(exc, relpath)) from None


# dbt's convention: such a variable holds a credential. Only profiles.yml may read it, and its value is
# never written anywhere (project/load.py checks where it lands).
SECRET_PREFIX = "NORTHSTAR_ENV_SECRET_"


def env_var_function(environ: Mapping[str, str] | None = None,
                     secrets_read: dict[str, str] | None = None) -> Callable[..., str]:
    """env_var() for templates; with ``secrets_read`` (profiles.yml only) it may read secrets and records them."""
    environ = os.environ if environ is None else environ

    def env_var(name: str, default: Any = _MISSING) -> str:
        name = str(name)
        if name.startswith(SECRET_PREFIX):
            if secrets_read is None:
                raise TemplateCallError(
                    f"environment variable '{name}' is a secret: only profiles.yml may read it",
                    hint=f"a {SECRET_PREFIX}* variable holds a credential and must not reach SQL, logs or target/; "
                         "read a variable without that prefix here")
            if name in environ and environ[name]:
                secrets_read[name] = environ[name]
        if name in environ:
            return environ[name]
        if default is _MISSING:
            raise TemplateCallError(
                f"environment variable '{name}' is not set",
                hint=f"export {name}=..., or give a default: env_var('{name}', 'default')",
                error_class=ProjectError,
            )
        return str(default)

    return env_var


def _template_line(exc: BaseException, relpath: Path) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's file name and line."""
    name = relpath.as_posix()
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == name:
            line = frame.lineno
    return line if line is not None else getattr(exc, "lineno", None)


def _undefined_name(exc: jinja2.UndefinedError) -> str | None:
    # Jinja's message is "'name' is undefined"; the name is the first quoted word.
    message = exc.message or ""
    if message.startswith("'") and "'" in message[1:]:
        return message[1 : message.index("'", 1)]
    return None

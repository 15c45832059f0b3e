"""The Jinja sandbox every user-written text is rendered in.

Templates arrive in pull requests, so they are untrusted: SandboxedEnvironment
blocks attribute escapes, there is no loader (no include/import from disk), and
StrictUndefined turns a typo into an error instead of an empty string.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

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


def make_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=None,
    )


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
    try:
        return template.render(**context)
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


def env_var_function(environ: Mapping[str, str] | None = None) -> Callable[..., str]:
    environ = os.environ if environ is None else environ

    def env_var(name: str, default: Any = _MISSING) -> str:
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

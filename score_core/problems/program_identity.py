"""Which program a solution's text is, for the verdict cache: the text with its comments
blanked, when that provably compiles to the same code object.

The sandbox harness (`sandbox/harness.py`) runs a solution as `compile(code, "<solution>",
"exec", dont_inherit=True)` on a *str* (so a coding cookie is ignored), and the solution cannot
see its own text: it is read from a closed fd, it is not in `linecache` (no file named
"<solution>"), frames and `gc` are refused by the audit hook. What runs is therefore a function
of the code object alone, and two texts whose code objects compare equal are one program.
CPython's code-object equality covers the bytecode, constants (nested code objects
included), names, argument counts, flags, first line and the line/column table, i.e.
everything a comment could move.

`comment_free(code)` replaces each comment's text by a bare "#" (keeping every other
character, so no code token moves) and returns that text only if it compiles to a code
object equal to the original's; otherwise — a tokenize or compile error, a difference the
compiler does see (e.g. a `\\r` line end tokenize reads differently), or a text over
`MAX_CHARS` — it returns `code` unchanged. The check, not the tokenizer, is what makes it
safe: any text it returns is a program equivalent to `code`. `MAX_CHARS` bounds the one
thing a comment's length can still change, the few copies of the text a run holds in memory
(≤ 16 KiB against a memory limit of ≥ 128 MiB), and the host's cost per job.

Why: a debug-scale policy writes its working as a comment (`synth_code`: `# 103-12=91,…\\nx=13`),
so thousands of texts are a few hundred programs; keyed on the text, each would be run.
"""
from __future__ import annotations

import io
import tokenize

MAX_CHARS = 16_384


def blank_comments(code: str) -> str:
    """`code` with every comment token's text replaced by "#" (no validity check)."""
    lines = io.StringIO(code).readlines()
    for tok in reversed(list(tokenize.generate_tokens(io.StringIO(code).readline))):
        if tok.type == tokenize.COMMENT and tok.start[0] == tok.end[0]:
            row, (start, end) = tok.start[0] - 1, (tok.start[1], tok.end[1])
            lines[row] = lines[row][:start] + "#" + lines[row][end:]
    return "".join(lines)


def _compiled(code: str):
    return compile(code, "<solution>", "exec", dont_inherit=True)


def comment_free(code: str) -> str:
    """The comment-blanked text of `code` if it compiles to an equal code object, else `code`."""
    if "#" not in code or len(code) > MAX_CHARS:
        return code
    try:
        blank = blank_comments(code)
        if blank != code and _compiled(blank) == _compiled(code):
            return blank
    except (SyntaxError, ValueError, tokenize.TokenError, IndentationError, RecursionError, MemoryError):
        pass
    return code

"""The paper's prompts, verbatim, and how a two-turn context is rendered.

Turn 1 is x; turn 2 is x2 = x ⊕ y1 ⊕ p, where p is a fixed instruction that carries no
hint of whether y1 was right (intrinsic self-correction, Kumar et al. 2024, Sec. 3).
With a chat template the turns are chat messages; without one (the debug model) they
are concatenated plainly.
"""
from __future__ import annotations

from typing import Any

from score_core.schema import Problem

MATH_TURN1 = (
    "You are a math expert. When you respond, respond only with the Solution of the final "
    "Problem, thinking step by step. At the end of the Solution, when you give your final "
    'answer, write it in the form "Final Answer: The final answer is $answer$. I hope it '
    'is correct."'
)
MATH_TURN2 = (
    "There might be an error in the solution above because of lack of understanding of the "
    "question. Please correct the error, if any, and rewrite the solution. Only output the "
    "final solution! At the end of the Solution, when you give your final answer, write it "
    'in the form "Final Answer: The final answer is $answer$. I hope it is correct."'
)
CODE_TURN2 = (
    "There might be an error in the code above because of lack of understanding of the "
    "question. Please correct the error, if any, and rewrite the solution. Only output the "
    "final correct Python program!"
)
# Self-Refine (Madaan et al. 2023) as the paper's prompting-only baseline: the model first
# critiques its attempt, then refines it, both in the second turn (one generation).
SELF_REFINE_MATH_TURN2 = (
    "Review your previous solution and find problems with it. First write your feedback, "
    "then, based on the problems you found, write an improved solution. At the end of the "
    'Solution, when you give your final answer, write it in the form "Final Answer: The final '
    'answer is $answer$. I hope it is correct."'
)
SELF_REFINE_CODE_TURN2 = (
    "Review your previous code and find problems with it. First write your feedback, then, "
    "based on the problems you found, write the improved final Python program."
)
# Debug-scale families use one reserved token each for x's framing and for p: a tiny
# character-level model cannot afford the 300-character paper instruction. It is as
# feedback-free as the paper's p: the same token follows every y1. The debug code family
# (`synth_code`) uses the same framing without a chat template (`short_framing`).
SYNTH_TURN1 = "Q:"
SYNTH_ANSWER = "\nA:"
SYNTH_TURN2 = "\n<retry>\nA:"


def turn1_messages(problem: Problem) -> list[dict[str, str]]:
    """Chat messages for turn 1."""
    if problem.kind == "math":
        return [{"role": "user", "content": f"{MATH_TURN1}\n\nProblem:\n{problem.question}"}]
    return [{"role": "user", "content": problem.question}]


def turn2_instruction(problem: Problem, style: str = "score") -> str:
    """p: the paper's feedback-free instruction, or (style "self_refine") critique-then-refine.
    The debug families have one learned turn-2 format, which already critiques (a check of
    y1) before answering, so both styles are the same `<retry>` token there."""
    if style == "self_refine":
        return {"math": SELF_REFINE_MATH_TURN2, "code": SELF_REFINE_CODE_TURN2, "synth": SYNTH_TURN2}[problem.kind]
    if style != "score":
        raise ValueError(f"unknown turn-2 style {style!r}; expected 'score' or 'self_refine'")
    return {"math": MATH_TURN2, "code": CODE_TURN2, "synth": SYNTH_TURN2}[problem.kind]


def short_framing(problem: Problem) -> bool:
    """The debug families (`synth_*` sources, maths or code) use the short framing when
    there is no chat template; real code and maths sets keep the paper's text."""
    return problem.kind == "synth" or problem.source.startswith("synth_")


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_turn1(problem: Problem, tokenizer: Any) -> str:
    """x: the text the model continues for attempt 1."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            turn1_messages(problem), tokenize=False, add_generation_prompt=True)
    if short_framing(problem):
        return f"{SYNTH_TURN1}{problem.question}{SYNTH_ANSWER}"
    return f"{turn1_messages(problem)[0]['content']}\n\n"


def render_turn2(problem: Problem, attempt1: str, tokenizer: Any, style: str = "score") -> str:
    """x2 = x ⊕ y1 ⊕ p: the text the model continues for attempt 2."""
    if has_chat_template(tokenizer):
        messages = turn1_messages(problem) + [
            {"role": "assistant", "content": attempt1},
            {"role": "user", "content": turn2_instruction(problem, style)},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if short_framing(problem):
        return render_turn1(problem, tokenizer) + attempt1 + SYNTH_TURN2
    return render_turn1(problem, tokenizer) + attempt1 + "\n\n" + turn2_instruction(problem, style) + "\n\n"


_SENTINEL = "\u2063Y1\u2063"


def turn2_suffix(problem: Problem, tokenizer: Any, style: str = "score") -> str:
    """The text B with x2 = x ⊕ y1 ⊕ B: end of turn 1, the instruction p, the turn-2 header.

    Rendering with a sentinel y1 and splitting on it lets the rollout build turn 2 from the
    *sampled token ids* of y1 (x_ids + y1_ids + ids(B)), so the trainer scores exactly the
    tokens the policy produced instead of a re-tokenisation of decoded text.
    """
    x = render_turn1(problem, tokenizer)
    full = render_turn2(problem, _SENTINEL, tokenizer, style)
    head, sep, tail = full.partition(_SENTINEL)
    if not sep or head != x:
        raise ValueError(
            "the chat template does not render turn 2 as turn 1 followed by attempt 1; "
            "score needs x2 = x ⊕ y1 ⊕ p (Kumar et al. 2024, Sec. 3)")
    return tail

"""The prompt frame shared by the RULER-style and QA tasks: instructions and question around a context.

The question is stated before and after the context (as the paper's prompts do), and the model is
asked for its final answer inside `<answer>...</answer>`. A task fills only the context; the frame's
token cost is measured once so the filler (`generators/fill.py`) can plan the context's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

_HEAD = """{intro}

Below is the question. It is asked again after the text.
<question>
{question}
</question>

<text>
"""

_TAIL = """
</text>

<question>
{question}
</question>

First explain your reasoning briefly. Then give your final answer inside answer tags, in exactly this format:
<answer>
{answer_format}
</answer>
{notes}"""


@dataclass(frozen=True)
class Frame:
    """Everything of the prompt but the context: `input = head + context + tail`."""

    head: str
    tail: str

    @classmethod
    def build(cls, intro: str, question: str, answer_format: str, notes: Sequence[str] = ()) -> "Frame":
        lines = "\n".join(f"- {n}" for n in notes)
        return cls(_HEAD.format(intro=intro, question=question),
                   _TAIL.format(question=question, answer_format=answer_format, notes=lines).rstrip() + "\n")

    def text(self, context: str) -> str:
        return self.head + context + self.tail

    def cost(self, tokenizer, typical_context: str) -> int:
        """Tokens the frame adds around a context like `typical_context`, joins included."""
        return tokenizer.count(self.text(typical_context)) - tokenizer.count(typical_context)


def join_marked(parts: Sequence[str], marked: Sequence[int], offset: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """Concatenate `parts`; return the text and the character spans (shifted by `offset`) of the
    parts whose indices are in `marked`, in the order of `marked`."""
    starts, position = [], offset
    for part in parts:
        starts.append(position)
        position += len(part)
    spans = [(starts[i], starts[i] + len(parts[i])) for i in marked]
    return "".join(parts), spans


def spread(units: Sequence[str], inserts: Sequence[str], depths: Sequence[float]) -> tuple[list[str], list[int]]:
    """Insert each of `inserts` among `units` at its relative depth in [0, 1); returns the parts and
    the index of every insert in them (same order as `inserts`). Equal depths keep insert order."""
    n = len(units)
    slots = [min(int(d * (n + 1)), n) for d in depths]
    order = sorted(range(len(inserts)), key=lambda i: (slots[i], i))
    parts: list[str] = []
    where = [0] * len(inserts)
    k = 0
    for slot in range(n + 1):
        while k < len(order) and slots[order[k]] == slot:
            where[order[k]] = len(parts)
            parts.append(inserts[order[k]])
            k += 1
        if slot < n:
            parts.append(units[slot])
    return parts, where

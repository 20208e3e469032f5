"""Evaluation tasks, registered by name. Each task is a small module that reads its items, says what to ask the
model for each item, and scores the answers of one language; which tasks run comes from configuration
(`EvalConfig.tasks`, the pipeline's `eval_tasks`).

A task asks the model in one of two ways: `Generate` (greedy reply to a conversation) or `Choose` (one
conversation per option; the answer is the option the model finds most likely, see inference.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TASKS = "captions,multiple_choice,text"  # what the pipeline evaluates unless told otherwise


@dataclass(frozen=True)
class Generate:
    """Ask for a reply to `conversation` (user turns, images attached)."""
    conversation: list[dict]


@dataclass(frozen=True)
class Choose:
    """Ask which of `options` (full conversations, each ending in one candidate answer) is most likely."""
    options: list[list[dict]]


@dataclass(frozen=True)
class EvalTask:
    name: str                   # registry name, used in configuration
    filename: str               # the items file under the evaluation data folder
    required: tuple[str, ...]   # fields every item has
    image_fields: tuple[str, ...]  # fields holding image paths, resolved against the items file
    metric: str                 # what `score` returns, e.g. "cider"
    group: str                  # the overall figure the metric counts towards (the gate compares these)
    ask: Callable[[dict], Generate | Choose]
    # (items of one language, the model's answers to them, language) -> (score, one record per item)
    score: Callable[[list[dict], list, str], tuple[float, list[dict]]]


def registry() -> dict[str, EvalTask]:
    """Every task by name."""
    from components.evaluate.tasks import captions, multiple_choice, text

    return {t.name: t for t in (captions.TASK, multiple_choice.TASK, text.TASK)}


def get_task(name: str) -> EvalTask:
    tasks = registry()
    if name not in tasks:
        raise ValueError(f"unknown evaluation task {name!r}; known: {sorted(tasks)}")
    return tasks[name]

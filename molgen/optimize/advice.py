"""One line of advice when an optimization run used its oracle badly.

A run that stops with most of its budget unspent, or whose decodes were
mostly repeats of molecules already scored, usually has one setting to
change; :func:`run_advice` names it, so the summary says what to do instead of
leaving the user to read the counts.

    >>> from molgen.optimize.advice import run_advice
    >>> run_advice(budget=1000, calls=2, duplicates=10863, decoded=11000, stop="rounds finished", method="gradient",
    ...            has_starts=True, min_similarity=0.4)[:40]
    'spent 2 of 1,000 oracle calls (rounds fin'
"""

from __future__ import annotations

__all__ = ["run_advice", "UNSPENT_SHARE", "REPEAT_SHARE"]

UNSPENT_SHARE = 0.5  # advise when more than this share of the budget is left at the end
REPEAT_SHARE = 0.5  # advise when more than this share of the decodes were repeats


def run_advice(
    budget: int | None,
    calls: int,
    duplicates: int,
    decoded: int,
    stop: str,
    method: str,
    has_starts: bool,
    min_similarity: float | None = None,
    interrupted: bool = False,
    filtered: int = 0,
) -> str | None:
    """The advice line, or None when the run spent its budget on mostly new molecules (or was interrupted).

    ``filtered``: new molecules the sanity filter dropped; where they outnumber the calls of a run that
    left most of its budget, the line says so (a lead whose neighbours all carry its structural alert).
    """
    if interrupted:
        return None
    unspent = budget is not None and calls < (1 - UNSPENT_SHARE) * budget
    repeats = decoded > 0 and duplicates > REPEAT_SHARE * decoded
    if not unspent and not repeats:
        return None
    head = (
        f"spent {calls:,} of {budget:,} oracle calls ({stop})" if unspent
        else f"{duplicates / decoded:.0%} of {decoded:,} decodes repeated molecules already scored"
    )  # fmt: skip
    line = f"{head}: {_fix(method, stop, has_starts, min_similarity, unspent)}"
    if unspent and filtered > calls:
        line += f"; the sanity filter dropped {filtered:,} new molecules (--no-sanity-filter keeps them)"
    return line


def _fix(method: str, stop: str, has_starts: bool, min_similarity: float | None, unspent: bool) -> str:
    if method == "gradient" and has_starts and stop == "stalled":
        floor = f" (now {min_similarity:g})" if min_similarity is not None else ""
        return (f"nothing new and feasible was left near the start; lower --min-similarity{floor}, "
                "or raise --option explore_max_noise=1.0 / explore_patience=10")  # fmt: skip
    if method == "gradient" and has_starts:
        if unspent:
            return "more exploring rounds: raise --option explore_max_rounds, or --n-starts for more starts per round"
        return "leave known molecules sooner: raise --option explore_min_novelty=0.3 or explore_temperature=1.2"
    if method == "gradient":
        more = "raise --rounds (restarts from the best molecules) or --n-starts; " if unspent else ""
        return f"{more}sampled decodes (--option decode_temperature=0.7) and more restart noise (--option start_noise=0.3) repeat less"
    if method == "bo":
        return "raise --option max_stalled (batches without a new molecule before BO stops)" if stop == "stalled" else "raise --budget"
    return "raise the method's iteration limits or lower the constraints"

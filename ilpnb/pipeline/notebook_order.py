"""Which notebooks a notebook needs finished before it starts, and the order to run them in.

A notebook declares what it builds on in its metadata, ``"ilpnb": {"needs": ["00", ...]}``
(number prefixes of other notebooks of the folder); one that declares nothing needs every
notebook before it, which is always safe. Notebooks share state only through the run
folder, so two notebooks whose needs are finished may run at once when neither builds on
the other: notebook 09 (the real model) needs none of the world notebooks, notebooks 10 and
11 need only the world of 00. :func:`ready` picks the next notebooks to start, lowest number
first, and :func:`blocked_by` names a failed need.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import nbformat

__all__ = ["NeedsError", "notebook_needs", "needs_of", "ready", "blocked_by"]


class NeedsError(ValueError):
    """A notebook's ``ilpnb.needs`` metadata is malformed or names no earlier notebook."""


def notebook_needs(path: str | Path, earlier: Sequence[str]) -> list[str]:
    """The stems among ``earlier`` (the notebooks before it, in order) that ``path`` needs.

    Raises:
        NeedsError: ``needs`` is not a list of strings, or an entry matches no earlier notebook.
    """
    path = Path(path)
    meta = nbformat.read(str(path), as_version=4).metadata.get("ilpnb", {})
    if "needs" not in meta:
        return list(earlier)
    needs = meta["needs"]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise NeedsError(f"{path.name}: metadata ilpnb.needs must be a list of notebook numbers, not {needs!r}")
    out = []
    for prefix in needs:
        match = [stem for stem in earlier if stem.startswith(prefix)]
        if not match:
            raise NeedsError(f"{path.name}: metadata ilpnb.needs names {prefix!r}, which is no notebook before it "
                             f"({', '.join(earlier) or 'none'})")
        out += match
    return out


def needs_of(paths: Sequence[Path], folder: Sequence[Path] | None = None) -> dict[str, list[str]]:
    """Each notebook's needs among the notebooks being run, ``paths``; ``folder`` (every notebook
    of the folder, in order; default ``paths``) resolves them, and a need left out of the run
    counts as met (``--only`` runs what it is told to)."""
    stems = [p.stem for p in (folder or paths)]
    running = {p.stem for p in paths}
    return {p.stem: [n for n in notebook_needs(p, stems[: stems.index(p.stem)]) if n in running] for p in paths}


def ready(order: Sequence[str], needs: dict[str, list[str]], done: Collection[str],
          started: Collection[str]) -> list[str]:
    """The notebooks not yet started whose needs are all done, in ``order``."""
    return [n for n in order if n not in started and all(d in done for d in needs[n])]


def blocked_by(name: str, needs: dict[str, list[str]], failed: Collection[str]) -> list[str]:
    """The failed notebooks ``name`` needs."""
    return [d for d in needs[name] if d in failed]

"""The procedural chair varieties: the one place they are written (the generator, the CLI's choices).

A variety maps to the chance that a chair is one optional member short (``TreeBuilder.optional``).
"fixed": every chair of a family has its family's full make. "one-short": half the chairs that have an
optional member lack one (a stretcher, apron rail, slat, sofa arm or, in armless chairs, the back), so
a chair with such a part missing often shows a make that normal training chairs have, and only its
reference can tell the two apart.
"""

from __future__ import annotations

CHAIR_VARIETIES = {"fixed": 0.0, "one-short": 0.5}
DEFAULT_VARIETY = "fixed"

"""Wrong references: the one place their kinds are written (eval's controls, train's option).

``CONTROLS``: the test-time controls ``eval --references`` pairs each query with, besides its own
shape's views: "shuffled", another test shape's (mostly another family); "near-miss", another
test shape of its own procedural family. ``KIN``: whose views ``train --set wrong_reference=P``
may put beside a normal photo: a shape of its own family, or any other shape
(``benchmark.wrong_reference``).
"""

from __future__ import annotations

CONTROLS = {"shuffled": "shuffled references", "near-miss": "near-miss references"}  # name -> how reports call it
KIN = ("family", "any")

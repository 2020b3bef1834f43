"""perfcheck: performance-regression gates for the Linux storage and network stacks.

Importing this package is cheap and never imports bcc; the probe backend is loaded
only when a probe session starts.
"""

from __future__ import annotations

__version__ = "0.1.0"

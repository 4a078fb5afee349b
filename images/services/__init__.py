"""Every state change of an image. Views, admin, the API, jobs and commands call these; nothing else
writes `Image.status`.

- transitions.py: `image_transition`, the one function that changes a status.
"""

from .transitions import TransitionNotAllowed, image_transition  # noqa: F401

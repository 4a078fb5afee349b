"""The images JSON API (Django REST framework): create and detail, the streaming PUT of an upload's bytes,
cancel, and the tus 1.0 endpoint. DESIGN.md "The API's fixed points" are kept exactly."""

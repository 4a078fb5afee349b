"""The ground every app stands on: BaseModel, field encryption, the API's exception handler.

Imports no app of the project (an import-linter contract in pyproject.toml keeps it so); the roof
(settings, URLs, the dashboard) is the rest of `imageconsole/`.
"""

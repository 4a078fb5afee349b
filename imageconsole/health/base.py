"""What a health check reports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    area: str  # what is checked: "qemu-img", "Redis", "Workers", ... (translated)
    subject: str  # which one: a queue, a storage, a worker, a host; "" when there is one
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != Status.PROBLEM

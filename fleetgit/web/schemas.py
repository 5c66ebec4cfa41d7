"""Request bodies of the HTTP API: strict (no type coercion) and closed (an unknown field is
refused), so a typo is a 422 naming the field, never silently ignored. The rules themselves
(states, lengths, callsigns, patterns) are the domain's: these only shape the JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(max_length=65536)]
Name = Annotated[str, Field(max_length=256)]
Names = Annotated[list[Name], Field(max_length=1000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- pilots ------------------------------------------------------------------------------------


class PilotRegister(Strict):
    callsign: Name
    program: Name | None = None
    model: Name | None = None
    task: Text | None = None
    email: Name | None = None


class Heartbeat(Strict):
    status: Literal["active", "idle", "busy"] | None = None
    task: Text | None = None


class Deregister(Strict):
    reason: Text | None = None


# -- missions ----------------------------------------------------------------------------------


class MissionCreate(Strict):
    title: Text
    description: Text | None = None
    priority: Name = "medium"


class MissionStart(Strict):
    action: Literal["start"]


class MissionComplete(Strict):
    action: Literal["complete"]
    result: Name = "success"
    summary: Text | None = None
    force: bool = False


class MissionCancel(Strict):
    action: Literal["cancel"]
    reason: Text | None = None
    force: bool = False


class MissionUpdate(Strict):
    action: Literal["update"]
    title: Text | None = None
    description: Text | None = None
    priority: Name | None = None


MissionPatch = Annotated[
    MissionStart | MissionComplete | MissionCancel | MissionUpdate, Field(discriminator="action")
]


# -- sorties -----------------------------------------------------------------------------------


class SortieCreate(Strict):
    title: Text
    mission_id: Name | None = None
    description: Text | None = None
    priority: Name = "medium"
    files: Names = []
    depends_on: Names = []
    allow_broad: bool = False


class SortieClaim(Strict):
    action: Literal["claim"]
    reserve: bool = False
    ttl: Name | None = None
    allow_broad: bool = False


class SortieStart(Strict):
    action: Literal["start"]


class SortieResume(Strict):
    action: Literal["resume"]


class SortieProgress(Strict):
    action: Literal["progress"]
    percent: Annotated[int, Field(ge=0, le=100)]
    note: Text | None = None


class SortieBlock(Strict):
    action: Literal["block"]
    reason: Text


class SortieComplete(Strict):
    action: Literal["complete"]
    result: Name = "success"
    summary: Text | None = None


class SortieCancel(Strict):
    action: Literal["cancel"]
    reason: Text | None = None


class SortieUnclaim(Strict):
    action: Literal["unclaim"]
    reason: Text | None = None


class SortieUpdate(Strict):
    action: Literal["update"]
    title: Text | None = None
    description: Text | None = None
    priority: Name | None = None
    mission_id: Name | None = None
    files: Names | None = None
    depends_on: Names | None = None
    allow_broad: bool = False


SortiePatch = Annotated[
    SortieClaim
    | SortieStart
    | SortieResume
    | SortieProgress
    | SortieBlock
    | SortieComplete
    | SortieCancel
    | SortieUnclaim
    | SortieUpdate,
    Field(discriminator="action"),
]


# -- reservations ------------------------------------------------------------------------------


class Reserve(Strict):
    patterns: Annotated[list[Name], Field(min_length=1, max_length=1000)]
    shared: bool = False
    ttl: Name | int | None = None
    reason: Text | None = None
    allow_broad: bool = False


class Renew(Strict):
    patterns: Names = []
    ttl: Name | int | None = None


class Release(Strict):
    patterns: Names = []
    all: bool = False


class ForceRelease(Strict):
    reason: Text | None = None


class Check(Strict):
    paths: Annotated[list[Name], Field(min_length=1, max_length=1000)]


# -- messages ----------------------------------------------------------------------------------


class MessageSend(Strict):
    to: Annotated[list[Name], Field(min_length=1, max_length=100)]
    subject: Text
    body: Text = ""
    cc: Annotated[list[Name], Field(max_length=100)] = []
    thread_id: Name | None = None
    reply_to: Name | None = None
    importance: Name = "normal"
    ack_required: bool = False
    allow_unknown: bool = False


class Ack(Strict):
    notes: Text | None = None


# -- work orders, locks, checkpoints -----------------------------------------------------------


class WorkOrderCreate(Strict):
    title: Text
    sortie_id: Name
    description: Text | None = None
    priority: Name = "medium"


class WorkOrderAssign(Strict):
    action: Literal["assign"]
    callsign: Name
    allow_unknown: bool = False


class WorkOrderStatus(Strict):
    action: Literal["status"]
    status: Name
    note: Text | None = None


class WorkOrderComplete(Strict):
    action: Literal["complete"]
    summary: Text | None = None


WorkOrderPatch = Annotated[
    WorkOrderAssign | WorkOrderStatus | WorkOrderComplete, Field(discriminator="action")
]


class LockAcquire(Strict):
    ttl: Name | None = None


class CheckpointCreate(Strict):
    mission_id: Name | None = None
    sortie_id: Name | None = None
    trigger: Name = "manual"
    progress: Annotated[int, Field(ge=0, le=100)] | None = None
    summary: Text | None = None
    next_steps: Names = []
    blockers: Names = []
    files: Names = []

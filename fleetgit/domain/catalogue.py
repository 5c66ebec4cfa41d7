"""The fleet's catalogue: every concept's event types in one registry (ledger/schema.py's
Catalogue), and its checks as functions, which appends, intake, reads and the CLI call."""

from __future__ import annotations

from fleetgit.domain.checkpoints import events as checkpoints
from fleetgit.domain.coordination import events as coordination
from fleetgit.domain.locks import events as locks
from fleetgit.domain.missions import events as missions
from fleetgit.domain.pilots import events as pilots
from fleetgit.domain.reservations import events as reservations
from fleetgit.domain.sorties import events as sorties
from fleetgit.domain.squawk import events as squawk
from fleetgit.domain.withdrawals import events as withdrawals
from fleetgit.domain.workorders import events as workorders
from fleetgit.ledger.schema import Catalogue

CATALOGUE = Catalogue(
    [
        *pilots.TYPES,
        *missions.TYPES,
        *sorties.TYPES,
        *workorders.TYPES,
        *squawk.TYPES,
        *reservations.TYPES,
        *locks.TYPES,
        *checkpoints.TYPES,
        *coordination.TYPES,
        *withdrawals.TYPES,
    ]
)
TYPES = CATALOGUE.types
event_type = CATALOGUE.event_type
check_stream = CATALOGUE.check_stream
validate = CATALOGUE.validate
validate_data = CATALOGUE.validate_data
validate_stream = CATALOGUE.validate_stream
valid_changes = CATALOGUE.valid_changes
json_schema = CATALOGUE.json_schema
register_upcaster = CATALOGUE.register_upcaster
upcast = CATALOGUE.upcast

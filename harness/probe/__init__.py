"""``locker-harness probe``: what a target shows of our assumptions, read-only unless asked to write.

``probe(settings)`` calls every read of the API document through the API client, which records
what each answer shows of the assumptions registry (``harness.assumptions``); ``write=True``
adds one reservation, given back at once, and one delivery where ``deliver`` can open doors (a
virtual sandbox's). ``write_folder`` leaves ``probe/`` in a run folder: the
table as JSON, the suggested ``[assume]`` block, and the exchanges as a redacted HAR 1.2 file.
"""

from harness.probe._exchanges import Exchange, RecordingTransport, har_document
from harness.probe._probe import (
    DELIVERY,
    DOCUMENT,
    READS,
    Asked,
    Deliver,
    OperationResult,
    ProbeResult,
    probe,
    read_operations,
    suggested_block,
    table_document,
    write_folder,
)

__all__ = [
    "DELIVERY",
    "DOCUMENT",
    "READS",
    "Asked",
    "Deliver",
    "Exchange",
    "OperationResult",
    "ProbeResult",
    "RecordingTransport",
    "har_document",
    "probe",
    "read_operations",
    "suggested_block",
    "table_document",
    "write_folder",
]

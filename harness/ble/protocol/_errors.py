"""Error codes of reference 9.8 and the codec's exceptions.

The code enums are *tolerant*, as bleak's are: a code this table does not know still becomes a
member (named ``UNKNOWN_<n>``), so a bench tower with newer firmware never turns an error report
into a ``ValueError``. Exceptions carry fields (``code``, ``name``, ``phase``, ``locker_id``,
``tower_id``), not just text.

These classes know nothing of the harness's error tree (the virtual sandbox imports this
package and must not import ``harness.errors``); the BLE client raises subclasses that are
also harness errors.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "BlinkError",
    "DecodeError",
    "FirmwareCode",
    "FirmwareError",
    "SdkCode",
    "SdkError",
]


class _TolerantIntEnum(enum.IntEnum):
    """An IntEnum that keeps unknown values as pseudo-members instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class FirmwareCode(_TolerantIntEnum):
    """The tower's (Blink) error codes [S] AND-SDK ``BlinkError.descriptionForErrorId``."""

    NONE = 0
    UNKNOWN = 1
    MSG_UNKNOWN = 100
    MSG_INVALID_ID = 101
    MSG_ITEM_MISSING = 102
    MSG_ITEM_TYPE = 103
    MSG_ITEM_RANGE = 104
    MSG_ITEM_LENGTH = 105
    MSG_ITEM_VALUE = 106
    MSG_EXPIRED = 107
    MSG_CBOR_INVALID = 108
    AUTH_UNKNOWN = 200
    AUTH_INVALID = 201
    AUTH_NO_SESSION = 202
    AUTH_KEY_INVALID = 203
    AUTH_PERMISSIONS = 204
    AUTH_SESSION_ID = 205
    AUTH_TOWER_ID = 206
    AUTH_SIGNATURE = 207
    AUTH_SIZE = 208
    HW_UNKNOWN = 300
    HW_PORT = 301
    HW_MEMORY = 302
    HW_OVERTEMP = 303
    HW_UNDERTEMP = 304
    HW_BATTERY_CRITICAL = 305
    HW_SPI_INIT = 306
    HW_RTC = 307
    HW_BATTERY_MONITOR = 308
    HW_KEYPAD = 309
    HW_INTERNAL_FLASH = 310
    HW_BATTERY_VOLTAGE = 311
    HW_BATTERY_MON_CFG = 312
    HW_BATTERY_EOS = 313
    HW_BATTERY_DISABLED = 314
    FW_UNKNOWN = 400
    FW_CBOR_LIB = 401
    FW_CBOR_MEM = 402
    FW_CRYPTO_LIB = 403
    FW_INVALID_EVENT = 404
    SYS_UNKNOWN = 500
    SYS_PORT_CONFIG = 501
    SYS_LOCKER_NOT_FOUND = 502
    SYS_LAST_OPEN_INFO = 503
    SYS_LAST_OPEN = 504
    SYS_RESOURCES = 505
    SYS_FACTORY_RESET = 506
    SYS_FLASH_RECOVERY = 507
    SYS_SYNC_PUSH = 508
    SYS_LOCKERS_BUSY = 509
    SYS_SYNC_BUSY = 510

    @property
    def retryable(self) -> bool:
        """The tower asks to try again later (the SDK retries a busy sync pull after 2 s [S])."""
        return self in (FirmwareCode.SYS_RESOURCES, FirmwareCode.SYS_LOCKERS_BUSY, FirmwareCode.SYS_SYNC_BUSY)


class SdkCode(_TolerantIntEnum):
    """The phone side's own error codes (domain ``sdk.common``) [S]."""

    UNKNOWN = 0
    PACKET_NOT_ENCODED = 100
    PACKET_NOT_DECODED = 101
    NOT_CONNECTED_WITH_TOWER = 102
    RESPONSE_TIMEOUT = 103
    CANCELED = 104
    BLUETOOTH_OFF = 105
    DISCOVERY_FAILED = 106
    DISCOVERY_CHARACTERISTIC_FAILED = 107
    PERIPHERAL_CONNECTION_FAILED = 108
    CHARACTERISTIC_NOTIFICATION_FAILED = 109
    UPDATE_CHARACTERISTIC_FAILED = 110
    NO_PACKET_IN_RESPONSE = 111

    @property
    def communication(self) -> bool:
        """The SDK's ``isCommunicationError`` set [S]: the link, not the tower's judgement."""
        return self.value in (102, 103, 105, 108)


class BlinkError(Exception):
    """Base of every Blink error; ``phase`` names the step it happened in (scan, session, open...)."""

    domain = "blink"

    def __init__(
        self,
        message: str,
        *,
        code: int,
        phase: str | None = None,
        locker_id: int | None = None,
        tower_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: enum.IntEnum = self._code(code)
        self.phase = phase
        self.locker_id = locker_id
        self.tower_id = tower_id

    def _code(self, code: int) -> enum.IntEnum:
        return FirmwareCode(code)

    @property
    def name(self) -> str:
        """The code's name, ``UNKNOWN_<n>`` for a code the table does not know."""
        return self.code.name

    def __str__(self) -> str:
        where = "".join(
            f" {label}={value}"
            for label, value in (("phase", self.phase), ("tower", self.tower_id), ("locker", self.locker_id))
            if value is not None
        )
        return f"{self.message} [{self.domain} {int(self.code)} {self.name}{where}]"


class FirmwareError(BlinkError):
    """The tower answered ERROR or SESSION_ERROR with a firmware code."""

    domain = "firmware.blink"
    code: FirmwareCode

    def __init__(self, message: str, *, code: int, session_level: bool = False, **where: Any) -> None:
        super().__init__(message, code=code, **where)
        self.session_level = session_level
        if session_level:
            self.domain = "firmware.session"


class SdkError(BlinkError):
    """A failure on the phone's side of the link (timeout, not connected, undecodable reply...)."""

    domain = "sdk.common"
    code: SdkCode

    def _code(self, code: int) -> enum.IntEnum:
        return SdkCode(code)


class DecodeError(SdkError):
    """Bytes that are not a valid Blink packet; ``firmware_code`` is what a tower answers to them."""

    def __init__(self, message: str, *, firmware_code: FirmwareCode = FirmwareCode.MSG_CBOR_INVALID) -> None:
        super().__init__(message, code=SdkCode.PACKET_NOT_DECODED)
        self.firmware_code = firmware_code

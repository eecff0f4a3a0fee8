"""The virtual radio's controller: bumble's virtual ``Controller`` with what a real one does that it does not.

bumble 0.0.236's virtual controller, scanning, reports every advertisement twice: once as an
advertisement without its scannable and legacy bits, then as a "scan response" that repeats the
advertising data; it never sends the scan-response data an advertiser set
(``controller.py``, ``on_advertising_pdu``). And ``LE Create Connection Cancel`` neither clears
the pending connection nor completes it, so a ``connect(timeout=...)`` to an absent device never
returns and every later connect is refused.

``RadioController`` fixes both on the scanning side, where a real controller does the work: it
reports each advertisement with the event type its advertiser's set gives it, and, for an active
scan of a scannable advertiser, a scan response carrying that advertiser's scan-response data (a
real scanner's SCAN_REQ / SCAN_RSP exchange, which the virtual link has no PDUs for). Connection
creation and periodic sync run through bumble's own code unchanged. The virtual radio hands one
to every central on its link (``RadioLink.central_controller``).
"""

from __future__ import annotations

import asyncio

from bumble import hci, ll
from bumble.controller import AdvertisingSet, Controller, LegacyAdvertiser

__all__ = ["RadioController"]

_Report = hci.HCI_LE_Extended_Advertising_Report_Event
_LegacyReport = hci.HCI_LE_Advertising_Report_Event
_Event = _Report.EventType
_ACTIVE_SCAN = 1  # LE_Scan_Type: 0 passive, 1 active
#: The advertising set's properties bits 0-2 and 4 are the report's event-type bits (Core spec 7.7.65.13).
_REPORTED_PROPERTIES = (
    _Event.CONNECTABLE_ADVERTISING
    | _Event.SCANNABLE_ADVERTISING
    | _Event.DIRECTED_ADVERTISING
    | _Event.LEGACY_ADVERTISING_PDU_USED
)
#: Legacy advertising type (HCI LE Set Advertising Parameters) -> the extended report's event type.
_LEGACY_EVENT_TYPES = {0: 0b10011, 1: 0b10101, 2: 0b10010, 3: 0b10000, 4: 0b10101}
_RSSI = -50


class RadioController(Controller):
    """A virtual controller whose scanner reports scan responses and whose connect cancel completes."""

    #: bumble does not keep the extended scan type (active or passive); this does.
    extended_scan_type: int = 0

    def on_hci_le_set_extended_scan_parameters_command(
        self, command: hci.HCI_LE_Set_Extended_Scan_Parameters_Command
    ) -> hci.HCI_StatusReturnParameters:
        self.extended_scan_type = command.scan_types[0] if command.scan_types else 0
        return super().on_hci_le_set_extended_scan_parameters_command(command)

    def on_advertising_pdu(self, pdu: ll.AdvInd | ll.AdvExtInd) -> None:
        scanning, self.le_scan_enable = self.le_scan_enable, False
        try:  # bumble's own handling (connection creation, periodic sync) without its reports
            super().on_advertising_pdu(pdu)
        finally:
            self.le_scan_enable = scanning
        if not scanning:
            return
        event_type, scan_response = self._advertiser_view(pdu)
        self._report(pdu, event_type, pdu.data)
        if self._active and event_type & _Event.SCANNABLE_ADVERTISING:
            kept = event_type & (
                _Event.CONNECTABLE_ADVERTISING | _Event.SCANNABLE_ADVERTISING | _Event.LEGACY_ADVERTISING_PDU_USED
            )
            self._report(pdu, kept | _Event.SCAN_RESPONSE, scan_response)

    @property
    def _active(self) -> bool:
        scan_type = self.extended_scan_type if self._extended_reports else self.le_scan_type
        return scan_type == _ACTIVE_SCAN

    @property
    def _extended_reports(self) -> bool:
        return bool(self.le_features & hci.LeFeatureMask.LE_EXTENDED_ADVERTISING)

    def _advertiser_view(self, pdu: ll.AdvInd | ll.AdvExtInd) -> tuple[int, bytes]:
        """The report's event type and the scan-response data, from the advertiser's own settings."""
        advertiser = self._advertiser(pdu)
        if isinstance(advertiser, AdvertisingSet) and advertiser.parameters is not None:
            properties = int(advertiser.parameters.advertising_event_properties)
            return properties & _REPORTED_PROPERTIES, bytes(advertiser.scan_response_data)
        if isinstance(advertiser, LegacyAdvertiser):
            event_type = _LEGACY_EVENT_TYPES.get(advertiser.advertising_type, 0b10011)
            return event_type, bytes(advertiser.scan_response_data)
        return int(_Event.CONNECTABLE_ADVERTISING), b""  # unknown advertiser: connectable, not scannable

    def _advertiser(self, pdu: ll.AdvInd | ll.AdvExtInd) -> LegacyAdvertiser | AdvertisingSet | None:
        if self.link is None:
            return None
        for controller in self.link.controllers:
            if controller is self:
                continue
            legacy = controller.le_legacy_advertiser
            if legacy.enabled and legacy.address == pdu.advertiser_address:
                return legacy
            for advertising_set in controller.advertising_sets.values():
                if not advertising_set.enabled or advertising_set.address != pdu.advertiser_address:
                    continue
                parameters = advertising_set.parameters
                if not isinstance(pdu, ll.AdvExtInd) or parameters is None or parameters.advertising_sid == pdu.sid:
                    return advertising_set
        return None

    def _report(self, pdu: ll.AdvInd | ll.AdvExtInd, event_type: int, data: bytes) -> None:
        address = pdu.advertiser_address
        legacy_pdu = bool(event_type & _Event.LEGACY_ADVERTISING_PDU_USED)
        if self._extended_reports:
            report = _Report.Report(
                event_type=event_type,
                address_type=address.address_type,
                address=address,
                primary_phy=hci.Phy.LE_1M,
                secondary_phy=0 if legacy_pdu else hci.Phy.LE_1M,
                advertising_sid=0xFF if legacy_pdu else getattr(pdu, "sid", 0),
                tx_power=_Report.TX_POWER_INFORMATION_NOT_AVAILABLE,
                rssi=_RSSI,
                periodic_advertising_interval=0,
                direct_address_type=0,
                direct_address=hci.Address.ANY,
                data=data,
            )
            self.send_hci_packet(_Report([report]))
        else:
            kind = _Report.LEGACY_PDU_TYPE_MAP.get(event_type & 0x0F, _LegacyReport.EventType.ADV_IND)
            legacy = _LegacyReport.Report(
                event_type=kind, address_type=address.address_type, address=address, data=data, rssi=_RSSI
            )
            self.send_hci_packet(_LegacyReport([legacy]))

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Cancel the pending connection and complete it with an error, as the Core spec says."""
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        complete = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the command's own Command Complete, as a controller sends them.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, complete)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

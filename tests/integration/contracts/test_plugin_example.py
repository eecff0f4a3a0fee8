"""The plugin guide's example (docs/guides/pytest-plugin.md), run as printed there (test_plugin.py compares)."""

from harness import HarborClient, LockerStatus
from harness.api import Locker
from harness.flow import Delivery


def test_my_app_gives_back_a_locker(harbor_api: HarborClient, tower: str, available_locker: Locker) -> None:
    """My integration can hold a locker and give it back."""
    harbor_api.reserve(tower, available_locker.id, duration=120)
    harbor_api.release_locker(tower, available_locker.id)
    assert harbor_api.get_locker(tower, available_locker.id).status is LockerStatus.AVAILABLE


def test_a_whole_delivery_takes_under_ten_seconds(delivery: Delivery) -> None:
    """The seed's delivery, doors included, takes under ten seconds."""
    assert delivery.total_ns < 10_000_000_000

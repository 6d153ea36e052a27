import pytest


@pytest.fixture
def sim_rig(db):
    from sensors.models import Rig

    return Rig.objects.get(name="sim")

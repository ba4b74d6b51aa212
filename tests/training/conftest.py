import pytest

from tests.training.e2e import planned_dataset


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The tiny dataset as nnU-Net planned it (root, env), once per module; each test trains what it checks."""
    root = tmp_path_factory.mktemp("e2e_planned")
    return root, planned_dataset(root)

import shm


def test_the_package_imports_its_native_module():
    assert shm._shm.__name__ == "shm._shm"
    assert issubclass(shm.OwnerDiedWarning, RuntimeWarning)
    assert issubclass(shm.ShmError, Exception)
